"""The pictures (act_trainer.plots, `actjob compare --plot`) and the registered model's
description: pure drawing and text, no services."""

from __future__ import annotations

import io
import json
import logging

import pytest
from PIL import Image

from act_operator import report, tracking
from act_operator.api import API_VERSION, parse_actjob
from act_trainer import plots

PNG = b"\x89PNG\r\n\x1a\n"


def png_of(fig) -> Image.Image:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue().startswith(PNG)
    return Image.open(io.BytesIO(buf.getvalue()))


HISTORY = [{"step": 1, "loss": 2.0, "reward": 0.1}, {"step": 2, "loss": 1.5, "reward": 0.4},
           {"step": 2, "train_loss": 1.7, "train_runtime": 3.0}]


def test_training_curves_draw_a_panel_per_logged_curve():
    fig = plots.training_curves(HISTORY, "judge: training")
    assert [ax.get_title() for ax in fig.axes] == ["reward", "loss"]  # malformed_rate was not logged
    assert list(fig.axes[1].lines[0].get_xdata()) == [1, 2] and list(fig.axes[1].lines[0].get_ydata()) == [2.0, 1.5]
    assert png_of(fig).size[0] > 0
    assert plots.training_curves([{"step": 1, "train_runtime": 1.0}], "nothing") is None


def test_filter_report_bars_kept_and_each_removal_rule():
    fig = plots.filter_report({"sampled": 10, "kept": 4, "removed": {"unparseable": 5, "duplicate": 1}})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["kept", "removed: unparseable", "removed: duplicate"]
    assert [p.get_width() for p in ax.patches] == [4, 5, 1]
    png_of(fig)


def test_eval_results_per_split_and_per_task_type():
    rows = [{"split": "valid_seen", "metric": "success_rate", "value": 0.5},
            {"split": "valid_unseen", "metric": "success_rate", "value": 0.25},
            {"split": "valid_seen", "metric": "success_rate.pick_and_place", "value": 1.0},
            {"split": "heldout", "metric": "judge_accuracy", "value": 0.75},
            {"split": "valid_seen", "metric": "score", "value": 3.0}]
    fig = plots.eval_results(rows)
    assert [ax.get_title() for ax in fig.axes] == ["rate per split", "success per task type"]
    heights = sorted(round(p.get_height(), 2) for p in fig.axes[0].patches if p.get_height())
    assert heights == [0.25, 0.5, 0.75]  # score is not a rate
    png_of(fig)
    assert plots.eval_results([{"split": "dev", "metric": "score", "value": 1.0}]) is None


def test_a_plot_that_fails_is_a_warning_not_an_error(caplog):
    """The stage goes on: log_plot reports False and warns (the run here tracks nothing; the
    integration tests show plots logged to real child runs)."""
    from act_trainer.config import parse_stage_config
    from act_trainer.tracking import StageRun

    cfg = parse_stage_config({"stage": "eval", "job": {"name": "t", "uid": "u"}, "output": "file:///tmp/x",
                              "model": "tiny://qwen3-tiny", "env": {"name": "scienceworld"}})
    with caplog.at_level(logging.WARNING, logger="act_trainer"):
        assert plots.log_plot(StageRun(cfg), "eval.png", plots.eval_results, [{"split": "dev"}]) is False
    assert "plot eval.png not logged (KeyError" in caplog.text


def finished_run(tmp_path, name: str, policy: str, judge: bool, success: float):
    """A run directory as `actjob run` leaves it (state.json, spec.json) for `actjob compare`."""
    job = parse_actjob({"apiVersion": API_VERSION, "kind": "ACTJob", "metadata": {"name": name},
                        "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "alfworld"},
                                 "stages": {"policy": {"method": policy},
                                            "eval": {"splits": ["valid_seen"]}}}})
    st = job.status
    st.phase = "Succeeded"
    st.stages["judge"].phase = "Succeeded" if judge else "Skipped"
    st.stages["policy"].phase = "Succeeded"
    st.stages["eval"].metrics = {"valid_seen/success_rate": success, "valid_seen/episodes": 4}
    d = tmp_path / name
    d.mkdir()
    (d / "state.json").write_text(json.dumps({"name": name, "status": st.model_dump(mode="json", by_alias=True)}))
    (d / "spec.json").write_text(job.spec.model_dump_json(by_alias=True))
    return d


def test_compare_plot_is_a_png_with_a_bar_per_method_and_the_papers_numbers(tmp_path):
    from act_operator.cli import main

    dirs = [finished_run(tmp_path, "il", "il", False, 0.5), finished_run(tmp_path, "il-act", "il", True, 0.75),
            finished_run(tmp_path, "il-act-2", "il", True, 0.25)]
    out = tmp_path / "compare.png"
    assert main(["compare", *map(str, dirs), "--plot", str(out)]) == 0
    assert out.read_bytes().startswith(PNG) and Image.open(out).size[0] >= 400

    runs = [report.load_run(d) for d in dirs]
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    report.plot(runs, tmp_path / "again.png")
    assert plt.get_fignums() == before  # its figure is closed after saving
    agg = report.aggregate(runs)
    assert agg["IL w/ ACT"]["valid_seen/success_rate"][:2] == pytest.approx((0.5, 0.35355), abs=1e-4)


def test_registered_version_description_links_the_job_its_runs_and_lineage():
    job = parse_actjob({"apiVersion": API_VERSION, "kind": "ACTJob",
                        "metadata": {"name": "demo", "namespace": "team", "uid": "u-1"},
                        "spec": {"model": {"uri": "s3://b/base"}, "environment": {"name": "scienceworld"}}})
    st = job.status
    st.model_uri = "s3://b/act/team/demo/u-1/models/policy"
    st.mlflow.experiment_id, st.mlflow.run_id = "7", "parent1"
    st.stages["judge"].mlflow_run_id, st.stages["policy"].mlflow_run_id = "judge1", "policy1"
    st.stages["policy"].phase = "Succeeded"
    st.stages["eval"].metrics = {"dev/success_rate": 0.5}
    text = tracking.model_description("http://mlflow:5000", job, "act-demo")
    assert "`team/demo`" in text and "uid `u-1`" in text
    assert 'mlflow.transformers.load_model("models:/act-demo/<version>")' in text
    assert st.model_uri in text
    assert "[parent1](http://mlflow:5000/#/experiments/7/runs/parent1)" in text
    assert "judge [judge1](http://mlflow:5000/#/experiments/7/runs/judge1)" in text and "policy [policy1]" in text
    for key, value in tracking.lineage_tags(job).items():
        assert f"`{key}={value}`" in text
    assert "dev/success_rate=0.5" in text
    # a local store has no web UI: run ids, no links
    assert "Parent run: parent1" in tracking.model_description("sqlite:///x.db", job, "act-demo")
