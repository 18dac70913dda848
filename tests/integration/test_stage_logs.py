"""A stage process's log (act_trainer.logs) in a real process: what Python, C-level writes and a
subprocess print lands both where it went and in the uploaded file, whether the process
succeeds, raises or is sent SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent("""\
    import os, subprocess, sys, time, traceback
    from act_trainer import logs
    from act_trainer.config import PreflightConfig, JobRef
    cfg = PreflightConfig(job=JobRef(name="t", uid="u"), output=sys.argv[1], model="tiny://qwen3-tiny",
                          logs=sys.argv[1] + "/logs/preflight/attempt-2")
    capture, code = logs.start(), 0
    try:  # as act_trainer.cli.main does
        print("from python", flush=True)
        os.write(2, b"from fd 2\\n")
        subprocess.run(["echo", "from a subprocess"], check=True)
        if sys.argv[2] == "raise":
            raise RuntimeError("the stage broke")
        if sys.argv[2] == "term":
            print("waiting", flush=True)
            time.sleep(60)
    except Exception:
        traceback.print_exc()
        code = 1
    finally:
        logs.publish(capture, cfg)
    sys.exit(code)
    """)


@pytest.mark.parametrize("how", ["ok", "raise", "term"])
def test_the_log_is_uploaded_however_the_process_ends(tmp_path, how):
    root = tmp_path / "root"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, f"file://{root}", how], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "RANK": "1"})
    out = ""
    if how == "term":  # SIGTERM once it sleeps, as a deleted pod gets
        while "waiting" not in out:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            out += line
        proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=60)
    out += rest
    assert proc.returncode == {"ok": 0, "raise": 1, "term": 128 + signal.SIGTERM}[how], err
    (uploaded,) = (root / "logs" / "preflight" / "attempt-2").glob("*.log")
    assert uploaded.name.endswith("-rank1.log")
    text = uploaded.read_text()
    for said in ("from python", "from fd 2", "from a subprocess"):
        assert said in text and said in out + err  # teed: still where it went
    assert ("RuntimeError: the stage broke" in text) == (how == "raise")
    assert ("waiting" in text) == (how == "term")
