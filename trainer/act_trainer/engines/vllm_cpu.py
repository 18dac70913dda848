"""vLLM's CPU build under TRL's per-step weight sync.

At load time vLLM-CPU (0.31) hands each unquantized linear layer to its fastest CPU kernel
(`dispatch_cpu_unquantized_gemm`): oneDNN (fp32 everywhere the build has oneDNN, so every x86
CPU), the SGL AMX kernel (bf16/fp16 on AMX CPUs) or zentorch (AMD Zen). Each packs a private
copy of the weight and swaps the layer's weight for an empty Parameter without a weight_loader;
the lm_head keeps its weight but computes from its packed copy. TRL's colocated vLLM pushes the
trained weights every step with `model.load_weights`: into the empty Parameters it fails
(`'Parameter' object has no attribute 'weight_loader'`), and into the lm_head (tied to the
embedding in small models) it would land where the forward pass never reads.

vLLM has no setting for the dispatch, so `keep_linear_weights_loadable` points it at vLLM's own
fallback branch, `torch.nn.functional.linear`, which reads `layer.weight` on every call: each
sync lands in the weights generation uses, on every CPU the build runs on. It is meant for the
vLLM that TRL builds in the training process (colocate); the collect and eval engines load
their weights once and keep vLLM's packed kernels.
"""

from __future__ import annotations

import logging

from act_trainer import engines

log = logging.getLogger(__name__)

MARK = "_act_keeps_weights_loadable"


def keep_linear_weights_loadable() -> bool:
    """Make vLLM-CPU models built from now on in this process keep loadable linear weights.
    True when the dispatch is (now) replaced; False where this is not vLLM's CPU build (GPUs
    keep vLLM's kernels: their weights stay loadable) or the build has no such dispatch."""
    if engines.gpu_available() or engines.vllm_problem() is not None:
        return False
    import torch
    from vllm.model_executor.layers import utils

    dispatch = getattr(utils, "dispatch_cpu_unquantized_gemm", None)
    if dispatch is None:
        log.warning("this vLLM (%s) has no dispatch_cpu_unquantized_gemm: TRL's weight sync into it is "
                    "unchecked (scripts/vllm-env.sh pins the vllm-cpu it was checked with)", _vllm_version())
        return False
    if getattr(dispatch, MARK, False):
        return True

    def torch_linear(layer: torch.nn.Module, remove_weight: bool) -> None:
        if layer.weight.ndim != 2:  # conv1d and MoE expert weights: vLLM's own handling
            dispatch(layer, remove_weight)
            return
        layer.cpu_linear = torch.nn.functional.linear  # (x, weight, bias): weight is layer.weight at call time

    setattr(torch_linear, MARK, True)
    utils.dispatch_cpu_unquantized_gemm = torch_linear  # vLLM imports it at each call: models built from now on
    log.info("vLLM-CPU: linear layers run torch.nn.functional.linear on their own weights, so that TRL's weight "
             "sync reaches them")
    return True


def _vllm_version() -> str:
    import vllm

    return getattr(vllm, "__version__", "?")
