"""`actjob run` whose stage programs sleep instead of training: real processes (the executor, each
stage, a child of the stage standing for a gang's rank) in seconds, for the tests of what `actjob run`
does with its processes (tests/integration/test_actjob_run_processes.py).

    python sleeping_stages.py run FILE --workdir W     `actjob run` (act_operator.cli), with
        every stage command replaced by `python sleeping_stages.py stage CONFIG`, MLflow calls
        stubbed (no server: the processes are what is tested), a 0.2 s retry backoff and
        $GRACE_S the grace period of a stop
    python sleeping_stages.py stage CONFIG             one stage: appends its start to $EVENTS
        (pid, stage, attempt, the earlier stage processes still alive, its rank's pid, the values of
        POD_LITERAL and POD_SECRET it was given), writes
        `writer` under its output every 0.1 s (a checkpoint) while $SLEEP_STAGE sleeps for
        $SLEEP_S seconds (attempt 1 only unless $SLEEP_EVERY_ATTEMPT), then reports a manifest.
        $IGNORE_TERM: it ignores SIGTERM (the executor's grace period, then SIGKILL, must end it).
        $KILLED_STAGE: that stage prints progress bars, a warning and an error, then SIGKILLs itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has stopped writing (init reaps it)


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def stage(config_path: str) -> int:
    cfg = json.loads(Path(config_path).read_text())
    name, attempt = cfg["stage"], cfg.get("attempt", 1)
    out = Path(cfg["output"].removeprefix("file://")) if cfg.get("output") else None
    log = Path(os.environ["EVENTS"])
    sleeps = name == os.environ.get("SLEEP_STAGE") and (attempt == 1 or os.environ.get("SLEEP_EVERY_ATTEMPT"))
    rank = None
    if sleeps:  # a child in the stage's process group, as a torchrun gang's ranks are
        rank = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).pid
    if os.environ.get("IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    others = [e["pid"] for e in events(log) if alive(e["pid"]) and e["pid"] != os.getpid()]
    with open(log, "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "stage": name, "attempt": attempt, "others": others,
                            "rank": rank, "env": {k: os.environ.get(k) for k in ("POD_LITERAL", "POD_SECRET")}})
                + "\n")
    print(f"{name} attempt {attempt} started", flush=True)
    if name == os.environ.get("KILLED_STAGE"):  # dies as an OOM-killed trainer does: bars, an error, SIGKILL
        for i in range(1, 4):
            print(f"{i * 25}%|##        | {i}/4 [00:0{i}<00:03, 1.00it/s]", flush=True)
        print("FutureWarning: something is deprecated", flush=True)
        print("RuntimeError: boom", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    if sleeps:
        out.mkdir(parents=True, exist_ok=True)
        until = time.monotonic() + float(os.environ.get("SLEEP_S", "600"))
        while time.monotonic() < until:
            with open(out / "writer", "a") as w:
                w.write(f"{os.getpid()}\n")
            time.sleep(0.1)
        if rank:
            os.kill(rank, signal.SIGKILL)
            os.waitpid(rank, 0)
    result = {"stage": name}
    if name != "preflight":
        result |= {"uri": cfg["output"], "manifest": cfg["output"] + "/_MANIFEST.json", "metrics": {}}
    Path(os.environ["ACT_TERMINATION_LOG"]).write_text(json.dumps(result))
    return 0


def run(argv: list[str]) -> int:
    from act_operator import cli, launch, pipeline, tracking
    from act_operator.api import MlflowStatus

    launch.Launch.command = lambda self, config_path, python=None: [sys.executable, str(HERE), "stage", config_path]
    pipeline.BACKOFF_BASE_S = 0.2
    if "GRACE_S" in os.environ:
        from act_operator import local_processes

        local_processes.GRACE_S = float(os.environ["GRACE_S"])
    tracking.start_parent = lambda uri, job: MlflowStatus(run_id="r1")
    tracking.register_model = lambda uri, job: f"act-{job.metadata.name}/1"
    tracking.finish_parent = lambda *a, **k: None
    return cli.main(["run", *argv])


if __name__ == "__main__":
    sys.exit(stage(sys.argv[2]) if sys.argv[1] == "stage" else run(sys.argv[2:]))
