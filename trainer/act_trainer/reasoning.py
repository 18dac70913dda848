"""General reasoning after agent training (the paper's Table 3): MATH-500 and GPQA-Diamond.

Each benchmark is run `repeats` times through the eval stage's own generation engine (HF
generate or vLLM), with the model's chat template, each run with its own sampling seed (and,
for GPQA, its own seeded order of the four choices); accuracy is reported as the mean ± std
over the runs, as the paper reports it.

Grading: MATH answers by Hugging Face's math-verify (sympy-backed equivalence: `\\frac{1}{2}`
equals `0.5`, boxed answers extracted), GPQA by the letter, read leniently ("(B)", "Answer: B",
"**B**", "the answer is b", `\\boxed{B}`). Why math-verify rather than lm-evaluation-harness or
lighteval: a harness brings its own model runner and downloads its tasks at run time; here the
prompts go through the engine the stage already runs (vLLM on GPUs), the data come from the
Hub, S3 or a file the preflight has checked, and math-verify is the grader lighteval itself
uses for MATH.

Data: the Hub datasets (HuggingFaceH4/MATH-500 test; Idavidrein/gpqa gpqa_diamond, gated: the
token is HF_TOKEN in the environment, never in a config), or a JSONL file with the same
columns (`BENCHMARKS[...].columns`).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import statistics
import threading
from dataclasses import dataclass

from act_trainer.contract import ReasoningSettings
from act_trainer.errors import InputError, TransientError

LETTERS = "ABCD"


@dataclass(frozen=True)
class Benchmark:
    name: str
    hub: tuple[str, str | None, str]  # dataset id, config, split
    columns: tuple[str, ...]  # what a record must hold (the Hub dataset's own column names)
    id_column: str  # a stable id when the record has one (else the line number)
    gated: bool = False


BENCHMARKS = {
    "math500": Benchmark("math500", ("HuggingFaceH4/MATH-500", None, "test"), ("problem", "answer"), "unique_id"),
    "gpqa-diamond": Benchmark("gpqa-diamond", ("Idavidrein/gpqa", "gpqa_diamond", "train"),
                              ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                               "Incorrect Answer 3"), "Record ID", gated=True),
}


class ReasoningDataError(InputError):
    """Benchmark data that cannot be read or graded; the message names the field and the fix."""


class HubUnavailable(TransientError, ReasoningDataError):
    """The Hub did not answer: a retry may get through (a gated or unknown dataset is permanent)."""


@dataclass(frozen=True)
class Question:
    id: str
    text: str  # MATH: the problem; GPQA: the question
    answer: str  # MATH: the reference answer (LaTeX); GPQA: the correct choice
    wrong: tuple[str, ...] = ()  # GPQA: the three incorrect choices


# --- data ------------------------------------------------------------------------------------

def _fix(bench: Benchmark) -> str:
    return (f"write one JSON object a line with {', '.join(bench.columns)} (the columns of {bench.hub[0]}), "
            "or unset data to read the Hugging Face Hub")


def questions_from_records(records: list[dict], benchmark: str, where: str, field: str) -> list[Question]:
    """Records in the Hub dataset's columns -> questions; a missing or empty column is named with its line."""
    bench = BENCHMARKS[benchmark]
    out = []
    for i, r in enumerate(records, 1):
        if not isinstance(r, dict):
            raise ReasoningDataError(f"{field}: {where} line {i} is not a JSON object; {_fix(bench)}")
        missing = [c for c in bench.columns if not str(r.get(c) or "").strip()]
        if missing:
            raise ReasoningDataError(f"{field}: {where} line {i} has no {', '.join(missing)}; {_fix(bench)}")
        text, answer, *wrong = (str(r[c]).strip() for c in bench.columns)
        out.append(Question(str(r.get(bench.id_column) or i), text, answer, tuple(wrong)))
    if not out:
        raise ReasoningDataError(f"{field}: {where} holds no questions; {_fix(bench)}")
    return out


def parse_jsonl(blob: bytes, benchmark: str, where: str, field: str) -> list[Question]:
    records = []
    for i, line in enumerate(blob.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ReasoningDataError(f"{field}: {where} line {i} is not JSON ({e.msg}); "
                                     f"{_fix(BENCHMARKS[benchmark])}") from None
    return questions_from_records(records, benchmark, where, field)


def load_questions(benchmark: str, data: str | None, field: str) -> list[Question]:
    """The benchmark's questions, from `data` (s3://, file:// or a path: JSONL) or the Hub."""
    from act_trainer import store

    if data is not None:
        try:
            blob = store.read_bytes(data)
        except store.StoreError as e:
            raise ReasoningDataError(f"{field}: {e}; give a JSONL file of {benchmark} questions") from None
        return parse_jsonl(blob, benchmark, data, field)
    return _from_hub(BENCHMARKS[benchmark], field)


def hub_token_problem(bench: Benchmark) -> str | None:
    """Why a gated dataset cannot be read here (no token at all), or None."""
    if not bench.gated:
        return None
    from huggingface_hub import get_token

    if get_token():
        return None
    return (f"{bench.hub[0]} is gated on the Hugging Face Hub and no token is set: accept its terms with a Hub "
            "account, put the account's token in a Secret and give the pods HF_TOKEN from it (spec.pod.env: "
            "- name: HF_TOKEN, valueFrom: {secretKeyRef: {name: SECRET, key: KEY}}), or set data to a JSONL copy")


def _from_hub(bench: Benchmark, field: str) -> list[Question]:
    if problem := hub_token_problem(bench):
        raise ReasoningDataError(f"{field}: {problem}")
    import datasets

    repo, config, split = bench.hub
    try:  # the token, where there is one, comes from the environment (huggingface_hub reads HF_TOKEN)
        ds = datasets.load_dataset(repo, config, split=split)
    except Exception as e:  # noqa: BLE001 - network, gating and offline mode raise many kinds
        kind = ReasoningDataError if any(w in type(e).__name__ for w in ("Gated", "NotFound")) else HubUnavailable
        raise kind(
            f"{field}: {bench.name} from the Hugging Face Hub ({repo}) does not load ({type(e).__name__}: "
            f"{str(e)[:300]}); give the pods access to huggingface.co (and HF_TOKEN for a gated dataset), "
            "or set data to a JSONL copy in S3 or a file") from None
    return questions_from_records(list(ds), bench.name, repo, field)


# --- prompts -----------------------------------------------------------------------------------

MATH_PROMPT = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
# simple-evals' GPQA template (the one most reports use)
GPQA_PROMPT = ("Answer the following multiple choice question. The last line of your response should be of the "
               "following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by "
               "step before answering.\n\n{question}\n\n{choices}")


def run_seed(seed: int, repeat: int) -> int:
    """The sampling seed of one run of a benchmark (31 bits: what every engine takes)."""
    return int.from_bytes(hashlib.sha256(f"reasoning/{seed}/{repeat}".encode()).digest()[:4], "little") >> 1


def shuffle_choices(q: Question, seed: int, repeat: int) -> tuple[list[str], str]:
    """The four choices in the order of (seed, question, run), and the correct letter: stable
    whatever the other questions, their order or the shard, different from run to run."""
    choices = [q.answer, *q.wrong]
    random.Random(f"gpqa/{seed}/{q.id}/{repeat}").shuffle(choices)
    return choices, LETTERS[choices.index(q.answer)]


def prompt(benchmark: str, q: Question, seed: int, repeat: int) -> tuple[list[dict], str]:
    """The chat prompt of one question in one run, and the reference it is graded against."""
    if benchmark == "math500":
        return [{"role": "user", "content": MATH_PROMPT.format(problem=q.text)}], q.answer
    choices, letter = shuffle_choices(q, seed, repeat)
    listed = "\n".join(f"{LETTERS[i]}) {c}" for i, c in enumerate(choices))
    return [{"role": "user", "content": GPQA_PROMPT.format(question=q.text, choices=listed)}], letter


# --- grading -----------------------------------------------------------------------------------

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S)


def answer_part(text: str) -> str:
    """What follows the reasoning: an unclosed <think> (cut off by the token budget) holds no answer."""
    return _THINK.sub(" ", text)


_BOXED_LETTER = re.compile(r"\\boxed\{\s*(?:\\text(?:bf)?\{\s*)?\(?([A-Da-d])\)?\s*\}?\s*\}")
_SAID = re.compile(r"(?:answer|option|choice)(?:\s+is)?\s*[:=]?[\s*$(\[]*([A-Da-d])(?![A-Za-z0-9])(?=(.*)$)",
                   re.I | re.M)  # the rest of the line looked at, not consumed: a later statement there counts
_LONE = re.compile(r"^[\s*$(\[]*([A-D])[\s*$)\].]*$")


def extract_letter(text: str) -> str | None:
    """The chosen letter (A-D), read leniently: \\boxed{B}; "Answer: B", "answer is (B)", "the answer
    is b" (the last such statement; a lower-case letter only where nothing but punctuation follows
    it, so that "the answer is a bit ..." is no answer); else a last line that is the letter alone
    ("(B)", "**B**"). None when there is none."""
    body = answer_part(text)
    if boxed := _BOXED_LETTER.findall(body):
        return boxed[-1].upper()
    for letter, rest in reversed(_SAID.findall(body)):
        if letter.isupper() or rest.startswith(")") or not rest.strip(" \t*.)]$"):
            return letter.upper()
    lines = [ln for ln in body.splitlines() if ln.strip()]
    if lines and (m := _LONE.match(lines[-1])):
        return m.group(1)
    return None


def _timeout() -> int | None:
    # math-verify bounds its sympy work with signal.alarm, which only the main thread may set
    return 5 if threading.current_thread() is threading.main_thread() else None


def parse_gold(answer: str):
    """A MATH reference answer as math-verify reads it (empty: it cannot read it)."""
    from math_verify import parse

    return parse("\\boxed{" + answer + "}", parsing_timeout=_timeout())


def grade_math(completion: str, gold: str) -> tuple[str | None, bool]:
    """(the answer read from the completion, whether math-verify finds it equal to the reference)."""
    from math_verify import parse, verify

    found = parse(answer_part(completion), parsing_timeout=_timeout())
    if not found:
        return None, False
    return str(found[-1]), bool(verify(parse_gold(gold), found, timeout_seconds=_timeout()))


def grade(benchmark: str, completion: str, reference: str) -> tuple[str | None, bool]:
    if benchmark == "math500":
        return grade_math(completion, reference)
    letter = extract_letter(completion)
    return letter, letter == reference


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single run)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


# --- a benchmark -----------------------------------------------------------------------------

def run_benchmark(engine, benchmark: str, questions: list[Question], cfg: ReasoningSettings) -> tuple[dict, list]:
    """Every run of one benchmark through `engine`: ({accuracy, accuracy_std, no_answer_rate,
    questions, repeats}, one record per question and run)."""
    per_run, records = [], []
    for repeat in range(cfg.repeats):
        prompts, refs = zip(*(prompt(benchmark, q, cfg.seed, repeat) for q in questions), strict=True)
        outs = engine.generate(list(prompts), n=1, temperature=cfg.temperature, top_p=cfg.top_p,
                               max_new_tokens=cfg.max_new_tokens, seed=run_seed(cfg.seed, repeat))
        right = 0
        for q, ref, out in zip(questions, refs, outs, strict=True):
            extracted, correct = grade(benchmark, out[0], ref)
            right += correct
            records.append({"id": q.id, "repeat": repeat, "reference": ref, "extracted": extracted,
                            "correct": correct, "completion": out[0]})
        per_run.append(right / len(questions))
    mean, std = mean_std(per_run)
    return {"accuracy": mean, "accuracy_std": std,
            "no_answer_rate": sum(r["extracted"] is None for r in records) / len(records),
            "questions": len(questions), "repeats": cfg.repeats}, records
