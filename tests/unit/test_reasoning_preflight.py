"""The preflight reads the reasoning benchmarks' data (stages.eval.reasoning) as the eval stage will:
a missing or malformed file, an answer math-verify cannot read, or the gated GPQA without a token
fails it with the field named and the fix; good files pass. No network (HF_HUB_OFFLINE)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("math_verify")

from reasoning_fixture import GPQA, MATH  # noqa: E402

from act_operator.api import API_VERSION, parse_actjob  # noqa: E402
from act_operator.stages import stage_config  # noqa: E402
from act_trainer import preflight  # noqa: E402

FIELD = "spec.stages.eval.reasoning.benchmarks"


def make_job(tmp_path, benchmarks, **eval_kw):
    return parse_actjob({
        "apiVersion": API_VERSION, "kind": "ACTJob", "metadata": {"name": "demo", "uid": "u-1"},
        "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                 "storage": {"root": f"file://{tmp_path}/store"},
                 "stages": {"eval": {"reasoning": {"benchmarks": benchmarks}, **eval_kw}}},
    })


def reasoning_problems(job) -> list[str]:
    cfg = stage_config(job, "preflight")
    assert "reasoning" in [what for what, _ in preflight.checks(cfg)]
    return [p for p in preflight.problems(cfg) if ".reasoning." in p]


def test_good_files_pass(tmp_path):
    job = make_job(tmp_path, [{"name": "math500", "data": f"file://{MATH}"}, {"name": "gpqa-diamond",
                                                                               "data": str(GPQA)}])
    assert reasoning_problems(job) == []


def test_missing_and_malformed_files_are_named_with_the_fix(tmp_path):
    malformed = tmp_path / "gpqa.jsonl"
    malformed.write_text(json.dumps({"Question": "q?", "Correct Answer": "a", "Incorrect Answer 1": "b"}) + "\n")
    job = make_job(tmp_path, [{"name": "math500", "data": f"file://{tmp_path}/nowhere.jsonl"},
                              {"name": "gpqa-diamond", "data": f"file://{malformed}"}])
    found = reasoning_problems(job)
    assert len(found) == 2
    assert found[0].startswith(f"{FIELD}[0].data: ") and "nowhere.jsonl" in found[0]
    assert "give a JSONL file of math500 questions" in found[0]
    assert found[1] == (f"{FIELD}[1].data: file://{malformed} line 1 has no Incorrect Answer 2, Incorrect Answer 3; "
                        "write one JSON object a line with Question, Correct Answer, Incorrect Answer 1, Incorrect "
                        "Answer 2, Incorrect Answer 3 (the columns of Idavidrein/gpqa), or unset data to read the "
                        "Hugging Face Hub")


def test_an_answer_math_verify_cannot_read_is_named(tmp_path):
    math = tmp_path / "math.jsonl"
    math.write_text(MATH.read_text() + json.dumps({"problem": "p", "answer": "}{", "unique_id": "bad/1"}) + "\n")
    found = reasoning_problems(make_job(tmp_path, [{"name": "math500", "data": str(math)}]))
    assert found == [f"{FIELD}[0].data: math-verify cannot read the answer of 1 question(s) (bad/1); write each "
                     "answer as LaTeX or a number, e.g. \\frac{1}{2} or 0.5"]


def test_the_gated_hub_dataset_without_a_token_is_named(tmp_path, monkeypatch):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
    found = reasoning_problems(make_job(tmp_path, [{"name": "gpqa-diamond"}]))
    assert len(found) == 1 and found[0].startswith(f"{FIELD}[0]: Idavidrein/gpqa is gated")
    assert "valueFrom: {secretKeyRef" in found[0] and "set data to a JSONL copy" in found[0]


def test_nothing_is_checked_when_eval_runs_no_benchmark(tmp_path):
    for job in (make_job(tmp_path, []), make_job(tmp_path, [{"name": "math500"}], enabled=False)):
        cfg = stage_config(job, "preflight")
        assert cfg.reasoning is None and "reasoning" not in [what for what, _ in preflight.checks(cfg)]
