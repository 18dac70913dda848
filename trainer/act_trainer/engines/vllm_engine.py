"""vLLM sampling for GPUs: n=K completions per prompt in one call, prefix caching on,
since the K samples of a state (and consecutive states of an episode) share long prefixes."""

from __future__ import annotations

from transformers import AutoTokenizer

from act_trainer.engines import render


class VLLMEngine:
    name = "vllm"

    def __init__(self, model_dir: str, *, seed: int = 0, gpu_memory_utilization: float = 0.85):
        from vllm import LLM  # lazy: vLLM exists only on GPU images

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.llm = LLM(model=model_dir, seed=seed, enable_prefix_caching=True,
                       gpu_memory_utilization=gpu_memory_utilization)
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
