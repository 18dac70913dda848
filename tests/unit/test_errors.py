"""The exit-code contract of stage programs: which errors are permanent (2) and which transient (1)."""

from __future__ import annotations

import json

import pytest

from act_trainer import cli, data
from act_trainer.envs import EnvError, EnvNotInstalled, not_installed
from act_trainer.envs.base import EnvUnavailable
from act_trainer.errors import EXIT_PERMANENT, EXIT_TRANSIENT, InputError, MissingInput, exit_code
from act_trainer.models import ModelError, resolve_model
from act_trainer.store import StoreError


@pytest.mark.parametrize("exc,code", [
    (EnvError("unknown split 'x'"), EXIT_PERMANENT),
    (not_installed("alfworld", "no module named 'alfworld'"), EXIT_PERMANENT),
    (ModelError("model: no config.json"), EXIT_PERMANENT),
    (InputError("expert.uri: line 1 is not JSON"), EXIT_PERMANENT),
    (MissingInput("pairs: no train.parquet"), EXIT_PERMANENT),
    (EnvUnavailable("the WebShop server does not answer"), EXIT_TRANSIENT),
    (StoreError("cannot read s3://b/x: connection refused"), EXIT_TRANSIENT),
    (RuntimeError("CUDA out of memory"), EXIT_TRANSIENT),
    (ValueError("some bug"), EXIT_TRANSIENT),  # unclassified: retried, not silently dropped
], ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v))
def test_errors_choose_the_exit_code(exc, code):
    assert exit_code(exc) == code
    assert isinstance(not_installed("alfworld", "x"), EnvNotInstalled)


def test_ill_formed_and_missing_expert_files_are_permanent(tmp_path):
    bad = tmp_path / "expert.jsonl"
    for text, match in [('{"env": "x"', "not JSON"), ('{"env": "x", "task": "t", "goal": "g"}', "lacks field"),
                        ('{"env": "x", "task": "t", "goal": "g", "steps": [{"observation": "o"}]}', "lacks 'action'"),
                        ("\n", "holds no trajectories")]:
        bad.write_text(text + "\n")
        with pytest.raises(InputError, match=match) as info:
            data.load_trajectories(str(bad), field="expert.uri")
        assert str(info.value).startswith("expert.uri: ") and exit_code(info.value) == EXIT_PERMANENT
    with pytest.raises(MissingInput, match="expert.uri: no expert trajectories"):
        data.load_trajectories(f"file://{tmp_path}/nothing-here", field="expert.uri")


def test_model_without_config_is_permanent(tmp_path):
    with pytest.raises(ModelError, match="no config.json") as info:
        resolve_model(str(tmp_path))
    assert exit_code(info.value) == EXIT_PERMANENT


def test_invalid_config_exits_2_and_says_permanent_in_the_termination_log(tmp_path, monkeypatch):
    log = tmp_path / "termination-log"
    monkeypatch.setenv("ACT_TERMINATION_LOG", str(log))
    cfg = tmp_path / "stage.json"
    cfg.write_text(json.dumps({"stage": "eval", "job": {"name": "j", "uid": "u"}}))
    assert cli.main(["eval", "--config", str(cfg)]) == EXIT_PERMANENT
    result = json.loads(log.read_text())
    assert result["permanent"] is True and result["exit_code"] == 2 and "invalid config" in result["error"]
