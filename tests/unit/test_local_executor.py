"""The `actjob run` loop (local.LocalExecutor) with its stages and MLflow calls faked: what it
writes to state.json, which ACTClient's local backend and a run again read."""

import io
import json

import pytest
from rich.console import Console

from act_operator import pipeline, tracking
from act_operator.api import API_VERSION, parse_actjob
from act_operator.local import LocalExecutor


@pytest.fixture
def run(tmp_path, monkeypatch):
    """run(fail={stage: permanent?}) -> (executor, the stages it started, in order)."""
    job = parse_actjob({"apiVersion": API_VERSION, "kind": "ACTJob", "metadata": {"name": "demo"},
                        "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                                 "storage": {"root": (tmp_path / "store").as_uri()}}})
    monkeypatch.setattr(tracking, "start_parent", lambda uri, job: type(job.status.mlflow)(run_id="r1"))
    monkeypatch.setattr(tracking, "register_model", lambda uri, job: "act-demo/1")
    monkeypatch.setattr(tracking, "finish_parent", lambda *a: None)

    def go(fail=None):
        ex = LocalExecutor(job, tmp_path / "work", console=Console(file=io.StringIO()))
        ran = []

        def stage(name, attempt):
            ran.append((name, attempt))
            if name in (fail or {}):
                return pipeline.Observed("failed", reason=f"{name} broke", permanent=fail[name])
            out = (tmp_path / "store" / name).as_uri()
            return pipeline.Observed("succeeded", result={"uri": out, "manifest": out + "/_MANIFEST.json"})

        monkeypatch.setattr(ex, "_run_stage", stage)
        ex.run()
        return ex, ran
    go.job = job
    return go


def test_the_final_phase_is_written_together_with_the_registered_model(run, tmp_path, monkeypatch):
    """ACTClient's local backend reads state.json: a Succeeded there must already name the registered
    model (the operator writes both in one status patch), or a waiting caller sees no model."""
    state_file, seen = tmp_path / "work" / "runs" / "demo" / "state.json", []

    def register(uri, job):
        seen.append(json.loads(state_file.read_text())["status"]["phase"])
        return "act-demo/1"

    monkeypatch.setattr(tracking, "register_model", register)
    ex, ran = run()
    assert ran[-1] == ("eval", 1) and ex.job.status.phase == "Succeeded" and ex.state_file == state_file
    assert seen == ["Running"]  # not yet Succeeded on disk while the model is registered
    saved = json.loads(state_file.read_text())["status"]
    assert saved["phase"] == "Succeeded" and saved["registeredModel"] == "act-demo/1"


def test_a_failed_run_run_again_tries_the_failed_stage_once_more_and_keeps_the_rest(run):
    ex, ran = run(fail={"judge": True})  # permanent: one attempt
    uid = ex.job.metadata.uid
    assert ran == [("preflight", 1), ("collect", 1), ("judge", 1)] and ex.job.status.phase == "Failed"

    ex, ran = run(fail={"judge": True})  # the same spec again: judge once more, and it fails again
    assert ran == [("judge", 2)] and ex.job.metadata.uid == uid
    assert ex.job.status.phase == "Failed" and "judge failed permanently" in ex.job.status.message

    ex, ran = run()  # and again: it succeeds, and the stages after it run
    assert ran == [("judge", 3), ("policy", 1), ("eval", 1)] and ex.job.metadata.uid == uid
    saved = json.loads(ex.state_file.read_text())
    assert saved["status"]["phase"] == "Succeeded" and saved["status"]["stages"]["collect"]["attempts"] == 1

    ex, ran = run()  # a Succeeded run is not run again
    assert ran == [] and ex.job.metadata.uid == uid


def test_the_clients_resubmitting_a_failed_run_never_reads_the_old_failure(run, tmp_path, monkeypatch):
    """ACTClient.train of a failed job's same spec: the state says run again before `actjob run` starts,
    so a wait at once does not take the old Failed for the new run's outcome."""
    from act_operator import client as C

    run(fail={"eval": True})
    started = []
    monkeypatch.setattr(C.subprocess, "Popen", lambda cmd, **kw: started.append(cmd) or object())
    client = C.ACTClient(C.LocalBackendConfig(workdir=str(tmp_path / "work")))
    assert client.train(run.job) == "demo" and started
    status = client.get_job("demo").status
    assert status.phase == "Pending" and status.message == "run again: eval tried again (attempt 2)"
    assert status.stages["policy"].phase == "Succeeded"
