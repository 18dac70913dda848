"""One prefill for K samples: alternatives/s of the transformers engine (each prompt prefilled
once, its KV cache expanded to K rows) vs a bare batched `model.generate(num_return_sequences=K)`
(K copies of every prompt prefilled), on ALFWorld-length prompts, in the same process.

    OMP_NUM_THREADS=1 python bench/collect_prefill.py     # target: ratio >= 2

States look like ALFWorld's: a goal, a long room description, history 4 (the four previous
turns with their observations), at least 400 prompt tokens; K=8 actions of 8 new tokens.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from act_trainer import data  # noqa: E402
from act_trainer.engines import render  # noqa: E402
from act_trainer.engines.hf import HFEngine  # noqa: E402
from act_trainer.models import resolve_model  # noqa: E402
from act_trainer.prompts import action_prompt  # noqa: E402

ROOM = ("You are in the middle of a room. Looking quickly around you, you see a cabinet 6, a cabinet 5, a cabinet 4, "
        "a cabinet 3, a cabinet 2, a cabinet 1, a coffeemachine 1, a countertop 3, a countertop 2, a countertop 1, "
        "a drawer 3, a drawer 2, a drawer 1, a fridge 1, a garbagecan 1, a microwave 1, a shelf 3, a shelf 2, "
        "a shelf 1, a sinkbasin 1, a stoveburner 4, a stoveburner 3, a stoveburner 2, a stoveburner 1, "
        "and a toaster 1.")
TURNS = [("go to countertop 1", "On the countertop 1, you see a apple 1, a bread 1, a butterknife 2, a dishsponge 1, "
          "a fork 1, a knife 1, a lettuce 1, a peppershaker 2, a plate 1, and a soapbottle 1."),
         ("take apple 1 from countertop 1", "You pick up the apple 1 from the countertop 1."),
         ("go to fridge 1", "The fridge 1 is closed."),
         ("open fridge 1", "You open the fridge 1. The fridge 1 is open. In it, you see a bowl 2, a cup 1, "
          "a egg 2, a mug 1, a potato 3, and a tomato 1."),
         ("cool apple 1 with fridge 1", "You cool the apple 1 using the fridge 1."),
         ("go to diningtable 1", "On the diningtable 1, you see a bread 2, a cup 2, a houseplant 1, a lettuce 2, "
          "a pan 1, a spatula 1, and a winebottle 1.")]


def states(n: int) -> list[data.State]:
    """n distinct ALFWorld-shaped states with 4 turns of history."""
    out = []
    for i in range(n):
        history = [TURNS[(i + j) % len(TURNS)] for j in range(4)]
        out.append(data.State(f"alfworld/{i}", 4 + i, f"Your task is to: put a cool apple {i} in diningtable.",
                              f"{ROOM} You are facing cabinet {i % 6 + 1}.", history))
    return out


def bare_generate(engine: HFEngine, texts: list[str], k: int, batch: int, new_tokens: int) -> int:
    """The baseline: one padded batch at a time, model.generate with num_return_sequences=K."""
    tok, model, n = engine.tokenizer, engine.model, 0
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            enc = tok(texts[i:i + batch], return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(**enc, do_sample=True, temperature=1.0, max_new_tokens=new_tokens,
                                 num_return_sequences=k, pad_token_id=tok.pad_token_id)
            n += len(tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny://qwen3-small")
    ap.add_argument("--states", type=int, default=32)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    engine = HFEngine(str(resolve_model(args.model)), batch_size=args.batch)
    prompts = [action_prompt(s) for s in states(args.states)]
    texts = [render(engine.tokenizer, p, "<action>") for p in prompts]
    lengths = [len(engine.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    ours, bare = [], []
    for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits both alike
        t = time.perf_counter()
        bare_generate(engine, texts, args.k, args.batch, args.new_tokens)
        bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        engine.generate(prompts, n=args.k, temperature=1.0, max_new_tokens=args.new_tokens, prefill="<action>")
        ours.append(time.perf_counter() - t)
    alts = args.states * args.k
    b, o = alts / statistics.median(bare), alts / statistics.median(ours)
    print(f"one prefill for K samples: {args.model}, {args.states} states (prompt tokens {min(lengths)}-"
          f"{max(lengths)}), K={args.k}, {args.new_tokens} new tokens, batch {args.batch}, "
          f"{args.rounds} rounds (median)")
    print(f"  bare generate(num_return_sequences=K): {b:8.1f} alternatives/s")
    print(f"  engine, one prefill per state        : {o:8.1f} alternatives/s")
    print(f"  ratio (one prefill / bare) = {o / b:.2f}   (target >= 2)")


if __name__ == "__main__":
    main()
