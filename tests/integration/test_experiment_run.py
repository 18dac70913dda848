"""`actjob run` of an ACTExperiment: arms and seeds over one collect and one judge per seed, and
the Early Experience arms on the same pairs, end to end on ScienceWorld with the tiny model, the
lineage in a real MLflow server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def test_an_experiment_runs_its_arms_over_shared_stages_and_prints_table_1(mlflow_server, tmp_path):
    from mlflow import MlflowClient

    doc = yaml.safe_load((ROOT / "examples" / "table1-quickstart.yaml").read_text())
    doc["metadata"]["name"] = "t1"
    doc["spec"].update(arms=["act+il", "act", "iwm+il", "sr+il"], seeds=[0])
    tpl = doc["spec"]["template"]
    tpl["storage"]["root"] = f"file://{tmp_path}/storage"
    tpl["tracking"] = {"uri": mlflow_server, "experiment": "itest-experiment"}
    tpl["stages"]["eval"].update(episodes=1, actionStates=4, judgePairs=4)
    (tmp_path / "t1.yaml").write_text(yaml.safe_dump(doc))
    work = tmp_path / "work"
    proc = subprocess.run([sys.executable, "-m", "act_operator.cli", "run", "t1.yaml", "--workdir", str(work)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "ACTExperiment t1: Succeeded" in out
    for label in ("IL w/ ACT", "ACT only", "IL w/ IWM", "IL w/ SR"):
        assert label in out

    state = json.loads((work / "runs" / "t1" / "experiment.json").read_text())["status"]
    assert state["phase"] == "Succeeded"
    assert set(state["children"]) == {"pairs", "act-s0", "act-il-s0", "iwm-il-s0", "sr-il-s0"}  # one collect, one judge
    assert [(r["arm"], r["seeds"]) for r in state["arms"]] == [("act+il", 1), ("act", 1), ("iwm+il", 1), ("sr+il", 1)]

    def child(key):
        return json.loads((work / "runs" / f"t1-{key}" / "state.json").read_text())["status"]["stages"]

    for key in state["children"]:  # the lineage is complete: a local model on a server is not registered, and
        conditions = json.loads((work / "runs" / f"t1-{key}" / "state.json").read_text())["status"]["conditions"]
        assert not [c for c in conditions if c["type"] == "Waiting" and c["status"] == "True"], (key, conditions)
    assert "not registered: the MLflow server" in out  # ... says why, instead of waiting for ever

    pairs, judge = child("pairs")["collect"]["outputs"]["uri"], child("act-s0")["judge"]["outputs"]["uri"]
    for key in ("act-s0", "act-il-s0", "iwm-il-s0", "sr-il-s0"):  # collected once ...
        assert child(key)["collect"]["phase"] == "Reused" and child(key)["collect"]["outputs"]["uri"] == pairs
    assert child("act-il-s0")["judge"]["outputs"]["uri"] == judge  # ... judged once per seed
    pi0 = child("pairs")["warmup"]["outputs"]["uri"]  # ... warmed up once: every arm starts from pi0
    for key in ("act-s0", "act-il-s0", "iwm-il-s0", "sr-il-s0"):
        assert child(key)["warmup"]["phase"] == "Skipped"
        spec = json.loads((work / "runs" / f"t1-{key}" / "spec.json").read_text())
        assert spec["model"]["uri"] == pi0
    # the Early Experience arms: their judge stage learnt from the outcomes the shared collect recorded
    collect = json.loads(Path(pairs.removeprefix("file://"), "_MANIFEST.json").read_text())
    assert collect["metrics"]["outcomes_recorded"] == collect["metrics"]["kept"] > 0
    for method in ("iwm", "sr"):
        judge_out = child(f"{method}-il-s0")["judge"]
        assert judge_out["phase"] == "Succeeded" and judge_out["outputs"]["uri"] != judge
        manifest = json.loads(Path(judge_out["outputs"]["uri"].removeprefix("file://"), "_MANIFEST.json").read_text())
        assert manifest["method"] == method and manifest["metrics"]["pairs"] > 0
        assert manifest["metrics"]["examples"] >= manifest["metrics"]["pairs"]
        assert child(f"{method}-il-s0")["policy"]["phase"] == "Succeeded"
    rationales = Path(child("sr-il-s0")["judge"]["outputs"]["uri"].removeprefix("file://"), "rationales.jsonl")
    assert len(rationales.read_text().splitlines()) == manifest["metrics"]["pairs"]

    client = MlflowClient(mlflow_server)
    run = client.get_run(state["mlflowRunId"])
    assert run.info.status == "FINISHED" and run.data.tags["act.experiment"] == "t1"
    assert "act_il.dev/next_action_accuracy" in run.data.metrics
    nested = client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert sorted(r.data.tags["act.actjob"] for r in nested) == ["t1-act-il-s0", "t1-act-s0", "t1-iwm-il-s0",
                                                                  "t1-pairs", "t1-sr-il-s0"]
    assert {r.data.tags["act.arm"] for r in nested} == {"shared", "act-il", "act", "iwm-il", "sr-il"}

    again = subprocess.run([sys.executable, "-m", "act_operator.cli", "compare", str(work / "runs" / "t1")],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "IL w/ ACT" in again.stdout and "ACTExperiment t1" in again.stdout
