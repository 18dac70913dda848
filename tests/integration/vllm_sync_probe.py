"""Run by test_vllm_paths (as its own process: vLLM wants the __main__ guard): does TRL's
per-step weight sync reach the weights its colocated vLLM generates with?

It builds TRL's GRPOTrainer from the judge stage's GRPOConfig (training.grpo_args, vLLM rollouts
colocated), then reads the prompt logprobs of one text from vLLM and from the trained model
(transformers), changes every trained weight, calls TRL's sync (`vllm_generation.sync_weights`,
what each GRPO step calls) and reads both again. Writes them as JSON to argv[1].
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

TEXT = "<|im_start|>user\nYou are in the kitchen. Which action is better?<|im_end|>\n<|im_start|>assistant\n"


def vllm_logprobs(llm, ids: list[int]) -> list[float]:
    from vllm import SamplingParams

    llm.reset_prefix_cache()  # as TRL's sync does: nothing computed with the old weights is reused
    out = llm.generate([{"prompt_token_ids": ids}], SamplingParams(max_tokens=1, prompt_logprobs=0),
                       use_tqdm=False)[0]
    return [entry[tok].logprob for entry, tok in zip(out.prompt_logprobs[1:], ids[1:], strict=True)]


def hf_logprobs(model, ids: list[int]) -> list[float]:
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits.float().log_softmax(-1)[0]
    return [logits[i, tok].item() for i, tok in enumerate(ids[1:])]


def main(out: str) -> None:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from act_trainer.config import JobRef, JudgeConfig
    from act_trainer.contract import RolloutSettings
    from act_trainer.models import resolve_model
    from act_trainer.rewards import make_judgement_reward
    from act_trainer.stages import training

    tmp = Path(tempfile.mkdtemp(prefix="vllm-sync-"))
    model_dir = str(resolve_model("tiny://qwen3-tiny"))
    cfg = JudgeConfig(job=JobRef(name="probe", uid="u"), model=model_dir, pairs=f"file://{tmp}/pairs",
                      output=f"file://{tmp}/out", checkpoints=f"file://{tmp}/ckpt", group_size=2, batch_size=2,
                      max_steps=1, max_completion_length=4,
                      rollout=RolloutSettings(engine="vllm", mode="colocate", gpu_memory_utilization=0.1))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    trainer = GRPOTrainer(model=model_dir, processing_class=tokenizer, reward_funcs=[make_judgement_reward()],
                          args=GRPOConfig(**training.grpo_args(cfg, tmp / "trl")),
                          train_dataset=Dataset.from_list([{"prompt": TEXT, "answer": 1}] * 2))
    llm, model = trainer.vllm_generation.llm, trainer.model
    ids = tokenizer(TEXT).input_ids
    found = {"vllm_before": vllm_logprobs(llm, ids), "hf_before": hf_logprobs(model, ids)}
    torch.manual_seed(1)
    with torch.no_grad():  # a training step's worth of change, in every weight
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    trainer.vllm_generation.sync_weights()
    found |= {"vllm_after": vllm_logprobs(llm, ids), "hf_after": hf_logprobs(model, ids)}
    Path(out).write_text(json.dumps(found))


if __name__ == "__main__":
    main(sys.argv[1])
