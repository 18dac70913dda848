"""`actjob run` owns its stage processes, with real processes (tests/sleeping_stages.py: the executor,
a stage that sleeps and writes like a training, and a child of it standing for a gang's rank):

* a stop signal to `actjob run` stops the stage's whole process group, and says so in the state;
* a stage that ignores SIGTERM is killed after the grace period;
* after a SIGKILL of `actjob run` (no handler runs) the next run finds the orphan and stops it before
  attempt 2 starts: one writer at a time;
* a second `actjob run` of the same run directory is refused at once, naming the one that holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sleeping_stages import HERE, alive, events

pytestmark = pytest.mark.integration


@pytest.fixture
def job(tmp_path, monkeypatch):
    """A collect-only ACTJob whose collect sleeps (attempt 1); every process it started is killed after."""
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "act-operator.io/v1alpha1", "kind": "ACTJob", "metadata": {"name": "sleepy"},
        "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                 "storage": {"root": (tmp_path / "storage").as_uri()},
                 "stages": {"warmup": {"enabled": False}, "judge": {"enabled": False}, "policy": {"method": "none"},
                            "collect": {"filterInadmissible": False},  # a random model's samples are no actions
                            "eval": {"enabled": False}}}}))
    for k, v in {"EVENTS": str(tmp_path / "events"), "SLEEP_STAGE": "collect", "SLEEP_S": "120"}.items():
        monkeypatch.setenv(k, v)
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
    for e in events(tmp_path / "events"):
        for pid in (e["pid"], e["rank"]):
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(pid, signal.SIGKILL)


def start(tmp_path: Path, started: list) -> subprocess.Popen:
    """`actjob run` in the background, once its collect (attempt 1) and the rank under it run."""
    proc = subprocess.Popen([sys.executable, str(HERE), "run", str(tmp_path / "job.yaml"), "--workdir",
                             str(tmp_path / "work")], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    started.append(proc)
    deadline = time.monotonic() + 60
    while not [e for e in events(tmp_path / "events") if e["stage"] == "collect"]:
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "collect never started"
        time.sleep(0.05)
    return proc


def rerun(tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HERE), "run", str(tmp_path / "job.yaml"), "--workdir",
                           str(tmp_path / "work")], cwd=tmp_path, capture_output=True, text=True, timeout=120)


def stage_pids(tmp_path: Path, attempt: int = 1) -> list[int]:
    (e,) = [e for e in events(tmp_path / "events") if e["stage"] == "collect" and e["attempt"] == attempt]
    return [e["pid"], e["rank"]]


def gone_after(pids: list[int], since: float, limit: float = 20) -> float:
    """Seconds from `since` until none of `pids` lives."""
    while any(alive(p) for p in pids):
        assert time.monotonic() - since < limit, [p for p in pids if alive(p)]
        time.sleep(0.02)
    return time.monotonic() - since


def state(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "work" / "runs" / "sleepy" / "state.json").read_text())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_stops_the_stage_and_its_rank_and_the_next_run_resumes(tmp_path, job, sig):
    run = start(tmp_path, job)
    pids = stage_pids(tmp_path)
    t0 = time.monotonic()
    run.send_signal(sig)
    out = run.communicate(timeout=60)[0]
    took = gone_after(pids, t0)
    print(f"{sig.name}: no stage process left after {took:.2f}s")
    assert run.returncode == 128 + sig, out
    assert took < 5, took  # the stage exits on SIGTERM: no grace period spent
    st = state(tmp_path)
    assert st["stopped"] == sig.name and st["status"]["stages"]["collect"]["phase"] == "Running"
    assert st["status"]["message"].startswith(f"stopped by {sig.name} while collect ran"), st["status"]["message"]
    assert json.loads((tmp_path / "work" / "runs" / "sleepy" / "processes.json").read_text()) == {}

    again = rerun(tmp_path)  # attempt 2 (it does not sleep) finishes the run
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"interrupted: `actjob run` was stopped by {sig.name}" in again.stderr
    assert state(tmp_path)["status"]["stages"]["collect"]["attempts"] == 2 and "stopped" not in state(tmp_path)


def test_a_stage_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, job, monkeypatch):
    monkeypatch.setenv("IGNORE_TERM", "1")
    monkeypatch.setenv("GRACE_S", "1.5")
    run = start(tmp_path, job)
    pids = stage_pids(tmp_path)
    t0 = time.monotonic()
    run.send_signal(signal.SIGTERM)
    out = run.communicate(timeout=60)[0]
    took = gone_after(pids, t0)
    print(f"SIGTERM ignored: no stage process left after {took:.2f}s (grace 1.5 s, then SIGKILL)")
    assert run.returncode == 143, out
    assert 1.5 <= took < 5, took


def test_after_a_sigkill_the_next_run_stops_the_orphan_before_attempt_2(tmp_path, job):
    run = start(tmp_path, job)
    orphan = stage_pids(tmp_path)
    run.kill()  # SIGKILL: no handler runs, the stage goes on alone
    run.wait()
    time.sleep(0.3)
    assert all(alive(p) for p in orphan), "the stage should outlive a SIGKILLed actjob run"
    writer = tmp_path / "storage" / "default" / "sleepy"
    (written,) = list(writer.glob("*/pairs/writer"))
    before = len(written.read_text().splitlines())
    time.sleep(0.3)
    assert len(written.read_text().splitlines()) > before  # the orphan is still writing

    t0 = time.monotonic()
    again = rerun(tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    print(f"orphan stopped and run finished {time.monotonic() - t0:.2f}s after the rerun started")
    assert f"collect attempt 1 (pid {orphan[0]}," in again.stderr and "was still running, left by an `actjob run` " \
           "that was killed: stopped it" in again.stderr
    assert not any(alive(p) for p in orphan)
    (second,) = [e for e in events(tmp_path / "events") if e["stage"] == "collect" and e["attempt"] == 2]
    assert second["others"] == []  # attempt 2 started with no other stage process alive: one writer
    assert f"interrupted: `actjob run` was killed while it ran; its process (pid {orphan[0]})" in again.stderr
    st = state(tmp_path)["status"]
    assert st["phase"] == "Succeeded" and st["stages"]["collect"]["attempts"] == 2


def test_a_second_run_of_the_same_directory_is_refused_naming_the_holder(tmp_path, job):
    first = start(tmp_path, job)
    t0 = time.monotonic()
    second = rerun(tmp_path)
    print(f"second actjob run refused after {time.monotonic() - t0:.2f}s")
    assert second.returncode == 2, second.stderr[-3000:]
    said = " ".join(second.stderr.split())  # rich wraps long lines
    assert f"in use by pid {first.pid} (" in said and "sleeping_stages.py run" in said and " since " in said, said
    assert len([e for e in events(tmp_path / "events") if e["stage"] == "collect"]) == 1  # nothing started
    assert first.poll() is None and all(alive(p) for p in stage_pids(tmp_path))  # the holder runs on
    first.send_signal(signal.SIGTERM)
    assert first.wait(60) == 143


def test_stage_processes_get_the_pod_envs_literal_values_and_a_valuefrom_is_said_to_resolve_on_a_cluster_only(
        tmp_path, job, monkeypatch):
    monkeypatch.delenv("SLEEP_STAGE")
    monkeypatch.delenv("POD_SECRET", raising=False)
    spec = yaml.safe_load((tmp_path / "job.yaml").read_text())
    spec["spec"]["pod"] = {"env": [{"name": "POD_LITERAL", "value": "from-the-spec"},
                                   {"name": "POD_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    done = rerun(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "POD_SECRET: valueFrom.secretKeyRef resolves on a cluster only" in " ".join(done.stderr.split())
    seen = [e["env"] for e in events(tmp_path / "events")]
    assert seen and all(env == {"POD_LITERAL": "from-the-spec", "POD_SECRET": None} for env in seen), seen


def test_a_killed_stage_is_said_as_the_process_its_signal_and_its_last_error_not_its_log_tail(
        tmp_path, job, monkeypatch):
    monkeypatch.delenv("SLEEP_STAGE")
    monkeypatch.setenv("KILLED_STAGE", "collect")
    spec = yaml.safe_load((tmp_path / "job.yaml").read_text())
    spec["spec"]["stages"]["collect"]["maxRetries"] = 0
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    done = rerun(tmp_path)
    assert done.returncode != 0
    message = state(tmp_path)["status"]["message"]
    (pid,) = [e["pid"] for e in events(tmp_path / "events") if e["stage"] == "collect"]
    assert f"process {pid}: killed by SIGKILL (exit code 137); last error: RuntimeError: boom (log: " in message, message
    assert "it/s" not in message and "Warning" not in message, message
