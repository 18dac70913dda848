"""act_trainer.util: the helpers both planes share (params, metrics), and data.last_turns."""

from __future__ import annotations

import pytest

from act_trainer import data, util
from act_trainer.config import CollectConfig


def test_flatten_nested_dicts_to_dotted_keys():
    d = {"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None, "f": {}}
    assert util.flatten(d) == {"a.b": 1, "a.c.d": [1, 2], "e": None, "f": {}}  # an empty dict is kept


def test_numeric_metrics_keep_numbers_and_bools_as_floats_and_drop_the_rest():
    got = util.numeric_metrics({"n": 3, "rate": 0.5, "ok": True, "bad": False, "name": "x", "none": None})
    assert got == {"n": 3.0, "rate": 0.5, "ok": 1.0, "bad": 0.0} and all(type(v) is float for v in got.values())
    assert util.is_number(2) and util.is_number(2.5) and not util.is_number(False) and not util.is_number("2")


def test_params_of_a_stage_config_keep_every_field(monkeypatch):
    """Fields named like credentials (tokens, keys) are config, not secrets: all of them are params."""
    cfg = CollectConfig(job={"name": "j", "uid": "u"}, output="file:///tmp/out", model="tiny://qwen3-tiny",
                        env={"name": "scienceworld", "tasks": ["boil"]})
    params = util.mlflow_params(cfg.model_dump(mode="json"))
    assert {k for k in params if k.endswith("max_new_tokens")}, sorted(params)
    assert params["env.tasks"] == "['boil']" and params["storage.endpoint"] == "None"
    assert all(isinstance(v, str) for v in params.values())


def test_params_are_cut_to_mlflow_limit():
    params = util.mlflow_params({"long": "x" * 10_000, "short": 1.5})
    assert params == {"long": "x" * util.MAX_PARAM_LENGTH, "short": "1.5"}


def test_credentials_of_the_environment_are_scrubbed(monkeypatch):
    secret = "s3cr3t-VALUE-0123456789"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "short")
    monkeypatch.setenv("SOME_OTHER_VARIABLE", "endpoint")  # not a credential variable: left alone
    params = util.mlflow_params({"env": {"url": f"http://user:{secret}@shop:3000"}, "token": "short",
                                 "note": "a short word", "endpoint": "endpoint"})
    assert params == {"env.url": "http://user:***@shop:3000", "token": "***", "note": "a short word",
                      "endpoint": "endpoint"}
    assert util.scrub(secret) == "***"


@pytest.mark.parametrize("n,want", [(0, []), (1, [3]), (2, [2, 3]), (5, [1, 2, 3])])
def test_last_turns(n, want):
    history = [1, 2, 3]
    got = data.last_turns(history, n)
    assert got == want and got is not history
