"""`actjob`: run an ACTJob on this machine, or check one.

    actjob run examples/quickstart.yaml     # every stage, locally, with a summary at the end
    actjob validate examples/quickstart.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from act_operator.api import SpecError, load_actjob


def _load(path: str, console: Console):
    try:
        return load_actjob(path)
    except SpecError as e:
        console.print(f"[red]{path}: invalid ACTJob ({len(e.problems)} problem(s)):[/]")
        for p in e.problems:
            console.print(f"  - {p}", highlight=False)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="actjob", description="ACT operator command line")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every stage of an ACTJob on this machine")
    run.add_argument("file")
    run.add_argument("--workdir", default=".act", help="where run state, logs and the local MLflow store go")
    run.add_argument("--fresh", action="store_true", help="start over instead of resuming a stopped run")
    val = sub.add_parser("validate", help="check an ACTJob file and print its problems")
    val.add_argument("file")
    args = parser.parse_args(argv)
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)

    job = _load(args.file, console)
    if job is None:
        return 2
    if args.command == "validate":
        console.print(f"[green]{args.file}: valid[/]")
        return 0
    from act_operator.local import LocalExecutor

    result = LocalExecutor(job, Path(args.workdir), console, fresh=args.fresh).run()
    return 0 if result.status.phase == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
