"""The stage registry (act_trainer.stagedefs): each stage defined once, and a stage added in a test is
picked up by everything that reads the registry (config building, the planner, launch, manifests,
progress, the trainer CLI) with no other edit."""

import json
from typing import Literal

import pytest

from act_operator import launch, manifests, pipeline
from act_operator.api import API_VERSION, parse_actjob
from act_operator.settings import OperatorSettings
from act_operator.stages import stage_config, stage_output
from act_trainer import cli, progress, stagedefs
from act_trainer import config as C
from act_trainer import contract as K
from act_trainer.stagedefs import StageDef


def make_job(root: str = "s3://bucket/act", **stages):
    return parse_actjob({
        "apiVersion": API_VERSION, "kind": "ACTJob", "metadata": {"name": "demo", "uid": "u-1", "generation": 1},
        "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                 "storage": {"root": root}, "stages": stages},
    })


def test_every_stage_and_step_is_defined_once_in_order():
    assert [d.name for d in stagedefs.every()] == ["preflight", "warmup", "collect", "judge", "policy", "eval",
                                                   "replay"]
    assert stagedefs.chain_names() == ("warmup", "collect", "judge", "policy", "eval")
    assert stagedefs.step_names() == ("preflight", "warmup", "collect", "judge", "policy", "eval")
    assert tuple(make_job().status.stages) == stagedefs.step_names()  # what a new status tracks
    for d in stagedefs.every():  # a config file's `stage` picks the class the registry names
        assert C.CONFIGS[d.name] is d.config


def test_the_facts_of_each_stage():
    """The values the modules that held them before had (stages.OUTPUTS, progress.UNITS/KEY_METRICS,
    launch.topology, cli.MODULES, pipeline.PREFLIGHT_SETTINGS, local.KEY_METRICS)."""
    facts = {d.name: (d.output, d.topology, d.unit, d.entrypoint) for d in stagedefs.every()}
    assert facts == {
        "preflight": (None, "single", "steps", "act_trainer.preflight:run"),
        "warmup": ("models/warmup", "gang", "steps", "act_trainer.stages.warmup:run"),
        "collect": ("pairs", "shards", "states", "act_trainer.stages.collect:run"),
        "judge": ("models/judge", "gang", "steps", "act_trainer.stages.judge:run"),
        "policy": ("models/policy", "gang", "steps", "act_trainer.stages.policy:run"),
        "eval": ("eval", "shards", "episodes", "act_trainer.stages.evaluate:run"),
        "replay": (None, "single", "steps", "act_trainer.cli:replay"),
    }
    assert {d.name: d.settings for d in stagedefs.chain()} == {
        "warmup": K.WarmupSettings, "collect": K.CollectSettings, "judge": K.JudgeSettings,
        "policy": K.PolicySettings, "eval": K.EvalSettings}
    assert stagedefs.get("judge").live_metrics == ("reward", "loss", "malformed_rate")
    assert stagedefs.get("preflight").key_metrics == ("seconds",)
    assert pipeline.PREFLIGHT_SETTINGS.max_retries == 2 and pipeline.REPLAY_SETTINGS.timeout_seconds == 900
    assert [d.name for d in stagedefs.chain() if d.makes_model] == ["warmup", "judge", "policy"]
    job = make_job()
    assert {d.name: d.trl(d.section(job.spec)) for d in stagedefs.chain()} == {
        "warmup": "SFTConfig", "collect": None, "judge": "GRPOConfig", "policy": "SFTConfig", "eval": None}
    rl = make_job(judge={"method": "sr"}, policy={"method": "rl"}, collect={"recordOutcomes": True})
    assert (stagedefs.JUDGE.trl(rl.spec.stages.judge), stagedefs.POLICY.trl(rl.spec.stages.policy)) == (
        "SFTConfig", "GRPOConfig")


def test_skip_and_reuse_come_from_the_definitions():
    job = make_job(collect={"reuse": "s3://other/pairs"}, judge={"enabled": False}, eval={"enabled": False})
    assert [pipeline.skip_or_reuse(job, s) for s in stagedefs.step_names()] == [
        None, pipeline.SkipStage("warmup", "stages.warmup.enabled is false (collect samples from model.uri)"),
        pipeline.ReuseStage("collect", "s3://other/pairs"),
        pipeline.SkipStage("judge", "stages.judge.enabled is false (baseline without ACT)"), None,
        pipeline.SkipStage("eval", "stages.eval.enabled is false")]


def test_unknown_stages_are_named():
    with pytest.raises(ValueError, match="unknown stage 'nope'; the stages are preflight, warmup, collect"):
        stagedefs.get("nope")
    with pytest.raises(C.ConfigError, match="stage: unknown stage 'nope'; one of "):
        C.parse_stage_config({"stage": "nope"})
    with pytest.raises(C.ConfigError, match="stage: missing; one of "):
        C.parse_stage_config({"job": {"name": "a", "uid": "b"}})


def test_a_definition_that_cannot_work_is_refused():
    with pytest.raises(ValueError, match="entrypoint 'act_trainer.stages.judge' is not 'module:function'"):
        StageDef(C.JudgeConfig, "act_trainer.stages.judge", help="x")
    with pytest.raises(ValueError, match="a gang stage's settings build on contract.TrainSettings"):
        StageDef(C.EvalConfig, "m:f", help="x", settings=K.EvalSettings, topology="gang")
    with pytest.raises(ValueError, match="stage 'judge' is already registered"):
        stagedefs.register(stagedefs.JUDGE)
    with pytest.raises(ValueError, match="a stage config needs `stage: Literal"):
        StageDef(C.StageBase, "m:f", help="x")


# --- a stage added in a test --------------------------------------------------------------------

RAN: list = []


def run_tally(cfg) -> dict:
    """The extra stage's program: what the trainer CLI calls with the validated config."""
    RAN.append(cfg)
    return {"evals": cfg.evals}


@pytest.fixture
def tally():
    """A small stage after eval, that reads eval's output: one definition (and its config class), no
    other edit anywhere."""

    class TallyConfig(C.StageBase):
        stage: Literal["tally"] = "tally"
        evals: str | None = None
        rows: int = 1

    d = StageDef(TallyConfig, f"{__name__}:run_tally", help="count the eval rows", output="tally",
                 inputs=("eval",), build=lambda at: {"evals": at.output("eval")}, unit="rows",
                 live_metrics=("rows",), runs_with={"max_retries": 1, "timeout_seconds": 120})
    with stagedefs.registered(d):
        yield d
    C.CONFIGS.pop("tally")
    RAN.clear()


def test_a_stage_added_in_a_test_is_planned_built_launched_and_run(tally, tmp_path):
    job = make_job(root=f"file://{tmp_path}/storage")
    assert list(job.status.stages)[-1] == "tally"  # the status tracks it

    # the planner runs it after eval, with the retries of its definition
    for s in ("preflight", "collect", "judge", "policy", "eval"):
        job.status.stages[s].phase = "Succeeded"
    job.status.stages["eval"].outputs.uri = "s3://bucket/eval"
    job.status.stages["warmup"].phase = "Skipped"
    assert pipeline.plan(job, {}, pipeline.now()) == [pipeline.StartStage("tally", 1)]
    assert pipeline.max_retries(job, "tally") == 1
    job.status = pipeline.apply(job, pipeline.StartStage("tally", 1), pipeline.now())

    # its config: what every stage gets, and what its definition builds from the ACTJob
    cfg = stage_config(job, "tally")
    assert type(cfg) is tally.config and cfg.evals == "s3://bucket/eval" and cfg.attempt == 1
    assert cfg.output == stage_output(job, "tally") == f"file://{tmp_path}/storage/default/demo/u-1/tally"

    # launched as one process, rendered as a ConfigMap and a Job with its deadline
    run = launch.plan(job, "tally", 1)
    assert (run.nodes, run.processes_per_node, run.shards) == (1, 1, 1)
    assert run.command() == ["act-trainer", "tally", "--config", launch.CONFIG_PATH]
    objs = manifests.stage_objects(job, "tally", 1, OperatorSettings())
    assert [o["kind"] for o in objs] == ["ConfigMap", "Job"]
    assert objs[1]["spec"]["activeDeadlineSeconds"] == 120
    stage_json = objs[0]["data"]["stage.json"]
    assert C.parse_stage_config(json.loads(stage_json), expected="tally") == cfg
    assert "tally" in [o["metadata"]["labels"][manifests.STAGE_LABEL]
                       for o in manifests.all_stage_objects(make_job(), OperatorSettings())]

    # the trainer CLI has its subcommand and runs its program
    path = tmp_path / "stage.json"
    path.write_text(stage_json)
    assert cli.main(["tally", "--config", str(path)]) == 0
    assert RAN == [cfg]

    # its progress counts its unit and shows its metrics
    meter = progress.Meter("tally", 4)
    meter.observe({"rows": 3, "other": 1})
    assert (meter.record().unit, meter.metrics) == ("rows", {"rows": 3.0})

    # the planner completes it, then the ACTJob
    done = pipeline.Observed("succeeded", result={"manifest": cfg.output + "/_MANIFEST.json", "uri": cfg.output})
    assert pipeline.plan(job, {"tally": done}, pipeline.now()) == [
        pipeline.CompleteStage("tally", done.result), pipeline.SucceedJob()]


def test_a_stage_can_be_registered_before_another(tally):
    class LintConfig(C.StageBase):
        stage: Literal["lint"] = "lint"

    try:
        with stagedefs.registered(StageDef(LintConfig, "m:f", help="x"), before="judge"):
            assert stagedefs.chain_names() == ("warmup", "collect", "lint", "judge", "policy", "eval", "tally")
        assert "lint" not in stagedefs.chain_names()
        with pytest.raises(ValueError, match=r"inputs \['nope'\] are not registered stages"):
            stagedefs.register(StageDef(LintConfig, "m:f", help="x", inputs=("nope",)))
    finally:
        C.CONFIGS.pop("lint")
