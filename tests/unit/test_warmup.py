"""The optional warm-up step (pi0 from the base model, before collect): planner, stage configs,
validation and the rendered Jobs. Pure, no services."""

import json
from datetime import UTC, datetime

import pytest

from act_operator import manifests as M
from act_operator import pipeline as P
from act_operator import preflight, tracking
from act_operator import stages as S
from act_operator.api import API_VERSION, SpecError, parse_actjob
from act_operator.settings import OperatorSettings
from act_trainer.config import parse_stage_config

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROOT = "s3://bucket/act/default/demo/u-1"


def make_job(expert=None, **stages):
    env = {"name": "scienceworld", "expert": expert or {}}
    job = parse_actjob({
        "apiVersion": API_VERSION, "kind": "ACTJob", "metadata": {"name": "demo", "uid": "u-1", "generation": 1},
        "spec": {"model": {"uri": "s3://bucket/base"}, "environment": env, "storage": {"root": "s3://bucket/act"},
                 "stages": stages},
    })
    job.status.stages[P.PREFLIGHT].phase = "Succeeded"
    return job


def ok(stage):
    uri = S.stage_output(make_job(), stage)
    return P.Observed("succeeded", result={"manifest": f"{uri}/_MANIFEST.json", "uri": uri, "metrics": {}})


def run_to_end(job, configs):
    """Drive the planner to the end, recording the config each started stage runs with."""
    observed, order = {}, []
    for _ in range(30):
        actions = P.plan(job, observed, T0)
        if not actions:
            break
        for a in actions:
            job.status = P.apply(job, a, T0)
            if isinstance(a, P.StartStage):
                order.append(a.stage)
                configs[a.stage] = S.stage_config(job, a.stage)
                observed[a.stage] = ok(a.stage)
        if job.status.phase in P.TERMINAL:
            break
    return order


def test_warmup_is_off_by_default_and_collect_and_judge_start_from_the_base_model():
    job, configs = make_job(), {}
    assert run_to_end(job, configs) == ["collect", "judge", "policy", "eval"]
    assert job.status.stages["warmup"].phase == "Skipped"
    assert configs["collect"].model == configs["judge"].model == "s3://bucket/base"
    assert configs["collect"].expert.uri is None  # collect has the environment's expert play


def test_warmup_runs_first_and_its_model_is_pi0_of_collect_judge_and_a_judgeless_policy():
    job = make_job(warmup={"enabled": True, "maxSteps": 7, "formatJudgements": 0.25},
                   collect={"heldoutFraction": 0.3}, judge={"enabled": False})
    configs = {}
    assert run_to_end(job, configs) == ["warmup", "collect", "policy", "eval"]
    w = configs["warmup"]
    assert (w.stage, w.model, w.max_steps, w.format_judgements) == ("warmup", "s3://bucket/base", 7, 0.25)
    assert w.heldout_fraction == 0.3 and w.env.name == "scienceworld" and w.expert.uri is None
    assert w.output == f"{ROOT}/models/warmup" and w.checkpoints == f"{ROOT}/checkpoints/warmup"
    pi0 = f"{ROOT}/models/warmup"
    assert configs["collect"].model == pi0
    assert configs["collect"].expert.uri == f"{pi0}/expert.jsonl"  # the episodes the warm-up played, once
    assert configs["policy"].model == pi0  # no judge: the IL baseline starts from pi0 too
    assert configs["policy"].expert == f"{ROOT}/pairs"
    assert parse_stage_config(w.model_dump(mode="json"), "warmup") == w  # what the stage program reads


def test_the_judge_starts_from_pi0_and_a_given_expert_file_is_used_as_is():
    job = make_job(expert={"uri": "s3://bucket/expert.jsonl"}, warmup={"enabled": True},
                   policy={"method": "none"}, eval={"enabled": False})
    configs = {}
    assert run_to_end(job, configs) == ["warmup", "collect", "judge"]
    assert configs["judge"].model == f"{ROOT}/models/warmup"
    assert configs["warmup"].expert.uri == configs["collect"].expert.uri == "s3://bucket/expert.jsonl"
    tags = tracking.lineage_tags(job)
    assert tags["act.initial_policy"] == f"{ROOT}/models/warmup" and tags["act.base_model"] == "s3://bucket/base"
    assert tags["act.judge_method"] == "act"
    assert job.status.model_uri == f"{ROOT}/models/judge"


def test_only_a_warmup_gives_pi0_as_the_model():
    job = make_job(warmup={"enabled": True}, collect={"enabled": False}, judge={"enabled": False},
                   policy={"method": "none"}, eval={"enabled": False})
    configs = {}
    assert run_to_end(job, configs) == ["warmup"]
    assert job.status.phase == "Succeeded" and job.status.model_uri == f"{ROOT}/models/warmup"


def test_warmup_validation_and_preflight():
    with pytest.raises(SpecError) as e:
        make_job(warmup={"enabled": True, "formatJudgements": 2})
    assert "stages.warmup.formatJudgements" in str(e.value)
    # the warm-up's expert episodes feed a policy without collect
    job = make_job(warmup={"enabled": True}, collect={"enabled": False}, judge={"enabled": False})
    assert S.expert_uri(job) is None and preflight.uses_environment(job)
    assert not preflight.uses_environment(make_job(expert={"uri": "s3://b/e.jsonl"}, warmup={"enabled": True},
                                                   collect={"enabled": False}, judge={"enabled": False},
                                                   eval={"enabled": False}))
    big = make_job(warmup={"enabled": True, "processesPerNode": 2, "zeroStage": 2})
    assert preflight.required_packages(big) == {"stages.warmup.zeroStage": "deepspeed"}


def test_rendered_warmup_job_and_collect_reading_its_model():
    job = make_job(warmup={"enabled": True, "resources": {"gpus": 1}})
    objects = M.all_stage_objects(job, OperatorSettings(mlflow_tracking_uri="http://mlflow:5000"))
    names = [o["metadata"]["name"] for o in objects if o["kind"] == "Job"]
    assert names == ["demo-preflight-1", "demo-warmup-1", "demo-collect-1", "demo-judge-1", "demo-policy-1",
                     "demo-eval-1"]
    configs = {o["metadata"]["name"]: parse_stage_config(json.loads(o["data"]["stage.json"]))
               for o in objects if o["kind"] == "ConfigMap"}
    assert configs["demo-warmup-1-config"].stage == "warmup"
    assert configs["demo-collect-1-config"].model == f"{ROOT}/models/warmup"
    warmup_job = next(o for o in objects if o["metadata"]["name"] == "demo-warmup-1")
    c = warmup_job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"][:2] == ["act-trainer", "warmup"] and c["resources"]["limits"]["nvidia.com/gpu"] == "1"

