"""The Early Experience baselines (arXiv 2510.08558) in the judge stage's place (stages.judge.method
iwm or sr): what a model learns from the same contrast pairs when it imitates instead of judging.
Both need the pairs' recorded outcomes (stages.collect.recordOutcomes): the observation that followed
the expert's action and the alternative, each taken from the same restored state (Environment.branch).

iwm, implicit world modelling: SFT on (state, action) -> the observation that followed, for every
     alternative and, once per state, the expert's action.
sr,  self-reflection: the model itself writes, for each pair, why the expert's action is better
     given both outcomes (sampled at the stage's temperature, seeded); then SFT on
     state -> <think>that rationale</think><action>expert action</action>.

As in the EE paper, the same IL as the other arms follows (the policy stage, from this checkpoint).
"""

from __future__ import annotations

import gc
import logging
import os

from act_trainer import data, progress
from act_trainer.config import JudgeConfig
from act_trainer.engines import make_engine
from act_trainer.errors import InputError
from act_trainer.models import resolve_model
from act_trainer.prompts import (
    action_prompt,
    reflection_answer,
    reflection_prompt,
    world_model_answer,
    world_model_prompt,
)
from act_trainer.stages import training
from act_trainer.stages.common import stage

log = logging.getLogger("act_trainer.early_experience")


def _completion(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def with_outcomes(pairs: list[dict]) -> list[dict]:
    """The pairs whose two outcomes were recorded (a state whose prefix did not replay has none)."""
    return [p for p in pairs if p.get("expert_next") is not None and p.get("alternative_next") is not None]


def world_model_rows(pairs: list[dict], history: int) -> list[dict]:
    """Next-observation prediction: each alternative, and the expert's action once per state."""
    rows, states = [], set()
    for p in pairs:
        state = data.pair_state(p, history)
        taken = [(p["alternative"], p["alternative_next"])]
        if (p["episode_id"], p["step"]) not in states:
            states.add((p["episode_id"], p["step"]))
            taken.insert(0, (p["expert_action"], p["expert_next"]))
        rows.extend({"prompt": world_model_prompt(state, action), "completion": _completion(world_model_answer(nxt))}
                    for action, nxt in taken)
    return rows


def reflection_prompts(pairs: list[dict], history: int) -> list[list[dict]]:
    return [reflection_prompt(data.pair_state(p, history), p["expert_action"], p["expert_next"], p["alternative"],
                              p["alternative_next"]) for p in pairs]


def rationale(text: str) -> str:
    """The rationale in a generated reflection: inside <think> (opened by the prefill), up to its end."""
    body = text.split("<think>", 1)[-1]
    return body.split("</think>", 1)[0].strip()


def reflection_rows(pairs: list[dict], rationales: list[str], history: int) -> list[dict]:
    return [{"prompt": action_prompt(data.pair_state(p, history)),
             "completion": _completion(reflection_answer(r, p["expert_action"]))}
            for p, r in zip(pairs, rationales, strict=True)]


def share(n: int, rank: int, world: int) -> range:
    """The indices of n items one rank of a gang of `world` takes: contiguous, sizes within one."""
    return range(n * rank // world, n * (rank + 1) // world)


def gather(local: list[str], world: int) -> list[str]:
    """Every rank's items in rank order, on every rank: a gang (torchrun) splits the generation.
    The process group is the one training goes on to use (DeepSpeed and accelerate take an
    initialized one as it is): NCCL on GPUs, else gloo."""
    if world == 1:
        return local
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    parts: list[list[str] | None] = [None] * world
    dist.all_gather_object(parts, local)
    return [item for part in parts for item in part]


def generate_rationales(cfg: JudgeConfig, model_dir, pairs: list[dict], report) -> list[str]:
    """The model's own reflections, one per pair, in generate batches of cfg.batch_size; a gang's
    ranks each write their share (one engine per rank, its own GPU) and gather them. A batch's seed
    is its first pair's index, whichever rank takes it."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    prompts = reflection_prompts(pairs, cfg.history)
    mine = share(len(prompts), rank, world)
    engine = make_engine(cfg.rollout.engine, str(model_dir), seed=cfg.seed, batch_size=cfg.batch_size,
                         field="stages.judge.rollout.engine", precision=cfg.precision)
    meter = progress.Meter(cfg.stage, len(prompts))
    meter.unit = "rationales"
    out: list[str] = []
    try:
        for start in range(mine.start, mine.stop, cfg.batch_size):
            stop = min(start + cfg.batch_size, mine.stop)
            texts = engine.generate(prompts[start:stop], n=1, temperature=cfg.temperature,
                                    max_new_tokens=cfg.max_completion_length, prefill="<think>", seed=cfg.seed + start)
            out.extend(rationale(t[0]) for t in texts)
            # rank 0 reports for the gang: its share done, times the ranks (they go at one pace)
            last = stop >= mine.stop
            if p := meter.update(len(prompts) if last else (stop - mine.start) * world, final=last):
                report(p)
    finally:
        del engine  # its weights (and, with vLLM, its GPU memory) before training loads the model again
        gc.collect()
    if world > 1:
        log.info("judge (sr): this rank wrote rationales %d-%d of %d", mine.start, mine.stop, len(prompts))
    return gather(out, world)


def run(cfg: JudgeConfig) -> dict:
    with stage(cfg) as st:
        model_dir = resolve_model(cfg.model)
        pairs = data.load_pairs(cfg.pairs)[: cfg.max_pairs]
        usable = with_outcomes(pairs)
        if not usable:
            raise InputError(f"stages.judge.method '{cfg.method}': none of the {len(pairs)} pairs under {cfg.pairs} "
                             "holds what followed its actions; collect them with stages.collect.recordOutcomes: true")
        if cfg.method == "iwm":
            rows = world_model_rows(usable, cfg.history)
            empty = 0
        else:
            rationales = generate_rationales(cfg, model_dir, usable, st.run.report)
            empty = sum(not r for r in rationales)
            rows = reflection_rows(usable, rationales, cfg.history)
            (st.out / "rationales.jsonl").write_bytes(data.dumps_jsonl(  # published beside the model: its lineage
                {"pair_id": p["pair_id"], "rationale": r} for p, r in zip(usable, rationales, strict=True)))
        log.info("judge (%s): %d examples from %d pairs (%d without outcomes)", cfg.method, len(rows), len(usable),
                 len(pairs) - len(usable))
        done = training.fit(cfg, st, rows, "il", model_dir)
        if done is None:
            return {}
        metrics, info = done
        metrics.update(examples=len(rows), pairs=len(usable), pairs_without_outcomes=len(pairs) - len(usable))
        if cfg.method == "sr":
            metrics["empty_rationales"] = empty
        digest = data.manifest_digest(cfg.pairs)
        st.run.log_dataset(cfg.pairs, "contrast_pairs", digest, "training",
                           rows=[{k: p[k] for k in ("pair_id", "expert_action", "alternative")} for p in usable])
        result = st.publish(metrics, extra={"method": cfg.method, "base_model": cfg.model, "pairs": cfg.pairs,
                                            "pairs_digest": digest, **info})
        training.delete_all_checkpoints(cfg)
        return result
