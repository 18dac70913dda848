"""MLflow outages hold no training back: a stage whose MLflow does not answer records what it
would have logged in `<output>/_TRACKING.json` and succeeds; the executor replays the record into
a child run under the parent run once MLflow answers, once (nothing lost, nothing duplicated)."""

from __future__ import annotations

import time
import uuid

import pytest

from act_trainer import plots
from act_trainer.config import PreflightConfig
from act_trainer.tracking import NO_PARENT, TRACKING_FILE, records, replay, stage_run

pytestmark = pytest.mark.integration


def dead_url() -> str:
    from services import free_ports

    return f"http://127.0.0.1:{free_ports(1)[0]}"


def offline_stage(tmp_path, uid: str, output: str | None = None, tracking: dict | None = None):
    """A stage whose MLflow does not answer (or, given `tracking` without a parent run, that has no
    parent run to log under): it records its tracking in `<output>/_TRACKING.json`."""
    tracking = tracking or {"uri": dead_url(), "experiment": "outage", "parent_run_id": "0" * 32}
    cfg = PreflightConfig(job={"name": "outage", "uid": uid}, output=output or (tmp_path / "out").as_uri(),
                          model="tiny://qwen3-tiny", tracking=tracking)
    t0 = time.monotonic()
    with stage_run(cfg) as run:
        assert run.offline and ("start_run" in run.offline if cfg.tracking.parent_run_id else
                                run.offline == NO_PARENT)
        run.log_metrics({"loss": 1.0, "reward": 0.25}, step=1)
        run.log_metrics({"loss": 0.5, "reward": 0.75}, step=2)
        run.log_dataset("s3://bucket/act/pairs", "contrast_pairs", "sha256:" + "ab" * 32, "training",
                        rows=[{"pair_id": "p1", "expert_action": "look"}])
        run.set_tags({"act.digest": "sha256:feed"})
        run.log_dict({"kept": 3}, "filter_report.json")
        assert plots.log_plot(run, "filter_report.png", plots.filter_report, {"sampled": 4, "kept": 3,
                                                                              "removed": {"duplicate": 1}})
    return cfg, time.monotonic() - t0


def test_a_stage_records_its_tracking_when_mlflow_does_not_answer(tmp_path):
    cfg, seconds = offline_stage(tmp_path, "u-" + uuid.uuid4().hex[:6])
    assert seconds < 30, seconds  # the client's retries are cut short: MLflow down costs seconds
    [rec] = records(cfg.output)
    assert rec["source"] == f"{cfg.output}/{TRACKING_FILE}" and rec["run_id"] is None
    assert rec["params"]["model"] == "tiny://qwen3-tiny" and rec["tags"]["act.stage"] == "preflight"
    assert [(m["key"], m["value"], m["step"]) for m in rec["metrics"]] == [
        ("loss", 1.0, 1), ("reward", 0.25, 1), ("loss", 0.5, 2), ("reward", 0.75, 2)]
    assert rec["inputs"][0]["name"] == "contrast_pairs" and rec["dicts"] == {"filter_report.json": {"kept": 3}}
    assert rec["tags"]["act.digest"] == "sha256:feed"
    assert list(rec["figures"]) == ["plots/filter_report.png"]  # the PNG, base64


def test_the_replay_completes_the_lineage_once(tmp_path, mlflow_server):
    from mlflow import MlflowClient

    uid = "u-" + uuid.uuid4().hex[:6]
    cfg, _ = offline_stage(tmp_path, uid)
    [rec] = records(cfg.output)
    client = MlflowClient(mlflow_server)
    exp = client.create_experiment(f"replay-{uid}")
    parent = client.create_run(exp, tags={"act.actjob.uid": uid}).info.run_id
    # an earlier replay cut short (no act.replay=complete): redone, not kept beside the new one
    client.create_run(exp, tags={"act.replay_of": rec["source"]})

    first = replay(mlflow_server, rec, parent, exp)
    again = replay(mlflow_server, rec, parent, exp)
    assert first == again
    runs = client.search_runs([exp], filter_string=f"tags.`act.replay_of` = '{rec['source']}'")
    assert [r.info.run_id for r in runs] == [first]
    run = client.get_run(first)
    assert run.data.tags["mlflow.parentRunId"] == parent and run.data.tags["act.stage"] == "preflight"
    assert run.data.tags["act.actjob.uid"] == uid and run.data.tags["act.replay"] == "complete"
    assert run.data.params["model"] == "tiny://qwen3-tiny" and run.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(first, "loss")] == [(1, 1.0), (2, 0.5)]
    [inp] = run.inputs.dataset_inputs
    assert inp.dataset.name == "contrast_pairs" and inp.dataset.digest.startswith("abab")
    assert {t.key: t.value for t in inp.tags}["mlflow.data.context"] == "training"
    assert "filter_report.json" in {a.path for a in client.list_artifacts(first)}
    [png] = client.list_artifacts(first, "plots")
    local = client.download_artifacts(first, png.path, str(tmp_path))
    assert png.path == "plots/filter_report.png" and open(local, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_stage_without_a_parent_run_never_opens_a_top_level_run(tmp_path, mlflow_server, monkeypatch):
    """MLflow answers, but the executor had no parent run when it rendered the stage (MLflow was
    down then): the stage records its tracking for the replay instead of logging a top-level run,
    and its result says so."""
    import json

    from mlflow import MlflowClient

    from act_trainer.manifest import write_termination_log

    experiment = f"noparent-{uuid.uuid4().hex[:6]}"
    result_file = tmp_path / "result.json"
    monkeypatch.setenv("ACT_TERMINATION_LOG", str(result_file))
    write_termination_log({"stage": "collect", "manifest": "file:///x/_MANIFEST.json", "metrics": {}})  # published
    cfg, _ = offline_stage(tmp_path, "u-" + uuid.uuid4().hex[:6],
                           tracking={"uri": mlflow_server, "experiment": experiment})
    assert MlflowClient(mlflow_server).get_experiment_by_name(experiment) is None  # no run, no experiment
    [rec] = records(cfg.output)
    assert rec["offline"] == NO_PARENT and rec["parent_run_id"] is None and rec["run_id"] is None
    reported = json.loads(result_file.read_text())
    assert reported["manifest"] and reported["tracking_offline"] == NO_PARENT


def test_act_trainer_replay_attaches_every_stage_record_under_the_parent_once(tmp_path, s3_root, mlflow_server):
    """`act-trainer replay` (the program of the operator's replay Job) on SeaweedFS and the real MLflow
    server: one child run per record (two shards of collect, one judge) under the parent run, with
    the run ids in its termination message; run again it adds nothing. MLflow down: exit 1 (transient)."""
    import json
    import subprocess
    import sys

    from mlflow import MlflowClient

    from act_trainer.config import ReplayConfig

    uid = "u-" + uuid.uuid4().hex[:6]
    sources = {"collect": f"{s3_root}/pairs", "judge": f"{s3_root}/models/judge"}
    for out in (f"{sources['collect']}/shard-00000", f"{sources['collect']}/shard-00001", sources["judge"]):
        offline_stage(tmp_path, uid, output=out)
    client = MlflowClient(mlflow_server)
    exp = client.create_experiment(f"replayjob-{uid}")
    parent = client.create_run(exp, tags={"act.actjob.uid": uid}).info.run_id

    def run(uri: str):
        cfg = ReplayConfig(job={"name": "outage", "uid": uid}, output=s3_root, sources=sources,
                           tracking={"uri": uri, "experiment": "ignored", "parent_run_id": parent})
        (tmp_path / "replay.json").write_text(cfg.model_dump_json())
        result = tmp_path / "replay.result"
        result.unlink(missing_ok=True)
        proc = subprocess.run([sys.executable, "-m", "act_trainer.cli", "replay", "--config",
                               str(tmp_path / "replay.json")], capture_output=True, text=True, timeout=300,
                              env={**__import__("os").environ, "ACT_TERMINATION_LOG": str(result)})
        return proc, json.loads(result.read_text())

    proc, report = run(dead_url())
    assert proc.returncode == 1 and not report["permanent"], proc.stderr[-2000:]
    proc, report = run(mlflow_server)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(report["replay"]) == ["collect", "judge"] and len(report["replay"]["collect"]) == 2
    children = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted(r.info.run_id for r in children) == sorted(sum(report["replay"].values(), []))
    assert all(r.data.tags["act.replay"] == "complete" and r.data.params for r in children)
    proc, again = run(mlflow_server)
    assert proc.returncode == 0 and again == report  # idempotent: the same runs, none added
    assert len(client.search_runs([exp])) == 4  # the parent and three children


@pytest.mark.slow
def test_actjob_run_trains_through_an_mlflow_outage_and_completes_the_lineage_after(s3_root, tmp_path):
    """The real MLflow server stops once the preflight passed and the parent run is open; every
    stage still runs; the status says MLflow is unavailable; after MLflow comes back (same port,
    same store) `actjob run` again completes the lineage; a third run duplicates nothing."""
    import json
    import subprocess
    import sys

    import yaml
    from mlflow import MlflowClient
    from services import free_ports, mlflow_server

    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    (port,) = free_ports(1)
    store_dir = tmp_path / "mlflow"
    doc = yaml.safe_load((root / "examples" / "quickstart.yaml").read_text())
    uri = f"http://127.0.0.1:{port}"
    doc["spec"]["tracking"] = {"uri": uri, "experiment": "outage-e2e"}
    doc["spec"]["storage"]["root"] = s3_root  # (an http MLflow registers no local-path model source)
    doc["spec"]["stages"]["warmup"]["enabled"] = False  # the outage starts at collect, the first stage
    job_file = tmp_path / "actjob.yaml"
    job_file.write_text(yaml.safe_dump(doc))
    cmd = [sys.executable, "-m", "act_operator.cli", "run", str(job_file), "--workdir", str(tmp_path / "work")]
    state_file = tmp_path / "work" / "runs" / "quickstart" / "state.json"

    with mlflow_server(store_dir, port=port):
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        for line in proc.stdout:  # the parent run is open once the first stage starts
            lines.append(line)
            if "▶ collect" in line:
                break
    outage_started = time.monotonic()  # MLflow is down from here on
    explained_s = None
    for line in proc.stdout:
        lines.append(line)
        if explained_s is None and "MLflowUnavailable" in line:
            explained_s = time.monotonic() - outage_started
    out = "".join(lines)
    assert proc.wait(timeout=900) == 0, out[-5000:]
    for stage in ("collect", "judge", "policy", "eval"):
        assert f"✓ {stage}" in out
    assert "lineage pending" in out and explained_s is not None and explained_s < 30, explained_s
    status = json.loads(state_file.read_text())["status"]
    waiting = next(c for c in status["conditions"] if c["type"] == "Waiting")
    assert (status["phase"], waiting["status"], waiting["reason"]) == ("Succeeded", "True", "MLflowUnavailable")
    assert not status.get("registeredModel") and not status["mlflow"].get("replay")
    assert all(status["stages"][s]["trackingOffline"] for s in ("collect", "judge", "policy", "eval"))

    with mlflow_server(store_dir, port=port):  # MLflow answers again: the lineage is completed
        again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
        assert "▶" not in again.stdout + again.stderr  # no stage runs again
        third = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert third.returncode == 0
        status = json.loads(state_file.read_text())["status"]
        client = MlflowClient(uri)
        parent = client.get_run(status["mlflow"]["runId"])
        assert parent.info.status == "FINISHED"
        children = client.search_runs([parent.info.experiment_id],
                                      filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        by_stage = {}
        for run in children:
            by_stage.setdefault(run.data.tags["act.stage"], []).append(run)
        assert sorted(by_stage) == ["collect", "eval", "judge", "policy"]
        assert all(len(runs) == 1 for runs in by_stage.values()), {k: len(v) for k, v in by_stage.items()}
        for stage, [run] in by_stage.items():
            assert run.data.params and run.data.metrics, stage
            assert status["stages"][stage]["mlflowRunId"] == run.info.run_id
        assert {i.dataset.name for i in by_stage["judge"][0].inputs.dataset_inputs} == {"contrast_pairs"}
        assert len(client.get_metric_history(by_stage["judge"][0].info.run_id, "loss")) >= 2  # with their steps
        name, version = status["registeredModel"].split("/")
        mv = client.get_model_version(name, version)
        assert mv.run_id == parent.info.run_id and mv.tags["act.actjob.uid"]
        assert len(client.search_model_versions(f"name = '{name}'")) == 1  # registered once
        waiting = next(c for c in status["conditions"] if c["type"] == "Waiting")
        assert waiting["status"] == "False"
        replayed = next(c for c in status["conditions"] if c["type"] == "TrackingReplayed")
        assert status["mlflow"]["replay"]["phase"] == "Succeeded" and replayed["status"] == "True"
    print(f"outage explained after {explained_s:.1f}s")
