"""Pictures for a stage's MLflow child run: training curves (judge, policy), collect's filter
report, eval's success per split and per task type. matplotlib with the Agg backend (no display);
`log_plot` never fails a stage: a plot that cannot be drawn or logged is a warning."""

from __future__ import annotations

import logging

log = logging.getLogger("act_trainer")

CURVES = ("reward", "loss", "malformed_rate")  # what the trainers log that is worth a curve


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # before pyplot: stage pods and CI have no display
    import matplotlib.pyplot as plt

    return plt


def training_curves(log_history: list[dict], title: str):
    """One panel per logged curve (reward, loss, malformed rate) against the optimizer step;
    None when the trainer logged none of them."""
    series = {k: [(h["step"], h[k]) for h in log_history if k in h and "step" in h] for k in CURVES}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(series), figsize=(4 * len(series), 3.2), squeeze=False)
    for ax, (key, points) in zip(axes[0], series.items(), strict=True):
        steps, values = zip(*points, strict=True)
        ax.plot(steps, values, marker="o" if len(points) < 30 else None)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def filter_report(report: dict, title: str = "collect: what the filters kept"):
    """Bars: the samples kept and those each rule removed (of `sampled`)."""
    removed = report.get("removed", {})
    labels = ["kept", *(f"removed: {k}" for k in removed)]
    values = [report.get("kept", 0), *removed.values()]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(labels) + 1.5))
    bars = ax.barh(labels, values, color=["tab:green"] + ["tab:red"] * len(removed))
    ax.bar_label(bars)
    ax.invert_yaxis()
    ax.set_xlabel(f"samples (of {report.get('sampled', sum(values))})")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def eval_results(rows: list[dict], title: str = "eval"):
    """Left: each rate per split (success, next-action and judgement accuracy); right, where the
    environment has task types: success per task type and split. None without rates."""
    rates = [r for r in rows if r["metric"] in ("success_rate", "next_action_accuracy", "judge_accuracy")]
    by_type = [r for r in rows if r["metric"].startswith("success_rate.")]
    if not rates:
        return None
    plt = _pyplot()
    panels = 2 if by_type else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 3.6), squeeze=False)
    _grouped(axes[0][0], [(r["split"], r["metric"], r["value"]) for r in rates], "rate per split")
    if by_type:
        _grouped(axes[0][1], [(r["metric"].partition(".")[2], r["split"], r["value"]) for r in by_type],
                 "success per task type")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _grouped(ax, triples: list[tuple[str, str, float]], title: str) -> None:
    """Grouped bars: groups on the x axis, one bar per series within a group."""
    groups = list(dict.fromkeys(g for g, _, _ in triples))
    series = list(dict.fromkeys(s for _, s, _ in triples))
    values = {(g, s): v for g, s, v in triples}
    width = 0.8 / len(series)
    for i, s in enumerate(series):
        xs = [j + i * width for j in range(len(groups))]
        heights = [values.get((g, s)) for g in groups]  # None: not measured there (no bar, no 0.00)
        bars = ax.bar(xs, [h or 0.0 for h in heights], width, label=s)
        ax.bar_label(bars, labels=["" if h is None else f"{h:.2f}" for h in heights], fontsize=7)
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(groups))], groups, rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=7)


def log_plot(run, name: str, make, *args) -> bool:
    """Draw `make(*args)` and log it to the stage's run as `plots/<name>`; False (and a warning)
    when it could not be drawn or logged. The figure is closed either way."""
    fig = None
    try:
        fig = make(*args)
        if fig is None:
            return False
        run.log_figure(fig, f"plots/{name}")
        return True
    except Exception as e:  # noqa: BLE001 - a picture is never worth a failed stage
        log.warning("plot %s not logged (%s: %s)", name, type(e).__name__, e)
        return False
    finally:
        if fig is not None:
            _pyplot().close(fig)
