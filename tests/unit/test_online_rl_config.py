"""policy method online-rl: its stage config carries the environment it plays (other methods' do not),
the stage counts as playing the environment (the preflight checks it, the pods get its packages), and
a config without an environment is refused naming the field."""

import pytest
from pydantic import ValidationError

from act_operator import api
from act_operator.stages import stage_config
from act_trainer import config as C
from act_trainer import stagedefs


def job(method: str) -> api.ACTJob:
    return api.parse_actjob({
        "apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": "o", "uid": "u"},
        "spec": {"model": {"uri": "tiny://qwen3-tiny"},
                 "environment": {"name": "textworld-express", "game": "coin", "maxSteps": 7,
                                 "expert": {"uri": "s3://bucket/expert.jsonl"}},
                 "stages": {"policy": {"method": method, "online": {"reward": "score", "maxTurns": 3}}}}})


def test_online_rl_gets_the_environment_it_plays():
    cfg = stage_config(job("online-rl"), "policy")
    assert cfg.method == "online-rl" and cfg.runs_grpo
    assert (cfg.env.name, cfg.env.game, cfg.env.max_steps) == ("textworld-express", "coin", 7)
    assert (cfg.online.reward, cfg.online.max_turns) == ("score", 3)
    assert stagedefs.get("policy").plays(job("online-rl").spec)


@pytest.mark.parametrize("method", ["il", "rl"])
def test_other_methods_do_not(method):
    assert stage_config(job(method), "policy").env is None
    assert not stagedefs.get("policy").plays(job(method).spec)


def test_a_config_without_an_environment_is_refused():
    with pytest.raises(ValidationError, match="online-rl plays episodes: the policy config needs env"):
        C.PolicyConfig(job=C.JobRef(name="o", uid="u"), output="file:///tmp/o", model="m", expert="/e",
                       method="online-rl")
