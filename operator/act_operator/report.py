"""Paper-style comparison tables of finished ACTJobs (`actjob compare`, the experiment report).

A run is summarised by what its eval stage measured; runs that share a label (an arm of an
experiment, e.g. "IL w/ ACT") are aggregated as mean ± std over their seeds.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from act_operator.api import ACTJob
from act_operator.rundir import RunDir
from act_trainer.stagedefs import EVAL, JUDGE, POLICY

# METHOD.md: Qwen3-8B, success % (ALFWorld ID/OOD, WebShop), next-action accuracy % (ScienceWorld)
# The paper's "Early Experience" row is its reflection-distillation baseline (METHOD.md), shown
# beside our self-reflection arm (IL w/ SR); it reports no IWM row.
PAPER = {
    ("alfworld", "valid_seen", "success_rate"): {"IL": 85.71, "IL w/ ACT": 91.43, "RL": 90.71, "RL w/ ACT": 92.86,
                                                 "ACT only": 72.86, "IL w/ SR": 87.86},
    ("alfworld", "valid_unseen", "success_rate"): {"IL": 82.84, "IL w/ ACT": 87.31, "RL": 84.33,
                                                   "RL w/ ACT": 88.06, "ACT only": 72.39, "IL w/ SR": 85.82},
    ("webshop", "test", "success_rate"): {"IL": 28.00, "IL w/ ACT": 31.60, "RL": 29.40, "RL w/ ACT": 33.80,
                                          "ACT only": 7.40, "IL w/ SR": 31.00},
    ("scienceworld", "test", "next_action_accuracy"): {"IL": 42.80, "IL w/ ACT": 48.69, "RL": 43.04,
                                                       "RL w/ ACT": 50.34, "ACT only": 26.71, "IL w/ SR": 45.60},
    # Table 3, general reasoning after ALFWorld training (accuracy %); its "ACT" row (87.73 / 53.37)
    # does not say which of our ACT arms it is, so it is left out rather than guessed
    ("alfworld", "reasoning/math500", "accuracy"): {"IL": 87.00, "RL": 87.07},
    ("alfworld", "reasoning/gpqa-diamond", "accuracy"): {"IL": 44.61, "RL": 52.36},
}


# the paper's measures; accuracy: the reasoning benchmarks' (reasoning/<benchmark>/accuracy)
HEADLINE = ("success_rate", "next_action_accuracy", "judge_accuracy", "accuracy")


@dataclass
class Run:
    label: str
    env: str
    metrics: dict[str, float]
    name: str = ""


def arm_label(job: ACTJob) -> str:
    """IL / RL / ACT only / IL w/ ACT / RL w/ ACT (IL w/ IWM, IL w/ SR: the Early Experience
    judge methods), from what the ACTJob ran."""
    st = job.status.stages
    judged = st[JUDGE.name].phase in ("Succeeded", "Reused")
    via = "ACT" if job.spec.stages.judge.method == "act" else job.spec.stages.judge.method.upper()
    method = job.spec.stages.policy.method if st[POLICY.name].phase == "Succeeded" else "none"
    if method == "none":
        return f"{via} only" if judged else "base"
    return f"{method.upper()} w/ {via}" if judged else method.upper()


def load_run(path: Path, label: str | None = None) -> Run:
    """A finished `actjob run`: its run directory (with state.json) or the state.json itself."""
    run_dir = RunDir.at(path)
    job = run_dir.load_job()
    if job is None:
        raise SystemExit(f"actjob compare: {path} is not a finished run: no {RunDir.STATE} and {RunDir.SPEC} in "
                         f"{run_dir} (give a run directory, .act/runs/NAME, of `actjob run`)")
    return Run(label or arm_label(job), job.spec.environment.name, dict(job.status.stages[EVAL.name].metrics),
               name=job.metadata.name)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(runs: list[Run]) -> dict[str, dict[str, tuple[float, float, int]]]:
    """label -> metric -> (mean, std, seeds)."""
    by_label: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for metric, value in run.metrics.items():
            by_label.setdefault(run.label, {}).setdefault(metric, []).append(value)
    return {label: {m: (*mean_std(v), len(v)) for m, v in metrics.items()} for label, metrics in by_label.items()}


def table(runs: list[Run], metrics: list[str] | None = None, percent: bool = True):
    """A rich Table: one row per label, one column per metric (mean ± std), and the paper's
    number beside a metric where environment, split and metric match."""
    return agg_table(aggregate(runs), runs[0].env if runs else "", metrics, percent)


def agg_table(agg: dict[str, dict[str, tuple[float, float, int]]], env: str, metrics: list[str] | None = None,
              percent: bool = True, title: str | None = None, caption: str | None = None):
    """`table` of rows already aggregated: label -> metric -> (mean, std, seeds)."""
    from rich.table import Table

    metrics = metrics or sorted({m for values in agg.values() for m in values if m.rpartition("/")[2] in HEADLINE})
    scale = 100.0 if percent else 1.0
    t = Table(title=title or f"{env}: mean ± std over seeds" + (" (%)" if percent else ""), caption=caption)
    t.add_column("method", no_wrap=True)
    t.add_column("seeds", justify="right")
    for m in metrics:
        t.add_column(m, justify="right")
        split, _, name = m.rpartition("/")
        if (env, split, name) in PAPER:
            t.add_column(f"paper {m}", justify="right", style="dim")
    for label, values in agg.items():
        row = [label, str(max((n for _, _, n in values.values()), default=0))]
        for m in metrics:
            if m in values:
                mean, std, _ = values[m]
                row.append(f"{mean * scale:.1f} ± {std * scale:.1f}")
            else:
                row.append("-")
            split, _, name = m.rpartition("/")
            if (env, split, name) in PAPER:
                ref = PAPER[(env, split, name)].get(label)
                row.append(f"{ref:.1f}" if ref is not None else "-")
        t.add_row(*row)
    return t


def plot(runs: list[Run], path: str | Path, metrics: list[str] | None = None, percent: bool = True) -> Path:
    """The comparison as a PNG: one panel per metric, a bar per method (mean, with the std over
    seeds as an error bar) and the paper's number as a marker where environment, split and metric
    match. matplotlib is an extra of the control plane: a clear error names it when missing."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("actjob compare --plot needs matplotlib: pip install matplotlib "
                         "(the trainer extra has it)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg = aggregate(runs)
    env = runs[0].env if runs else ""
    metrics = metrics or sorted({m for r in runs for m in r.metrics if m.rpartition("/")[2] in HEADLINE})
    if not metrics:
        raise SystemExit("actjob compare --plot: the runs have no eval metrics to draw")
    scale = 100.0 if percent else 1.0
    labels = list(agg)
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(4.0, 1.2 * len(labels) + 1.5) * len(metrics), 3.8),
                             squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        means = [agg[lb].get(m, (0.0, 0.0, 0))[0] * scale for lb in labels]
        stds = [agg[lb].get(m, (0.0, 0.0, 0))[1] * scale for lb in labels]
        bars = ax.bar(labels, means, yerr=stds, capsize=4, color="tab:blue", label="ours")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        split, _, name = m.rpartition("/")
        paper = PAPER.get((env, split, name), {})
        refs = [(i, paper[lb]) for i, lb in enumerate(labels) if lb in paper]
        if refs:
            ax.scatter(*zip(*refs, strict=True), marker="_", s=600, color="black", zorder=3, label="paper (Qwen3-8B)")
        top = max([m + s for m, s in zip(means, stds, strict=True)] + [v for _, v in refs] + [1e-9])
        ax.set_ylim(0, top * 1.25)  # room above the bars for the labels and the legend
        ax.legend(fontsize=8, loc="upper center", ncols=2)
        ax.set_title(m + (" (%)" if percent else ""))
        ax.tick_params(axis="x", rotation=20)
    fig.suptitle(f"{env}: mean ± std over seeds")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return out
