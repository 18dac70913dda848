"""Sampling backends: vLLM on GPUs, transformers `generate` everywhere else, chosen at run time."""

from __future__ import annotations

import importlib.util
import logging

log = logging.getLogger(__name__)


def gpu_available() -> bool:
    """Whether torch sees a CUDA device: the one GPU check (engines, training arguments)."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def make_engine(kind: str, model_dir: str, *, seed: int = 0, batch_size: int = 16):
    """kind: auto | hf | vllm. auto takes vLLM when it is installed and a GPU is present."""
    if kind == "vllm" or (kind == "auto" and gpu_available() and importlib.util.find_spec("vllm")):
        if not gpu_available():
            raise RuntimeError("engine: 'vllm' needs a GPU; use engine: hf (or auto) on CPU machines")
        from act_trainer.engines.vllm_engine import VLLMEngine

        return VLLMEngine(model_dir, seed=seed)
    from act_trainer.engines.hf import HFEngine

    return HFEngine(model_dir, seed=seed, batch_size=batch_size)


def render(tokenizer, messages: list[dict], prefill: str = "") -> str:
    """Chat-templated prompt text, with the assistant turn opened and optionally prefilled."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         enable_thinking=not prefill)
    return text + prefill
