"""MLflow outages hold no training back: a stage whose MLflow does not answer records what it
would have logged in `<output>/_TRACKING.json` and succeeds; the executor replays the record into
a child run under the parent run once MLflow answers, once (nothing lost, nothing duplicated)."""

from __future__ import annotations

import time
import uuid

import pytest

from act_trainer.config import PreflightConfig
from act_trainer.tracking import TRACKING_FILE, records, replay, stage_run

pytestmark = pytest.mark.integration


def dead_url() -> str:
    from services import free_ports

    return f"http://127.0.0.1:{free_ports(1)[0]}"


def offline_stage(tmp_path, uid: str):
    cfg = PreflightConfig(job={"name": "outage", "uid": uid}, output=(tmp_path / "out").as_uri(),
                          model="tiny://qwen3-tiny", tracking={"uri": dead_url(), "experiment": "outage"})
    t0 = time.monotonic()
    with stage_run(cfg) as run:
        assert run.offline and "start_run" in run.offline
        run.log_metrics({"loss": 1.0, "reward": 0.25}, step=1)
        run.log_metrics({"loss": 0.5, "reward": 0.75}, step=2)
        run.log_dataset("s3://bucket/act/pairs", "contrast_pairs", "sha256:" + "ab" * 32, "training",
                        rows=[{"pair_id": "p1", "expert_action": "look"}])
        run.set_tags({"act.digest": "sha256:feed"})
        run.log_dict({"kept": 3}, "filter_report.json")
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
    assert not status.get("registeredModel")

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
    print(f"outage explained after {explained_s:.1f}s")
