"""transformers `generate`, batched: the CPU fallback and the reference for the benchmark."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from act_trainer.engines import render


class HFEngine:
    name = "hf"

    def __init__(self, model_dir: str, *, seed: int = 0, batch_size: int = 16, model=None, tokenizer=None):
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"  # decoder-only: pad on the left so generation continues the prompt
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = model or AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        self.model.eval()
        self.batch_size = batch_size
        self.seed = seed

    @torch.inference_mode()
    def generate(self, prompts: list[list[dict]], *, n: int, temperature: float, top_p: float = 1.0,
                 max_new_tokens: int = 32, prefill: str = "", progress: bool = False,
                 seed: int | None = None) -> list[list[str]]:
        """n completions per chat prompt; each completion starts with `prefill`. `seed` (default:
        the engine's) seeds the sampling of this call."""
        torch.manual_seed(self.seed if seed is None else seed)
        texts = [render(self.tokenizer, p, prefill) for p in prompts]
        out: list[list[str]] = []
        batches = range(0, len(texts), self.batch_size)
        for start in tqdm(batches, desc="generate", unit="batch", disable=not progress):
            batch = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                   add_special_tokens=False)
            sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else \
                dict(do_sample=False)
            ids = self.model.generate(**batch, max_new_tokens=max_new_tokens, num_return_sequences=n,
                                      pad_token_id=self.tokenizer.pad_token_id, **sampling)
            new = ids[:, batch["input_ids"].shape[1]:]
            decoded = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            out.extend([prefill + d for d in decoded[i:i + n]] for i in range(0, len(decoded), n))
        return out
