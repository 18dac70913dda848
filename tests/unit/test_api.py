"""The ACTJob API: defaults, and one clear message per problem naming the field."""

import pytest
import yaml

from act_operator.api import API_VERSION, SpecError, load_actjob, parse_actjob
from act_operator.stages import stage_config, stage_output
from act_trainer.config import ConfigError, parse_stage_config


def doc(spec=None, name="demo"):
    base = {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"}}
    base.update(spec or {})
    return {"apiVersion": API_VERSION, "kind": "ACTJob", "metadata": {"name": name}, "spec": base}


def problems(d):
    with pytest.raises(SpecError) as e:
        parse_actjob(d)
    return e.value.problems


def test_defaults_make_sense():
    job = parse_actjob(doc())
    st = job.spec.stages
    assert (st.collect.samples, st.collect.max_alternatives) == (8, 4)
    assert (st.judge.group_size, st.judge.zero_stage, st.judge.learning_rate) == (8, 3, 1e-6)
    assert st.policy.method == "il" and st.eval.splits == ["dev"]
    assert job.status.phase == "Pending" and set(job.status.stages) == {"preflight", "warmup", "collect", "judge", "policy", "eval"}


@pytest.mark.parametrize("spec,field", [
    ({"model": {"uri": "http://x"}}, "spec.model.uri"),
    ({"environment": {"name": "nethack"}}, "spec.environment.name"),
    ({"storage": {"root": "s3://"}}, "spec.storage.root"),
    ({"storage": {"root": "/tmp/x"}}, "spec.storage.root"),
    ({"stages": {"collect": {"samples": 0}}}, "spec.stages.collect.samples"),
    ({"stages": {"collect": {"samples": 2, "maxAlternatives": 3}}}, "spec.stages.collect.maxAlternatives: "),
    ({"stages": {"collect": {"temperature": -1}}}, "spec.stages.collect.temperature"),
    ({"stages": {"judge": {"groupSize": 3, "batchSize": 8}}}, "spec.stages.judge"),
    ({"stages": {"judge": {"zeroStage": 1}}}, "spec.stages.judge.zeroStage"),
    ({"stages": {"policy": {"method": "dpo"}}}, "spec.stages.policy.method"),
    ({"stages": {"eval": {"splits": []}}}, "spec.stages.eval.splits"),
    ({"stages": {"collect": {"enabled": False}}}, "spec.stages.judge: stages.judge needs contrast pairs"),
    ({"stages": {"judgee": {}}}, "spec.stages.judgee"),
    ({"seed": -1}, "spec.seed"),
])
def test_each_bad_field_is_named(spec, field):
    found = problems(doc(spec))
    assert any(p.startswith(field) or field in p for p in found), found


def test_several_problems_reported_at_once():
    found = problems(doc({"model": {"uri": "ftp://m"}, "stages": {"eval": {"episodes": -1}}}, name="Bad_Name"))
    assert len(found) == 3
    assert any(p.startswith("metadata.name") for p in found)


def test_collect_disabled_needs_pairs_message():
    found = problems(doc({"stages": {"collect": {"enabled": False}}}))
    assert "stages.judge needs contrast pairs" in found[0]


def test_load_from_yaml(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(doc()))
    assert load_actjob(path).metadata.name == "demo"
    with pytest.raises(SpecError, match="no such file"):
        load_actjob(tmp_path / "missing.yaml")
    path.write_text("spec: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_actjob(path)


def test_quickstart_example_is_valid():
    load_actjob("examples/quickstart.yaml")


def test_stage_configs_follow_the_layout():
    job = parse_actjob(doc({"storage": {"root": "s3://b/p"}}))
    job.metadata.uid = "u1"
    assert stage_output(job, "collect") == "s3://b/p/default/demo/u1/pairs"
    collect = stage_config(job, "collect")
    assert collect.samples == 8 and collect.output.endswith("/pairs")
    job.status.stages["collect"].outputs.uri = collect.output
    judge = stage_config(job, "judge")
    assert judge.pairs == collect.output and judge.checkpoints == "s3://b/p/default/demo/u1/checkpoints/judge"
    job.status.stages["judge"].phase = "Succeeded"
    job.status.stages["judge"].outputs.uri = judge.output
    policy = stage_config(job, "policy")
    assert policy.model == judge.output and policy.expert == collect.output
    # the rendered config round-trips through the trainer's own validation
    assert parse_stage_config(policy.model_dump(mode="json"), "policy") == policy


def test_trainer_config_errors_name_fields():
    with pytest.raises(ConfigError) as e:
        parse_stage_config({"stage": "judge", "job": {"name": "a", "uid": "b"}, "output": "ftp://x",
                            "model": "m", "pairs": "s3://b/p", "group_size": 1})
    text = str(e.value)
    assert "output:" in text and "group_size:" in text
    with pytest.raises(ConfigError, match="'collect' program"):
        parse_stage_config({"stage": "judge", "job": {"name": "a", "uid": "b"}, "output": "s3://b/o",
                            "model": "m", "pairs": "s3://b/p"}, expected="collect")
