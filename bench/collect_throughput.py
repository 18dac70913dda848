"""Collect throughput: alternatives/s of the collect stage's sampling + filtering vs a bare
batched `model.generate` over the same expert states, in the same process.

    OMP_NUM_THREADS=1 python bench/collect_throughput.py     # target: ratio >= 0.9
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from act_trainer import data  # noqa: E402
from act_trainer.config import CollectConfig, EnvironmentConfig, JobRef  # noqa: E402
from act_trainer.engines.hf import HFEngine  # noqa: E402
from act_trainer.envs import make_env  # noqa: E402
from act_trainer.models import resolve_model  # noqa: E402
from act_trainer.prompts import action_prompt  # noqa: E402
from act_trainer.stages.collect import batch_seed, contrast_pairs  # noqa: E402

K, BATCH, NEW_TOKENS, ROUNDS = 8, 16, 16, 3


def bare_generate(engine: HFEngine, trajs) -> int:
    """The baseline: chat template, one padded batch at a time, model.generate, decode."""
    tok, model = engine.tokenizer, engine.model
    texts = [tok.apply_chat_template(action_prompt(s), tokenize=False, add_generation_prompt=True) + "<action>"
             for t in trajs for s, _ in data.states(t, 2)]
    n = 0
    with torch.inference_mode():
        for i in range(0, len(texts), BATCH):
            torch.manual_seed(batch_seed(0, i // BATCH))  # the seeds collect uses
            batch = tok(texts[i:i + BATCH], return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(**batch, do_sample=True, temperature=1.0, max_new_tokens=NEW_TOKENS,
                                 num_return_sequences=K, pad_token_id=tok.pad_token_id)
            n += len(tok.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True))
    return n


def main() -> None:
    torch.set_num_threads(1)
    env_cfg = EnvironmentConfig(name="scienceworld", tasks=["find-living-thing"], history=2)
    env = make_env(env_cfg)
    trajs = list(env.expert("train", 3, 20))
    env.close()
    model_dir = str(resolve_model("tiny://qwen3-tiny"))
    engine = HFEngine(model_dir, batch_size=BATCH)
    cfg = CollectConfig(job=JobRef(name="bench", uid="bench"), output="file:///tmp/bench", model=model_dir,
                        env=env_cfg, samples=K, max_alternatives=K, batch_size=BATCH,
                        temperature=1.0, max_new_tokens=NEW_TOKENS)
    states = sum(len(t.steps) for t in trajs)
    ours, bare = [], []
    for _ in range(ROUNDS):  # interleaved, so drift on a shared machine hits both alike
        t = time.perf_counter()
        bare_generate(engine, trajs)
        bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        contrast_pairs(cfg, engine, trajs)
        ours.append(time.perf_counter() - t)
    alts = states * K
    b, o = alts / statistics.median(bare), alts / statistics.median(ours)
    print(f"collect throughput: {states} states x K={K}, tiny Qwen3, {ROUNDS} rounds (median)")
    print(f"  bare model.generate: {b:8.1f} alternatives/s")
    print(f"  collect stage      : {o:8.1f} alternatives/s")
    print(f"  ratio (collect / bare) = {o / b:.3f}   (target >= 0.9)")


if __name__ == "__main__":
    main()
