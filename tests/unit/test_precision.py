"""spec.model.precision: one setting for how the stages train and sample. auto keeps what the
stages did before it existed (bf16 training on GPUs only, the transformers sampler in float32),
bf16 is mixed precision training and bfloat16 sampling on any machine, fp32 is float32 everywhere."""

from __future__ import annotations

import pytest
from test_manifests import make_job

from act_operator.api import SpecError
from act_operator.stages import stage_config
from act_trainer import contract as K
from act_trainer import preflight, stagedefs
from act_trainer.config import ConfigError, TrlOptions, parse_stage_config
from act_trainer.stages import training

# (precision, gpu) -> (TRL bf16, transformers sampler dtype, vLLM dtype; None: the checkpoint's)
EXPECTED = {
    ("auto", False): (False, "float32", "float32"),
    ("auto", True): (True, "float32", None),
    ("bf16", False): (True, "bfloat16", "bfloat16"),
    ("bf16", True): (True, "bfloat16", "bfloat16"),
    ("fp32", False): (False, "float32", "float32"),
    ("fp32", True): (False, "float32", "float32"),
}
TRAINING = ("warmup", "judge", "policy")


def job(precision: str | None = None, **spec):
    model = {"uri": "tiny://qwen3-tiny"} | ({"precision": precision} if precision else {})
    return make_job(model=model, stages={"warmup": {"enabled": True}, "policy": {"method": "rl"}}, **spec)


@pytest.mark.parametrize(("setting", "gpu"), list(EXPECTED))
def test_the_mapping(setting, gpu):
    p = K.precision(setting, gpu)
    assert (p.train_bf16, p.hf_dtype, p.vllm_dtype) == EXPECTED[setting, gpu]


def test_every_setting_is_mapped_and_nothing_else():
    assert {s for s, _ in EXPECTED} == set(K.PRECISIONS)
    with pytest.raises(ValueError, match="precision: 'fp16' is not one of auto, bf16, fp32"):
        K.precision("fp16", False)


def test_auto_is_the_default_and_every_stage_gets_the_spec_s_setting():
    assert job().spec.model.precision == "auto"
    for setting in K.PRECISIONS:
        j = job(setting)
        stages = [d.name for d in stagedefs.every() if d.when != "after" and d.runs(j.spec)]
        assert {"preflight", "collect", "eval", *TRAINING} <= set(stages)
        for stage in stages:
            assert stage_config(j, stage).precision == setting, stage


@pytest.mark.parametrize("gpu", [False, True])
@pytest.mark.parametrize("setting", K.PRECISIONS)
def test_every_training_stage_sets_trl_s_bf16_flag_from_it(setting, gpu, tmp_path, monkeypatch):
    monkeypatch.setattr(training, "gpu_available", lambda: gpu)
    for stage in TRAINING:
        cfg = stage_config(job(setting), stage)
        sft, grpo = training.stage_args(cfg, tmp_path), training.grpo_args(cfg, tmp_path)
        assert sft["bf16"] is grpo["bf16"] is EXPECTED[setting, gpu][0], stage
        assert sft["use_cpu"] is not gpu


def test_trl_builds_its_configs_with_bf16_on_this_cpu(tmp_path):
    """On a CPU, TRL's configs accept bf16 (transformers' CPU autocast): what the stages build."""
    from trl import GRPOConfig, SFTConfig

    judge = stage_config(job("bf16"), "judge")
    assert GRPOConfig(**training.grpo_args(judge, tmp_path)).bf16
    assert SFTConfig(**training.common_args(stage_config(job("bf16"), "warmup"), tmp_path)).bf16


def test_a_bad_value_is_refused_naming_the_field_and_the_choices():
    with pytest.raises(SpecError, match=r"spec\.model\.precision: Input should be 'auto', 'bf16' or 'fp32'"):
        job("fp16")
    data = stage_config(job(), "judge").model_dump(mode="json") | {"precision": "half"}
    with pytest.raises(ConfigError, match=r"^precision: Input should be 'auto', 'bf16' or 'fp32'"):
        parse_stage_config(data)


def test_the_pass_through_may_not_set_bf16():
    found = preflight.check_trl({"judge": TrlOptions(config="GRPOConfig", options={"bf16": True})})
    assert found == ["stages.judge.trl.bf16: set by spec.model.precision; use that"]


@pytest.mark.parametrize(("setting", "dtype"), [("auto", "float32"), ("bf16", "bfloat16"), ("fp32", "float32")])
def test_the_transformers_sampler_loads_the_dtype_and_samples(setting, dtype):
    torch = pytest.importorskip("torch")
    from act_trainer.engines import make_engine
    from act_trainer.models import resolve_model

    engine = make_engine("hf", str(resolve_model("tiny://qwen3-tiny")), batch_size=2, precision=setting)
    assert engine.model.dtype == getattr(torch, dtype)
    out = engine.generate([[{"role": "user", "content": "look"}]] * 2, n=2, temperature=1.0, max_new_tokens=4,
                          prefill="<action>")
    assert [len(o) for o in out] == [2, 2] and all(s.startswith("<action>") for o in out for s in o)
