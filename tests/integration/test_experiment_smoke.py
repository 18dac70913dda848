"""The ACT experiment, mechanically: it is one ACTExperiment, every arm runs, the metrics are in
range, the report, the plot and the experiment's MLflow run are written. It asserts nothing about
which arm wins."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "act_learns.py"


# The smoke runs what only the script adds (its expert file, fitted tiny model and warm-up, the report)
# over the kinds of child its rows need (the shared pairs, pi0's row, a judge and an arm reusing it);
# test_experiment_run.py runs every other arm's wiring, the Early Experience arms included.
ARMS = ["base", "act+il"]


def script():
    spec = importlib.util.spec_from_file_location("act_learns", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_full_experiments_are_valid_actexperiments(tmp_path):
    from act_operator.experiment import parse_experiment

    module = script()
    for setup in module.SETUPS.values():
        exp = parse_experiment(module.experiment(tmp_path, setup.full, setup))
        assert exp.spec.arms == setup.arms and exp.spec.template.stages.warmup.enabled
    assert set(module.ARMS) >= {"base", "act", "il", "act+il", "iwm+il", "sr+il", "rl", "act+rl"}
    # --reasoning DIR: every arm's eval also runs the paper's Table 3, and the table reports it
    fixture = ROOT / "tests" / "fixtures" / "reasoning"
    setup = module.with_reasoning(module.SMOLLM2, fixture)
    reasoning = parse_experiment(module.experiment(tmp_path, setup.full, setup)).spec.template.stages.eval.reasoning
    assert [(b.name, b.data) for b in reasoning.benchmarks] == [
        ("math500", f"file://{fixture}/math500.jsonl"), ("gpqa-diamond", f"file://{fixture}/gpqa-diamond.jsonl")]
    assert {"reasoning/math500/accuracy", "reasoning/gpqa-diamond/accuracy"} <= set(setup.metrics)


def test_experiment_smoke(tmp_path):
    from mlflow import MlflowClient

    from act_operator.experiment import parse_experiment
    from act_operator.local_experiment import load_experiment_state

    out = tmp_path / "experiment"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--arms", ",".join(ARMS), "--out", str(out)],
                          capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]

    exp = parse_experiment(yaml.safe_load((out / "act-learns.yaml").read_text()))  # the file a user can apply
    arms = ARMS
    assert exp.spec.arms == arms and exp.spec.seeds == [0] and exp.spec.template.stages.warmup.enabled
    _, _, status = load_experiment_state(out / "runs" / exp.metadata.name)
    assert status.phase == "Succeeded"
    assert all(c.phase == "Succeeded" for c in status.children.values()), status.children

    report = json.loads((out / "report" / "results.json").read_text())
    assert list(report["results"]) == arms  # every arm has a row
    for arm, metrics in report["results"].items():
        for metric in ("judge_accuracy", "dev/next_action_accuracy", "dev/success_rate"):
            assert 0.0 <= metrics[metric]["mean"] <= 1.0, (arm, metric)
            assert metrics[metric]["seeds"] == 1
    assert {r["arm"] for r in report["runs"]} == set(arms)
    curve = report["judge_reward_curves"]["0"]
    assert curve and all(0.0 <= r <= 1.0 for r in curve)
    png = out / "report" / "act_learns.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "judge_accuracy" in proc.stdout and "IL w/ ACT" in proc.stdout  # the table was printed

    client = MlflowClient(report["mlflow"]["tracking_uri"])  # the report is logged to the experiment's run
    assert report["mlflow"]["run_id"] == status.mlflow_run_id
    logged = {a.path for a in client.list_artifacts(status.mlflow_run_id, "report")}
    assert logged == {"report/results.json", "report/act_learns.png", "report/table.md"}
    for arm in arms:  # each arm's 95% interval, over the items its eval scored
        c = report["intervals"][arm]["judge_accuracy"]
        assert c["lo"] <= c["mean"] <= c["hi"] and c["items"] >= 1, (arm, c)
        assert c["mean"] == pytest.approx(report["results"][arm]["judge_accuracy"]["mean"])
    assert "IL w/ ACT" in (out / "report" / "table.md").read_text()
    assert set(report["stage_minutes"]) >= {"warmup", "collect", "judge", "policy", "eval"}
    reading = report["transcripts"]  # each arm's episodes to read, step by step
    assert {r["arm"] for r in reading.values()} == set(arms)
    assert all(r["transcripts"].endswith("/transcripts.jsonl") and r["eval_mlflow_run"] for r in reading.values())
