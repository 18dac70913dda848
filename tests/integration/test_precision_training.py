"""spec.model.precision bf16 on a CPU: a training stage (policy il, SFT through TRL) trains the tiny
model in mixed precision bf16: TRL ran with bf16 (the checkpoint's training arguments say so), the
weights moved and were saved in float32 (mixed precision keeps float32 master weights)."""

from __future__ import annotations

import pytest

from act_trainer import data, store
from act_trainer.config import JobRef, PolicyConfig
from act_trainer.manifest import read_manifest
from act_trainer.models import resolve_model

pytestmark = pytest.mark.integration

MODEL = "tiny://qwen3-tiny"


def expert_file(path, episodes: int = 2, steps: int = 3) -> str:
    trajs = [data.Trajectory(env="scienceworld", task="find-living-thing", goal="Find a living thing.", variation=e,
                             steps=[data.Step(f"You are in the kitchen ({e}.{s}). You see a fridge, a table "
                                              "and a door to the hallway.", f"open door {s}") for s in range(steps)])
             for e in range(episodes)]
    path.write_bytes(data.dumps_jsonl(t.to_dict() for t in trajs))
    return str(path)


def policy_il(tmp_path, precision: str, model: str = MODEL, steps: int = 2, batch: int = 2, **extra) -> PolicyConfig:
    root = (tmp_path / "storage").as_uri()
    return PolicyConfig(job=JobRef(name="precision", uid="u1"), output=f"{root}/policy-{precision}",
                        checkpoints=f"{root}/checkpoints-{precision}", scratch=str(tmp_path / f"scratch-{precision}"),
                        model=model, expert=expert_file(tmp_path / "expert.jsonl"), method="il",
                        precision=precision, max_steps=steps, batch_size=batch, save_steps=steps,
                        learning_rate=1e-3, gradient_checkpointing=False, **extra)


def test_a_training_stage_trains_in_mixed_precision_bf16_on_cpu(tmp_path):
    import torch
    from safetensors.torch import load_file

    from act_trainer.stages import policy

    cfg = policy_il(tmp_path, "bf16")
    policy.run(cfg)
    assert read_manifest(cfg.output)["metrics"]["steps"] == 2
    ckpt = tmp_path / "checkpoint"
    store.download(f"{cfg.checkpoints}/checkpoint-2", str(ckpt))
    args = torch.load(ckpt / "training_args.bin", weights_only=False)
    assert (args.bf16, args.use_cpu) == (True, True)
    out = tmp_path / "model"
    store.download(cfg.output, str(out))
    before, after = load_file(str(resolve_model(MODEL) / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert {t.dtype for t in after.values()} == {torch.float32}
    assert not [k for k in before if before[k].equal(after[k])]  # every tensor trained
