"""The reasoning benchmarks' grading (math-verify for MATH, the GPQA letter read leniently), the
seeded choice order, mean ± std over runs, and the data's errors: on the fixture of known answers
(tests/fixtures/reasoning), no network."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("math_verify")

from reasoning_fixture import GPQA, MATH, MATH_ANSWERS, ScriptedEngine  # noqa: E402

from act_operator.api import SpecError, parse_spec  # noqa: E402
from act_trainer import reasoning  # noqa: E402
from act_trainer.contract import ReasoningSettings  # noqa: E402


def math_questions():
    return reasoning.load_questions("math500", f"file://{MATH}", "data")


def gpqa_questions():
    return reasoning.load_questions("gpqa-diamond", str(GPQA), "data")


def test_math_equivalents_are_right_and_others_wrong():
    questions = math_questions()
    assert sorted(q.id for q in questions) == sorted(MATH_ANSWERS)
    for q in questions:
        right, wrong = MATH_ANSWERS[q.id]
        for text in right:
            extracted, correct = reasoning.grade("math500", text, q.answer)
            assert correct and extracted, (q.id, text)
        for text in wrong:
            assert not reasoning.grade("math500", text, q.answer)[1], (q.id, text)


def test_a_math_completion_without_an_answer_is_none():
    assert reasoning.grade("math500", "I do not know.", "25") == (None, False)
    assert reasoning.grade("math500", "<think>25 maybe, cut off by the budget", "25") == (None, False)


@pytest.mark.parametrize("text, letter", [
    ("(B)", "B"), ("Answer: B", "B"), ("**B**", "B"), ("the answer is b", "B"), ("The answer is (c).", "C"),
    ("Reasoning...\nAnswer: **D**", "D"), ("ANSWER: $A$", "A"), ("so \\boxed{C}", "C"), ("\\boxed{\\text{D}}", "D"),
    ("The correct option is C) since ...", "C"), ("Answer: a)", "A"), ("The answer is A, then Answer: B", "B"),
    ("<think>Answer: A</think>\nAnswer: C", "C"),
])
def test_gpqa_letters_are_read_in_every_format(text, letter):
    assert reasoning.extract_letter(text) == letter


@pytest.mark.parametrize("text", [
    "The answer is a bit unclear.", "I cannot tell.", "Answer choices listed above", "<think>Answer: B",
    "Answer: $LETTER",
])
def test_no_letter_is_none(text):
    assert reasoning.extract_letter(text) is None


def test_choices_are_shuffled_by_seed_stably_and_the_letter_points_at_the_correct_answer():
    questions = gpqa_questions()
    for q in questions:
        for repeat in range(3):
            choices, letter = reasoning.shuffle_choices(q, 7, repeat)
            assert sorted(choices) == sorted([q.answer, *q.wrong])
            assert choices["ABCD".index(letter)] == q.answer
            assert reasoning.shuffle_choices(q, 7, repeat) == (choices, letter)  # stable
    # independent of the other questions: one question alone gets the same order
    alone = reasoning.shuffle_choices(questions[2], 7, 1)
    assert alone == reasoning.shuffle_choices(gpqa_questions()[2], 7, 1)
    # the seed and the run change the order; over many, every letter is the correct one sometimes
    orders = {tuple(reasoning.shuffle_choices(q, s, r)[0]) for q in questions for s in (0, 1) for r in range(3)}
    assert len(orders) > len(questions)
    letters = {reasoning.shuffle_choices(q, s, r)[1] for q in questions for s in range(5) for r in range(5)}
    assert letters == set("ABCD")
    prompt, ref = reasoning.prompt("gpqa-diamond", questions[0], 7, 0)
    assert f"{ref}) {questions[0].answer}" in prompt[0]["content"]


def test_mean_and_std_over_runs():
    assert reasoning.mean_std([0.8, 0.6, 0.7]) == pytest.approx((0.7, 0.1))
    assert reasoning.mean_std([0.5]) == (0.5, 0.0)


@pytest.mark.parametrize("name", ["math500", "gpqa-diamond"])
def test_runs_are_graded_into_mean_and_std(name):
    questions = math_questions() if name == "math500" else gpqa_questions() * 2 + gpqa_questions()[:2]
    cfg = ReasoningSettings(benchmarks=[{"name": name}], repeats=3, max_new_tokens=64)
    engine = ScriptedEngine(name, questions)
    measured, records = reasoning.run_benchmark(engine, name, questions, cfg)
    assert measured == pytest.approx({"accuracy": 0.7, "accuracy_std": 0.1, "no_answer_rate": 0.0,
                                      "questions": 10, "repeats": 3})
    assert engine.calls == [(10, 1, 0.6, 64)] * 3
    assert len(records) == 30 and sum(r["correct"] for r in records) == 21


def test_a_missing_column_is_named_with_its_line(tmp_path):
    bad = tmp_path / "m.jsonl"
    bad.write_text(json.dumps({"problem": "1+1", "answer": "2"}) + "\n" + json.dumps({"problem": "2+2"}) + "\n")
    with pytest.raises(reasoning.ReasoningDataError, match=r"^F: .*m.jsonl line 2 has no answer; write one JSON"):
        reasoning.load_questions("math500", str(bad), "F")
    bad.write_text('{"Question": "q", "Correct Answer": "a"\n')
    with pytest.raises(reasoning.ReasoningDataError, match="line 1 is not JSON"):
        reasoning.load_questions("gpqa-diamond", str(bad), "F")
    bad.write_text("\n")
    with pytest.raises(reasoning.ReasoningDataError, match="holds no questions"):
        reasoning.load_questions("gpqa-diamond", str(bad), "F")
    with pytest.raises(reasoning.ReasoningDataError, match="^F: .*(no such|not exist|does not exist|missing)"):
        reasoning.load_questions("math500", str(tmp_path / "none.jsonl"), "F")


def test_gated_gpqa_without_a_token_says_how_to_give_one(monkeypatch, tmp_path):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(reasoning.ReasoningDataError, match="gated.*HF_TOKEN.*secretKeyRef"):
        reasoning.load_questions("gpqa-diamond", None, "stages.eval.reasoning.benchmarks[1]")


def test_the_spec_field():
    base = {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "alfworld"}}
    spec = parse_spec({**base, "stages": {"eval": {"splits": ["valid_seen"], "reasoning": {
        "benchmarks": [{"name": "math500", "data": "s3://b/math.jsonl"}, {"name": "gpqa-diamond"}],
        "repeats": 5, "maxNewTokens": 1024, "limit": 50}}}})
    r = spec.stages.eval.reasoning
    assert [(b.name, b.data) for b in r.benchmarks] == [("math500", "s3://b/math.jsonl"), ("gpqa-diamond", None)]
    assert (r.repeats, r.max_new_tokens, r.limit, r.seed) == (5, 1024, 50, 0)
    with pytest.raises(SpecError, match=r"spec.stages.eval.reasoning.benchmarks: math500 listed more than once"):
        parse_spec({**base, "stages": {"eval": {"splits": ["valid_seen"], "reasoning": {
            "benchmarks": [{"name": "math500"}, {"name": "math500", "data": "file:///m.jsonl"}]}}}})
    with pytest.raises(SpecError, match=r"spec.stages.eval.reasoning.benchmarks\[0\].data: unsupported URI"):
        parse_spec({**base, "stages": {"eval": {"splits": ["valid_seen"], "reasoning": {
            "benchmarks": [{"name": "math500", "data": "http://x/m.jsonl"}]}}}})
