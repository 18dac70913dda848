"""transformers sampling on CPU (and the GPU fallback), with one prefill per prompt.

The K samples of a state share their prompt, so the prompt is run once: a batch of B
prompts is prefilled as B rows, its KV cache is expanded to B x K rows
(`DynamicCache.batch_repeat_interleave`), and the K continuations are decoded from there.
`generate(num_return_sequences=K)` would prefill B x K copies of the same prompt, which is
where the time goes for agent prompts (hundreds of prompt tokens, actions of a few).

Sampling is seeded per prompt (the call's seed and the prompt text), not by the global RNG:
a state gets the same K samples whatever else is in its batch and wherever it sits in it
(collect also fixes the batches and their seeds, so shards do not change them either).
Greedy decoding (temperature 0) is what `generate(do_sample=False)` returns.

Precision (spec.model.precision): float32, or bfloat16 weights for bf16. Measured on SmolLM2-135M
(AVX512-BF16 EPYC, 8 prompts x 4 samples): bfloat16 weights sample 1.3-2x faster than float32,
while float32 weights under torch.autocast(bfloat16) are no faster (each small decode matmul
casts its weights again). Logits are sampled in float32 either way.
"""

from __future__ import annotations

import hashlib
import inspect

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from act_trainer.contract import precision as precision_of
from act_trainer.engines import gpu_available, render


def prompt_seed(seed: int, text: str) -> int:
    """The sampling seed of one prompt: independent of batching, sharding and order."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{text}".encode()).digest()[:8], "little") & ((1 << 63) - 1)


class HFEngine:
    name = "hf"

    def __init__(self, model_dir: str, *, seed: int = 0, batch_size: int = 16, model=None, tokenizer=None,
                 precision: str = "auto"):
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"  # decoder-only: pad on the left so generation continues the prompt
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = getattr(torch, precision_of(precision, gpu_available()).hf_dtype)
        self.model = model or AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
        self.model.eval()
        self.batch_size = batch_size
        self.seed = seed
        gen = self.model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos = torch.tensor(sorted({eos} if isinstance(eos, int) else set(eos)))
        self.top_k = gen.top_k or 0  # what generate(do_sample=True) would apply from the model's config
        # transformers renamed past_key_values to cache (5.2x); the vLLM venv pins an older one
        params = inspect.signature(self.model.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"

    def generate(self, prompts: list[list[dict]], *, n: int, temperature: float, top_p: float = 1.0,
                 max_new_tokens: int = 32, prefill: str = "", progress: bool = False,
                 seed: int | None = None) -> list[list[str]]:
        """n completions per chat prompt; each completion starts with `prefill`. `seed` (default:
        the engine's) seeds this call: each prompt samples from prompt_seed(seed, its text)."""
        texts = [render(self.tokenizer, p, prefill) for p in prompts]
        out: list[list[str]] = []
        batches = range(0, len(texts), self.batch_size)
        for start in tqdm(batches, desc="generate", unit="batch", disable=not progress):
            out.extend(self.complete(texts[start:start + self.batch_size], n=n, temperature=temperature,
                                     top_p=top_p, max_new_tokens=max_new_tokens, prefix=prefill, seed=seed))
        return out

    @torch.inference_mode()
    def complete(self, texts: list[str], *, n: int, temperature: float, top_p: float = 1.0,
                 max_new_tokens: int = 32, prefix: str = "", seed: int | None = None) -> list[list[str]]:
        """n continuations of each text (one batch): one prefill, n decodes from its cache."""
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        mask = batch["attention_mask"]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens start at position 0
        pre = self.model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=positions,
                         use_cache=True, logits_to_keep=1)
        cache, logits = _cache(pre), pre.logits[:, -1].float()
        if n > 1:
            cache.batch_repeat_interleave(n)
            logits, mask = logits.repeat_interleave(n, 0), mask.repeat_interleave(n, 0)
        position = positions[:, -1].repeat_interleave(n)
        greedy = temperature <= 0
        seed = self.seed if seed is None else seed
        generators = None if greedy else [torch.Generator().manual_seed(prompt_seed(seed, t)) for t in texts]
        rows = logits.shape[0]
        tokens = torch.empty(rows, 0, dtype=torch.long)
        done = torch.zeros(rows, dtype=torch.bool)
        pad = self.tokenizer.pad_token_id
        for step in range(max_new_tokens):
            nxt = logits.argmax(-1) if greedy else self._sample(logits, generators, n, temperature, top_p)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            tokens = torch.cat([tokens, nxt[:, None]], 1)
            done |= torch.isin(nxt, self.eos)
            if done.all() or step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones(rows, 1, dtype=mask.dtype)], 1)
            position = position + 1
            step_out = self.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=position[:, None],
                                  use_cache=True, logits_to_keep=1, **{self.cache_kw: cache})
            cache, logits = _cache(step_out), step_out.logits[:, -1].float()
        decoded = self.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        return [[prefix + d for d in decoded[i:i + n]] for i in range(0, rows, n)]

    def _sample(self, logits: torch.Tensor, generators: list[torch.Generator], n: int, temperature: float,
                top_p: float) -> torch.Tensor:
        """Each prompt's n rows drawn from that prompt's own generator."""
        probs = warp(logits, temperature, self.top_k, top_p).softmax(-1)
        picks = [torch.multinomial(probs[i * n:(i + 1) * n], 1, generator=g) for i, g in enumerate(generators)]
        return torch.cat(picks).squeeze(1)


def _cache(output):
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def warp(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """What generate(do_sample=True) does to the logits: temperature, then top-k, then top-p."""
    logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False)
        remove = sorted_logits.softmax(-1).cumsum(-1) <= (1 - top_p)
        remove[:, -1:] = False  # always keep the most likely token
        logits = logits.masked_fill(remove.scatter(1, order, remove), float("-inf"))
    return logits
