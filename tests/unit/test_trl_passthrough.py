"""stages.<training stage>.trl: TRL config keys passed through without a code change per option. The
preflight checks them against the installed TRL's config class of the stage's method; the stage
applies them to the TRL config it builds."""

import dataclasses

import pytest
import trl
from trl import GRPOConfig, SFTConfig

from act_operator import api
from act_operator.api import API_VERSION, parse_actjob
from act_operator.stages import stage_config
from act_trainer import preflight
from act_trainer.config import TrlOptions
from act_trainer.errors import InputError
from act_trainer.stages import training

V = trl.__version__


def make_job(**stages):
    job = parse_actjob({
        "apiVersion": API_VERSION, "kind": "ACTJob", "metadata": {"name": "demo", "uid": "u-1"},
        "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                 "storage": {"root": "s3://bucket/act"}, "stages": stages},
    })
    job.status.stages["collect"].phase, job.status.stages["collect"].outputs.uri = "Succeeded", "s3://bucket/pairs"
    return job


def test_the_preflight_names_each_key_trl_does_not_have_or_the_stage_sets():
    found = preflight.check_trl({
        "judge": TrlOptions(config="GRPOConfig", options={"warmup_steps": 10, "foo": 1, "learning_rate": 1e-5,
                                                          "seed": 3, "output_dir": "/x", "vllm_mode": "server"}),
        "policy": TrlOptions(config="SFTConfig", options={"num_generations": 4, "packing": True}),
        "warmup": TrlOptions(config=None, options={"packing": True}),
    })
    assert found == [
        f"stages.judge.trl.foo: not a field of TRL {V}'s GRPOConfig; see the GRPOConfig fields of the "
        "installed TRL, or remove it",
        "stages.judge.trl.learning_rate: set by spec.stages.judge.learningRate; use that",
        "stages.judge.trl.seed: set by spec.seed; use that",
        "stages.judge.trl.output_dir: the stage sets it itself; remove it",
        "stages.judge.trl.vllm_mode: set by spec.stages.judge.rollout.mode; use that",
        f"stages.policy.trl.num_generations: not a field of TRL {V}'s SFTConfig; see the SFTConfig fields of "
        "the installed TRL, or remove it",  # a GRPOConfig field: policy il trains with SFT
        "stages.warmup.trl: the warmup stage's method does not train with TRL; remove it",
    ]
    assert preflight.check_trl({"judge": TrlOptions(config="GRPOConfig", options={"warmup_stpes": 0.1})}) == [
        f"stages.judge.trl.warmup_stpes: not a field of TRL {V}'s GRPOConfig; did you mean warmup_steps? see the "
        "GRPOConfig fields of the installed TRL, or remove it"]
    assert preflight.check_trl({"judge": TrlOptions(config="GRPOConfig", options={"warmup_steps": 10})}) == []


def test_the_preflight_config_carries_each_running_stage_s_keys_with_its_trl_config():
    job = make_job(judge={"trl": {"warmup_steps": 10}}, policy={"method": "rl", "trl": {"top_k": 5}},
                   warmup={"enabled": True, "trl": {"packing": True}})
    cfg = stage_config(job, "preflight")
    assert cfg.trl == {"warmup": TrlOptions(config="SFTConfig", options={"packing": True}),
                       "judge": TrlOptions(config="GRPOConfig", options={"warmup_steps": 10}),
                       "policy": TrlOptions(config="GRPOConfig", options={"top_k": 5})}
    assert "trl" in [what for what, _ in preflight.checks(cfg)]
    skipped = make_job(judge={"enabled": False, "trl": {"foo": 1}})  # a stage that does not run is not checked
    assert stage_config(skipped, "preflight").trl == {}
    assert "trl" not in [what for what, _ in preflight.checks(stage_config(skipped, "preflight"))]


def test_the_spec_keeps_the_keys_as_an_object():
    job = make_job(judge={"trl": {"warmup_steps": 10, "model_init_kwargs": {"torch_dtype": "bfloat16"}}})
    assert job.spec.stages.judge.trl == {"warmup_steps": 10, "model_init_kwargs": {"torch_dtype": "bfloat16"}}
    with pytest.raises(api.SpecError, match="spec.stages.judge.trl: Input should be a valid dictionary"):
        make_job(judge={"trl": ["warmup_steps"]})


def test_stage_keys_are_exactly_what_the_stage_sets(tmp_path, monkeypatch):
    """SFT_KEYS and GRPO_KEYS (what the preflight refuses) against what the builders return, in every
    rollout mode; each names a real field of the spec."""
    monkeypatch.setattr(training, "resolve", lambda engine, field: engine)  # vLLM's keys, where vLLM is absent
    sft = set()
    grpo = set()
    for rollout in ({"engine": "hf"}, {"engine": "vllm"}, {"engine": "vllm", "mode": "server"}):
        cfg = stage_config(make_job(judge={"rollout": rollout}), "judge")
        sft |= set(training.stage_args(cfg, tmp_path))
        grpo |= set(training.grpo_args(cfg, tmp_path))
    assert sft == set(training.SFT_KEYS) and grpo == set(training.GRPO_KEYS)
    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    assert grpo <= fields and sft <= {f.name for f in dataclasses.fields(SFTConfig)}
    for by in filter(None, training.GRPO_KEYS.values()):
        # spec.<path>: a field of the spec (e.g. spec.model.precision); else one of the stage's section
        model, path = (api.ACTJobSpec, by.removeprefix("spec.")) if by.startswith("spec.") else (api.JudgeStage, by)
        for part in path.split("."):  # camelCase aliases, as the spec spells them
            name = next(n for n, f in model.model_fields.items() if f.alias == part)
            model = model.model_fields[name].annotation
        assert name, by


def test_passed_through_keys_reach_the_trl_config_the_stage_builds(tmp_path):
    judge = stage_config(make_job(judge={"trl": {"warmup_steps": 3, "lr_scheduler_type": "cosine"},
                                         "rollout": {"engine": "hf"}}), "judge")
    args = GRPOConfig(**training.grpo_args(judge, tmp_path))
    assert (args.warmup_steps, args.lr_scheduler_type.value) == (3, "cosine")
    assert args.num_generations == judge.group_size  # the curated fields stay
    policy = stage_config(make_job(policy={"trl": {"max_length": 256, "packing": True}}), "policy")
    args = SFTConfig(**training.common_args(policy, tmp_path))
    assert (args.max_length, args.packing, args.learning_rate) == (256, True, policy.learning_rate)


def test_a_key_the_stage_sets_is_refused_when_the_config_is_built(tmp_path):
    judge = stage_config(make_job(judge={"trl": {"beta": 0.5}, "rollout": {"engine": "hf"}}), "judge")
    with pytest.raises(InputError, match="stages.judge.trl: beta are set by the stage itself"):
        training.grpo_args(judge, tmp_path)
