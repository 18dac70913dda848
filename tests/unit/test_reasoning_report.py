"""The reasoning accuracies reach the comparison tables (`actjob compare`, the ACTExperiment's arms
table) as columns with the paper's Table 3 beside them, the run summary, and survive the merge of
eval shards (only the first shard measures them)."""

from __future__ import annotations

from rich.console import Console

from act_operator.launch import merge_metrics
from act_operator.local import key_metrics
from act_operator.report import Run, table

MATH, GPQA = "reasoning/math500/accuracy", "reasoning/gpqa-diamond/accuracy"


def render(t) -> str:
    console = Console(width=250, record=True)
    console.print(t)
    return console.export_text()


def test_compare_shows_both_benchmarks_with_the_papers_numbers():
    runs = [Run("IL", "alfworld", {"valid_seen/success_rate": 0.5, MATH: 0.30, "reasoning/math500/accuracy_std": 0.02,
                                   GPQA: 0.25}),
            Run("IL", "alfworld", {"valid_seen/success_rate": 0.7, MATH: 0.40, GPQA: 0.35}),
            Run("RL", "alfworld", {"valid_seen/success_rate": 0.6, MATH: 0.50, GPQA: 0.20})]
    text = render(table(runs))
    header = next(line for line in text.splitlines() if "method" in line)
    assert [c in header for c in (MATH, f"paper {MATH}", GPQA, f"paper {GPQA}")] == [True] * 4
    assert "accuracy_std" not in header  # the within-run std is a metric, not a column
    il = next(line for line in text.splitlines() if line.strip("│ ").startswith("IL"))
    assert "35.0 ± 7.1" in il and "87.0" in il and "30.0 ± 7.1" in il and "44.6" in il
    rl = next(line for line in text.splitlines() if line.strip("│ ").startswith("RL"))
    assert "87.1" in rl and "52.4" in rl


def test_the_first_shard_s_reasoning_numbers_survive_the_merge():
    first = {"episodes": 2, "success_rate": 0.5, MATH: 0.4, "reasoning/math500/accuracy_std": 0.05,
             "reasoning/math500/no_answer_rate": 0.1, "reasoning/math500/questions": 10,
             "reasoning/math500/repeats": 3}
    second = {"episodes": 2, "success_rate": 1.0}
    merged = merge_metrics([first, second])
    assert {k: v for k, v in merged.items() if k.startswith("reasoning/")} == {
        k: v for k, v in first.items() if k.startswith("reasoning/")}
    assert merged["success_rate"] == 0.75


def test_the_run_summary_shows_the_accuracies():
    shown = key_metrics("eval", {"dev/success_rate": 0.5, MATH: 0.25, "reasoning/math500/accuracy_std": 0.01})
    assert shown == f"dev/success_rate=0.5, {MATH}=0.25"
