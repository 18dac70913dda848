"""The eval stage's reasoning benchmarks, run whole (`evaluate.run`) on the fixture files: with the
tiny random model through the transformers engine (it scores ~0: the structure and the grading
are what is checked), and with known completions behind the engine interface, graded right
through the same path, into results.json, the answers files, the manifest and MLflow."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("math_verify")
pytest.importorskip("scienceworld")

from reasoning_fixture import GPQA, MATH, ScriptedEngine  # noqa: E402

from act_trainer import reasoning, store  # noqa: E402
from act_trainer.config import EnvironmentConfig, EvalConfig, JobRef, TrackingConfig  # noqa: E402
from act_trainer.stages import evaluate  # noqa: E402

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("java") is None, reason="eval opens ScienceWorld: it needs Java")]

BENCHMARKS = [{"name": "math500", "data": f"file://{MATH}"}, {"name": "gpqa-diamond", "data": str(GPQA)}]


@pytest.fixture(scope="module")
def tracking(tmp_path_factory) -> TrackingConfig:
    """An MLflow store with the ACTJob's parent run, which a stage logs its child run under."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    client = MlflowClient(uri)
    parent = client.create_run(client.create_experiment("reasoning")).info.run_id
    return TrackingConfig(uri=uri, experiment="reasoning", parent_run_id=parent)


def eval_config(tmp_path, tracking: TrackingConfig | None = None, **reasoning_kw) -> EvalConfig:
    return EvalConfig(job=JobRef(name="t", uid="u"), output=f"file://{tmp_path}/eval", model="tiny://qwen3-tiny",
                      env=EnvironmentConfig(name="scienceworld", tasks=["find-living-thing"]), engine="hf",
                      episodes=0, action_states=0, judge_pairs=0, tracking=tracking or TrackingConfig(),
                      reasoning={"benchmarks": BENCHMARKS, **reasoning_kw})


def outputs(cfg: EvalConfig) -> tuple[dict, dict]:
    rows = json.loads(store.read_bytes(f"{cfg.output}/results.json"))["rows"]
    answers = {b["name"]: [json.loads(x) for x in store.read_bytes(f"{cfg.output}/reasoning/{b['name']}.jsonl")
                           .decode().splitlines()] for b in BENCHMARKS}
    return {(r["split"], r["metric"]): r for r in rows}, answers


def mlflow_metrics(cfg: EvalConfig, run_id: str) -> dict:
    from mlflow.tracking import MlflowClient

    return MlflowClient(cfg.tracking.uri).get_run(run_id).data.metrics


def test_the_tiny_model_answers_every_question_of_every_run_and_each_answer_is_graded(tmp_path, tracking):
    cfg = eval_config(tmp_path, tracking, repeats=2, limit=3, max_new_tokens=8, temperature=1.0)
    result = evaluate.run(cfg)
    rows, answers = outputs(cfg)
    for name in ("math500", "gpqa-diamond"):
        acc = rows[(f"reasoning/{name}", "accuracy")]
        assert (acc["n"], acc["repeats"]) == (3, 2) and 0 <= acc["value"] <= 1 and acc["std"] >= 0
        records = answers[name]
        assert sorted((r["id"], r["repeat"]) for r in records) == sorted(
            (q.id, rep) for q in reasoning.load_questions(name, str(MATH if name == "math500" else GPQA), "d")[:3]
            for rep in range(2))
        for r in records:  # each graded as the grader says
            assert (r["extracted"], r["correct"]) == reasoning.grade(name, r["completion"], r["reference"])
        assert result["metrics"][f"reasoning/{name}/accuracy"] == pytest.approx(
            sum(r["correct"] for r in records) / len(records))
        assert result["reasoning"][name]["questions"] == 3
    # GPQA references are letters of seeded orders: not all the same over 3 questions x 2 runs
    assert len({r["reference"] for r in answers["gpqa-diamond"]}) > 1
    logged = mlflow_metrics(cfg, result["mlflow_run_id"])
    assert {f"reasoning/{n}/{k}" for n in ("math500", "gpqa-diamond") for k in ("accuracy", "accuracy_std")} <= set(
        logged)


def test_known_completions_are_graded_right_through_the_stage(tmp_path, tracking, monkeypatch):
    cfg = eval_config(tmp_path, tracking, repeats=3, max_new_tokens=64)
    questions = {b["name"]: reasoning.load_questions(b["name"], b["data"], "d") for b in BENCHMARKS}

    class Both:  # one engine for the stage: each benchmark's prompts go to its script
        name = "scripted"

        def __init__(self):
            self.math = ScriptedEngine("math500", questions["math500"])
            self.gpqa = ScriptedEngine("gpqa-diamond", questions["gpqa-diamond"])

        def generate(self, prompts, **kw):
            script = self.gpqa if "multiple choice" in prompts[0][0]["content"] else self.math
            return script.generate(prompts, **kw)

    monkeypatch.setattr(evaluate, "make_engine", lambda *a, **k: Both())
    result = evaluate.run(cfg)
    rows, answers = outputs(cfg)
    # math: 10 questions, runs right on 8, 6, 7 of them; GPQA: 4 questions, right on min(4, 8|6|7) = 4
    assert (rows[("reasoning/math500", "accuracy")]["value"], rows[("reasoning/math500", "accuracy")]["std"]) == (
        pytest.approx(0.7), pytest.approx(0.1))
    assert (rows[("reasoning/gpqa-diamond", "accuracy")]["value"], rows[("reasoning/gpqa-diamond", "accuracy")][
        "std"]) == (1.0, 0.0)
    assert rows[("reasoning/math500", "no_answer_rate")]["value"] == 0.0
    assert sum(r["correct"] for r in answers["math500"]) == 21
    metrics = result["metrics"]
    assert metrics["reasoning/math500/accuracy"] == pytest.approx(0.7)
    assert metrics["reasoning/math500/accuracy_std"] == pytest.approx(0.1)
    assert metrics["reasoning/gpqa-diamond/questions"] == 4 and metrics["reasoning/gpqa-diamond/repeats"] == 3
    logged = mlflow_metrics(cfg, result["mlflow_run_id"])
    assert logged["reasoning/math500/accuracy"] == pytest.approx(0.7)
    assert logged["reasoning/math500/accuracy_std"] == pytest.approx(0.1)


def test_only_the_first_shard_runs_the_benchmarks(tmp_path):
    cfg = EvalConfig.model_validate({**eval_config(tmp_path).model_dump(), "shard": {"index": 1, "count": 2}})
    assert evaluate.load_reasoning(cfg) == {}
