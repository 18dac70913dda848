"""The transformers engine: one prefill per prompt shared by its K samples, greedy output equal
to generate's, sampling seeded per prompt (batching and sharding do not change a state's samples)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from act_trainer.engines import render  # noqa: E402
from act_trainer.engines.hf import HFEngine, warp  # noqa: E402
from act_trainer.models import resolve_model  # noqa: E402

PROMPTS = [[{"role": "user", "content": "look around the kitchen " * k}] for k in (1, 4, 9, 2)]


@pytest.fixture(scope="module")
def engine():
    """The tiny model with larger random weights, so that greedy outputs differ between prompts."""
    eng = HFEngine(str(resolve_model("tiny://qwen3-tiny")), batch_size=3)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in eng.model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return eng


def bare_greedy(engine, prompts, new_tokens):
    tok = engine.tokenizer
    texts = [render(tok, p, "<action>") for p in prompts]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        ids = engine.model.generate(**enc, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    return ["<action>" + t for t in tok.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]


def test_greedy_equals_generate(engine):
    ours = engine.generate(PROMPTS, n=1, temperature=0.0, max_new_tokens=10, prefill="<action>")
    bare = bare_greedy(engine, PROMPTS, 10)
    assert [o[0] for o in ours] == bare
    assert len(set(bare)) > 1  # the check means something: prompts get different continuations
    # K greedy samples of one state are K copies of the greedy continuation
    k3 = engine.generate(PROMPTS, n=3, temperature=0.0, max_new_tokens=10, prefill="<action>")
    assert k3 == [[b] * 3 for b in bare]


def test_one_prefill_per_prompt(engine):
    """The prompt goes through the model once per state, not K times."""
    shapes = []
    hook = engine.model.register_forward_pre_hook(lambda m, a, kw: shapes.append(tuple(kw["input_ids"].shape)),
                                                  with_kwargs=True)
    try:
        engine.generate(PROMPTS[:3], n=8, temperature=1.0, max_new_tokens=4, prefill="<action>")
    finally:
        hook.remove()
    prefill, *decode = shapes
    assert prefill[0] == 3 and prefill[1] > 1  # 3 prompts, whole prompt
    assert all(s == (24, 1) for s in decode)  # 3 x K=8 rows, one token each


def test_samples_do_not_depend_on_batching(engine):
    """A state gets the same samples whatever else is in its batch (shards, order, batch size)."""
    kw = dict(n=4, temperature=1.0, max_new_tokens=6, prefill="<action>")
    whole = engine.generate(PROMPTS, **kw)
    assert engine.generate(PROMPTS[::-1], **kw) == whole[::-1]
    assert [engine.generate([p], **kw)[0] for p in PROMPTS] == whole
    assert len({s for outs in whole for s in outs}) > len(PROMPTS)  # sampled, not greedy
    other = HFEngine("", seed=1, model=engine.model, tokenizer=engine.tokenizer)
    assert other.generate(PROMPTS, **kw) != whole  # the run's seed still matters


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.7, 0, 0.9), (1.3, 20, 0.5)])
def test_warp_matches_generate(temperature, top_k, top_p):
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    logits = torch.randn(5, 300, generator=torch.Generator().manual_seed(3)) * 3
    chain = [TemperatureLogitsWarper(temperature)] + ([TopKLogitsWarper(top_k)] if top_k else []) + \
        ([TopPLogitsWarper(top_p)] if top_p < 1 else [])
    expected = LogitsProcessorList(chain)(torch.zeros(5, 1, dtype=torch.long), logits.clone())
    assert torch.allclose(warp(logits, temperature, top_k, top_p).softmax(-1), expected.softmax(-1), atol=1e-6)
