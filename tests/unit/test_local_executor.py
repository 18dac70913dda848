"""The `actjob run` loop (local.LocalExecutor) with its stages and MLflow calls faked: what it
writes to state.json, which ACTClient's local backend and a run again read; one local layout
(rundir.RunDir): what `actjob run` writes is what ACTClient, `actjob logs` and `actjob compare`
read, under the same names."""

import io
import json

import pytest
import yaml
from rich.console import Console

from act_operator import logs, pipeline, report, tracking
from act_operator.api import API_VERSION, parse_actjob
from act_operator.client import ACTClient, LocalBackendConfig
from act_operator.local import LocalExecutor
from act_operator.rundir import RunDir, shard_stem


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
            # the log the stage's process would have written, where the executor puts it
            ex.run_dir.log_file(shard_stem(pipeline.job_name("demo", name, attempt), 0, 1)).write_text(f"{name} ran\n")
            if name in (fail or {}):
                return pipeline.Observed("failed", reason=f"{name} broke", permanent=fail[name])
            out = (tmp_path / "store" / name).as_uri()
            metrics = {"dev/success_rate": 0.25} if name == "eval" else {}
            return pipeline.Observed("succeeded", result={"uri": out, "manifest": out + "/_MANIFEST.json",
                                                          "metrics": metrics})

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


def test_the_files_have_one_name_each(tmp_path):
    rd = RunDir(tmp_path / "w", "demo")
    assert rd.path == (tmp_path / "w" / "runs" / "demo").resolve()
    assert (rd.state_file.name, rd.spec_file.name, rd.experiment_file.name) == ("state.json", "spec.json",
                                                                               "experiment.json")
    assert rd.mlflow_store == f"sqlite:///{rd.path / 'mlflow.db'}"
    assert rd.log_file(shard_stem("demo-collect-1", 2, 3)).name == "demo-collect-1.shard-00002.log"
    assert rd.result_file(shard_stem("demo-eval-1", 0, 1)).name == "demo-eval-1.result"
    assert RunDir.at(rd.state_file).path == rd.path == RunDir.at(rd.path).path
    assert RunDir.at(tmp_path / "elsewhere" / "x").state_file == (tmp_path / "elsewhere" / "x" / "state.json").resolve()
    assert RunDir.names(tmp_path / "w") == [] and rd.read_state() is None and rd.load_job() is None


def test_what_the_executor_writes_every_reader_reads(run, tmp_path):
    finished, _ = run()
    rd = RunDir(tmp_path / "work", "demo")
    assert finished.run_dir.path == rd.path and finished.state_file == rd.state_file
    assert json.loads(rd.spec_file.read_text())["model"]["uri"] == "tiny://qwen3-tiny"

    job = ACTClient(LocalBackendConfig(workdir=str(tmp_path / "work"))).get_job("demo")  # ACTClient
    assert (job.status.phase, job.metadata.uid) == ("Succeeded", finished.job.metadata.uid)
    assert job.status.registered_model == "act-demo/1"
    assert ACTClient(LocalBackendConfig(workdir=str(tmp_path / "work"))).get_tracking_uri("demo") == rd.mlflow_store

    status, run_dir = logs.local_run(tmp_path / "work", "demo")  # actjob logs
    assert status.phase == "Succeeded" and run_dir.path == rd.path
    pairs = logs.chosen(status, None, None)
    assert ("eval", 1) in pairs
    [(where, body)] = logs.local_logs(run_dir, "eval", 1)
    assert where == str(rd.path / "demo-eval-1.log") and body == b"eval ran\n"

    run = report.load_run(rd.path)  # actjob compare, of the directory or its state.json
    assert (run.name, run.metrics) == ("demo", {"dev/success_rate": 0.25})
    assert report.load_run(rd.state_file) == run


def test_forgetting_a_run_keeps_its_mlflow_store_and_compare_names_what_is_missing(run):
    rd = run()[0].run_dir
    (rd.path / RunDir.MLFLOW_DB).write_bytes(b"db")
    rd.forget()
    assert [p.name for p in rd.path.iterdir()] == ["mlflow.db"]
    with pytest.raises(SystemExit, match="no state.json and spec.json"):
        report.load_run(rd.path)


def test_a_relative_root_that_climbs_out_of_the_working_directory_is_refused(tmp_path, monkeypatch, capsys):
    """A relative file:// root is resolved against the working directory here (a cluster refuses any):
    one that climbs out of it with `..` is refused by validate, run and ACTClient, naming the field."""
    from act_operator import cli
    from act_operator.api import SpecError

    spec = {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
            "storage": {"root": "file://../../etc"}}
    job_file, exp_file = tmp_path / "job.yaml", tmp_path / "exp.yaml"
    job_file.write_text(yaml.safe_dump({"apiVersion": API_VERSION, "kind": "ACTJob", "metadata": {"name": "up"},
                                        "spec": spec}))
    exp_file.write_text(yaml.safe_dump({"apiVersion": API_VERSION, "kind": "ACTExperiment",
                                        "metadata": {"name": "upx"}, "spec": {"template": spec}}))
    monkeypatch.chdir(tmp_path)
    for args, field in ((["validate", str(job_file)], "spec.storage.root"),
                        (["run", str(job_file), "--workdir", "work"], "spec.storage.root"),
                        (["validate", str(exp_file)], "spec.template.storage.root")):
        assert cli.main(args) == 2, args
        said = " ".join(capsys.readouterr().err.split())
        assert f"- {field}: 'file://../../etc' climbs out of the working directory with '..'" in said, said
        assert "use file://SUBDIR under it, or an absolute file:///path" in said
    assert not (tmp_path / "work").exists()

    job = parse_actjob({"metadata": {"name": "up"}, "spec": spec})
    with pytest.raises(SpecError, match=r"spec\.storage\.root: 'file://\.\./\.\./etc' climbs out"):
        LocalExecutor(job, tmp_path / "work", console=Console(file=io.StringIO()))
    with pytest.raises(SpecError, match=r"spec\.storage\.root"):
        ACTClient(LocalBackendConfig(workdir=str(tmp_path / "work"))).train(job)
    assert not (tmp_path / "work").exists()  # refused before anything was written
    from act_operator.local import resolve_root, root_problems

    for bad in ("file://..", "file://../x", "file://a/../../x", "file://./.."):
        assert root_problems(bad), bad
    for fine in ("file://data", "file://a/../b", "file://./x", "file:///abs/../etc", "s3://b/p"):
        assert root_problems(fine) == [], fine
    assert resolve_root("file://a/../b", tmp_path) == (tmp_path / "b").as_uri()
