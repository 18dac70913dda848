"""`act-trainer collect|judge|policy|eval --config FILE`: the programs stage pods run.

Exit codes: 0 done (manifest written), 1 the stage failed, 2 the config is invalid
(nothing was read or written).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback

from act_trainer.config import STAGES, ConfigError, load_stage_config

MODULES = {"collect": "collect", "judge": "judge", "policy": "policy", "eval": "evaluate"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="act-trainer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        p = sub.add_parser(stage, help=f"run the {stage} stage")
        p.add_argument("--config", required=True, help="stage config (JSON), e.g. /etc/act/stage.json")
    tiny = sub.add_parser("tiny-model", help="build a tiny random-weight Qwen3 model + tokenizer (offline)")
    tiny.add_argument("--out", required=True)
    tiny.add_argument("--preset", default="qwen3-tiny")
    tiny.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.command == "tiny-model":
        from act_trainer.models import build_tiny

        print(build_tiny(args.out, args.preset, args.seed))
        return 0

    try:
        cfg = load_stage_config(args.config, expected=args.command)
    except ConfigError as e:
        print(f"act-trainer {args.command}: invalid config:\n{e}", file=sys.stderr)
        return 2
    index = os.environ.get("JOB_COMPLETION_INDEX")
    if index is not None and cfg.shard.count > 1:  # a pod of an Indexed Job takes its own shard
        cfg.shard.index = int(index)
    module = importlib.import_module(f"act_trainer.stages.{MODULES[args.command]}")
    try:
        module.run(cfg)
    except Exception as e:  # report why, for the executor and the termination log
        from act_trainer.manifest import write_termination_log

        traceback.print_exc()
        write_termination_log({"stage": args.command, "error": f"{type(e).__name__}: {e}"[:3000]})
        print(f"act-trainer {args.command}: failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
