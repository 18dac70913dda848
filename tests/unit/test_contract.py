"""Each stage's settings are defined once (act_trainer.contract): the ACTJob spec and the stage
configs are built on them, and every value a user sets reaches the stage program unchanged."""

import pytest
from pydantic import BaseModel

from act_operator import api
from act_operator.stages import stage_config
from act_trainer import config as C
from act_trainer import contract as K

SECTIONS = [  # (spec section, settings it is built on, stage config)
    (api.CollectStage, K.CollectSettings, C.CollectConfig),
    (api.JudgeStage, K.JudgeSettings, C.JudgeConfig),
    (api.PolicyStage, K.PolicySettings, C.PolicyConfig),
    (api.EvalStage, K.EvalSettings, C.EvalConfig),
    (api.EnvironmentSpec, K.EnvironmentSettings, C.EnvironmentConfig),
    (api.ExpertSpec, K.ExpertSettings, C.ExpertSource),
]


@pytest.mark.parametrize("spec, settings, cfg", SECTIONS, ids=lambda c: c.__name__)
def test_spec_and_config_are_built_on_the_same_settings(spec, settings, cfg):
    assert issubclass(spec, settings) and issubclass(cfg, settings)
    for name, field in settings.model_fields.items():  # not redefined on either side
        assert spec.model_fields[name].metadata == field.metadata == cfg.model_fields[name].metadata, name
        assert spec.model_fields[name].default == field.default == cfg.model_fields[name].default, name


def _changed(model: type[BaseModel], name: str):
    """A valid value for a settings field that differs from its default."""
    field = model.model_fields[name]
    default = field.get_default(call_default_factory=True)
    if name == "name":
        return "textworld-express"
    if name == "both_orders":  # needs method act, which the judge here changes: test_judge_rows shows it reaches
        return False
    if isinstance(default, bool):
        return not default
    if name in ("samples",):
        return 16
    if name in ("max_alternatives",):
        return 3
    if name in ("group_size",):
        return 4
    if name in ("batch_size",):
        return 12
    if name in ("zero_stage",):
        return 2
    if name == "method":
        return "sr" if model is K.JudgeSettings else "rl"
    if name == "engine":
        return "hf"
    if name == "parallel_episodes":
        return 3
    if name == "rollout":
        return K.RolloutSettings(engine="hf", mode="server", gpu_memory_utilization=0.5, tensor_parallel_size=2,
                                 sleep_mode=False, server_gpus=2, server_port=8001, group_port=51217)
    if name == "expert_type":
        return "walkthrough"
    if name == "reasoning":
        return K.ReasoningSettings(benchmarks=[{"name": "gpqa-diamond", "data": "s3://bucket/gpqa.jsonl"}],
                                   repeats=5, temperature=0.3, top_p=0.9, max_new_tokens=512, limit=20, seed=3)
    if name == "online":
        return K.OnlineRLSettings(reward="score", split="dev", tasks=3, max_turns=5, envs_per_process=2)
    if name == "trl":  # passed through to TRL's config
        return {"warmup_steps": 10}
    if name == "malformed_penalty":
        return -0.5
    if isinstance(default, float):
        return default / 2 if default else 0.5
    if isinstance(default, int):
        return default + 1 if default >= 0 else 7
    if isinstance(default, list):
        return ["test"] if name == "splits" else ["coin"]  # a task the environment (textworld-express) knows
    if name == "uri":
        return "s3://bucket/expert.jsonl"
    if name in ("game", "split"):  # static facts of the environment: checked at admission
        return {"game": "coin", "split": "dev"}[name]
    return "x"


def test_every_spec_value_reaches_the_stage_config():
    spec_stages, env = {}, {}
    for spec_cls, settings, _ in SECTIONS:
        values = {spec_cls.model_fields[n].alias: _changed(settings, n) for n in settings.model_fields}
        if spec_cls is api.EnvironmentSpec:
            env.update(values)
        elif spec_cls is api.ExpertSpec:
            env["expert"] = values
        else:
            spec_stages[spec_cls.__name__.removesuffix("Stage").lower()] = values
    job = api.parse_actjob({"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": "c", "uid": "u"},
                            "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": env,
                                     "stages": spec_stages}})
    job.status.stages["collect"].outputs.uri = "s3://bucket/pairs"
    job.status.stages["collect"].phase = "Succeeded"
    for _, settings, cfg_cls in SECTIONS[:4]:
        stage = cfg_cls.model_fields["stage"].default
        cfg = stage_config(job, stage)
        section = getattr(job.spec.stages, stage)
        for name in settings.model_fields:
            assert getattr(cfg, name) == getattr(section, name) == _changed(settings, name), (stage, name)
        if stage in ("collect", "eval"):
            assert cfg.env == C.EnvironmentConfig(**K.settings_of(job.spec.environment, K.EnvironmentSettings))
            assert cfg.env.name == "textworld-express" and cfg.env.tasks == ["coin"]
    expert = stage_config(job, "collect").expert
    assert (expert.uri, expert.split, expert.episodes) == ("s3://bucket/expert.jsonl", "dev", 9)
