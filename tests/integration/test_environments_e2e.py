"""Whole ACTJobs on the paper's benchmarks, as `actjob run` runs them, with the tiny model:
ALFWorld (ID = valid_seen, OOD = valid_unseen) here; ScienceWorld is the quickstart
(test_actjob_run.py); TextWorldExpress is the experiment's smoke test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from act_trainer import store

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_alfworld_actjob_reports_id_and_ood(alfworld_data, tmp_path):
    pytest.importorskip("alfworld")
    doc = {"apiVersion": "act-operator.io/v1alpha1", "kind": "ACTJob", "metadata": {"name": "alfworld-cpu"},
           "spec": {
               "model": {"uri": "tiny://qwen3-tiny"},
               "environment": {"name": "alfworld", "dataDir": str(alfworld_data), "expertType": "walkthrough",
                               "maxSteps": 3, "history": 1,
                               "expert": {"split": "train", "episodes": 2, "maxLength": 60}},
               "storage": {"root": f"file://{tmp_path / 'storage'}"},
               "stages": {
                   # a random-weight model rarely names an admissible command: keep what it says
                   "collect": {"samples": 2, "maxAlternatives": 1, "maxNewTokens": 8, "heldoutFraction": 0.5,
                               "filterInadmissible": False, "maxRetries": 0},
                   "judge": {"groupSize": 2, "batchSize": 2, "maxSteps": 1, "maxCompletionLength": 8,
                             "gradientCheckpointing": False, "maxRetries": 0},
                   "policy": {"method": "il", "batchSize": 2, "maxSteps": 1, "gradientCheckpointing": False,
                              "maxRetries": 0},
                   "eval": {"splits": ["valid_seen", "valid_unseen"], "episodes": 1, "actionStates": 2,
                            "judgePairs": 2, "maxNewTokens": 8, "maxRetries": 0},
               }}}
    path = tmp_path / "alfworld.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = subprocess.run([sys.executable, "-m", "act_operator.cli", "run", str(path), "--workdir",
                           str(tmp_path / "work")], capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    state = json.loads((tmp_path / "work" / "runs" / "alfworld-cpu" / "state.json").read_text())
    eval_uri = state["status"]["stages"]["eval"]["outputs"]["uri"]
    rows = json.loads(store.read_bytes(f"{eval_uri}/results.json"))["rows"]
    found = {(r["split"], r["metric"]): r for r in rows}
    for split in ("valid_seen", "valid_unseen"):  # the paper's ID and OOD
        assert found[(split, "success_rate")]["n"] == 1 and 0.0 <= found[(split, "success_rate")]["value"] <= 1.0
        assert any(m.startswith("success_rate.") for s, m in found if s == split)  # the task-type breakdown
        assert (split, "next_action_accuracy") in found
    assert all(r["environment"] == "alfworld" for r in rows)
    metrics = state["status"]["stages"]["eval"]["metrics"]
    assert "valid_seen/success_rate" in metrics and "valid_unseen/success_rate" in metrics
    compare = subprocess.run([sys.executable, "-m", "act_operator.cli", "compare",
                              str(tmp_path / "work" / "runs" / "alfworld-cpu")], capture_output=True, text=True)
    assert compare.returncode == 0 and "IL w/ ACT" in compare.stdout and "paper" in compare.stdout
    assert Path(tmp_path / "work" / "runs" / "alfworld-cpu" / "spec.json").exists()
