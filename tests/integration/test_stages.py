"""The stage programs as pods run them: `act-trainer <stage> --config FILE`, against a real
SeaweedFS S3, a real MLflow server and the real ScienceWorld, with the tiny Qwen3 model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from act_operator.local import stage_command
from act_trainer import data, store
from act_trainer.config import (
    CollectConfig,
    EnvironmentConfig,
    EvalConfig,
    ExpertSource,
    JobRef,
    JudgeConfig,
    PolicyConfig,
    TrackingConfig,
    WarmupConfig,
)
from act_trainer.manifest import MANIFEST, read_manifest, sha256_file
from act_trainer.models import resolve_model

pytestmark = pytest.mark.integration

ENV = EnvironmentConfig(name="scienceworld", tasks=["find-living-thing"], max_steps=4, history=2)
MODEL = "tiny://qwen3-tiny"


def run_stage(cfg, tmp_path: Path, timeout: int = 600, wait: bool = True):
    """Run a stage as its own process (torchrun when it asks for several), like a pod does."""
    config = tmp_path / f"{cfg.stage}.json"
    config.write_text(cfg.model_dump_json())
    result = tmp_path / f"{cfg.stage}.result"
    result.unlink(missing_ok=True)
    env = {**os.environ, "ACT_TERMINATION_LOG": str(result)}
    cmd = stage_command(cfg, config)
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    report = json.loads(result.read_text()) if result.exists() else {}
    return proc, report


def common(root: str, name: str, tracking: str | None = None, parent: str | None = None) -> dict:
    return dict(job=JobRef(name="itest", uid="u1"), output=f"{root}/{name}",
                tracking=TrackingConfig(uri=tracking, experiment="itest", parent_run_id=parent))


def weights(model_uri: str) -> dict:
    """Every tensor of a saved model (tiny:// presets are built, URIs downloaded)."""
    from safetensors.torch import load_file

    return load_file(str(resolve_model(model_uri) / "model.safetensors"))


def unchanged(start: str, output: str) -> list[str]:
    """Names of the trainable tensors training left as they were; a stage must leave none, as
    TRL's own trainer tests assert of every trainable parameter after a few steps ("Parameter
    {n} has not changed"). The stages fine-tune the whole model, so every tensor the saved model
    holds is a trainable parameter (checked here: the tied lm_head is saved once, as the embedding)."""
    from transformers import AutoModelForCausalLM

    before, after = weights(start), weights(output)
    assert before.keys() == after.keys()
    model = AutoModelForCausalLM.from_pretrained(resolve_model(output))
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(after)
    return [k for k in before if before[k].equal(after[k])]


@pytest.fixture(scope="module")
def collected(s3, mlflow_server, tmp_path_factory):
    """One real collect run shared by the tests below: ScienceWorld gold paths -> pairs in S3."""
    import mlflow

    tmp = tmp_path_factory.mktemp("collect")
    root = f"s3://{s3.bucket}/stages-{int(time.time())}"
    mlflow.set_tracking_uri(mlflow_server)
    parent = mlflow.MlflowClient().create_run(mlflow.set_experiment("itest").experiment_id).info.run_id
    cfg = CollectConfig(**common(root, "pairs", mlflow_server, parent), model=MODEL, env=ENV,
                        expert=ExpertSource(split="train", episodes=4, max_length=12), samples=4,
                        max_alternatives=2, heldout_fraction=0.25, temperature=1.0, max_new_tokens=10,
                        record_outcomes=True,  # for the Early Experience judge below
                        filter_inadmissible=False)  # a random model's samples are no ScienceWorld actions
    proc, report = run_stage(cfg, tmp)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"root": root, "cfg": cfg, "report": report, "parent": parent, "tracking": mlflow_server}


@pytest.fixture(scope="module")
def warmed(collected, tmp_path_factory):
    """pi0 for the GRPO tests, made by the warm-up stage: IL on the expert actions plus judgement
    prompts with random labels. A random-weight model never writes a readable action or answer,
    so every GRPO reward would be equal, every advantage zero and no weight would move; after
    this warm-up rewards differ."""
    root = collected["root"]
    cfg = WarmupConfig(**common(root, "warmup"), model=MODEL, env=ENV, expert=ExpertSource(uri=collected["cfg"].output),
                       heldout_fraction=collected["cfg"].heldout_fraction, format_judgements=1.0,
                       learning_rate=1e-2, max_steps=50, batch_size=8, save_steps=50, gradient_checkpointing=False)
    proc, report = run_stage(cfg, tmp_path_factory.mktemp("warmup"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return cfg.output


def test_collect_writes_pairs_manifest_last_and_counts_filters(collected, tmp_path):
    report, cfg = collected["report"], collected["cfg"]
    manifest = read_manifest(cfg.output)
    assert report["manifest"] == f"{cfg.output}/{MANIFEST}" and report["digest"] == manifest["digest"]
    names = {f["path"] for f in manifest["files"]}
    assert {"pairs/train.parquet", "expert.jsonl", "filter_report.json"} <= names
    # every file in the manifest is in S3 with the recorded checksum
    for f in manifest["files"]:
        local = tmp_path / f["path"].replace("/", "_")
        store.download(f"{cfg.output}/{f['path']}", local)
        assert sha256_file(local) == f["sha256"]
    m = manifest["metrics"]
    removed = sum(m[f"removed_{r}"] for r in ("unparseable", "same_as_expert", "inadmissible", "duplicate",
                                               "over_limit"))
    assert m["sampled"] == m["states"] * cfg.samples and m["kept"] + removed == m["sampled"]
    pairs = data.read_parquet(store.read_bytes(f"{cfg.output}/pairs/train.parquet"))
    assert len(pairs) == m["pairs_train"] > 0
    assert all(p["alternative"] != p["expert_action"] for p in pairs)
    trajs = data.loads_trajectories(store.read_bytes(f"{cfg.output}/expert.jsonl"))
    assert len(trajs) == 4 and all(t.env == "scienceworld" for t in trajs)


def test_collect_logs_a_child_run_with_its_inputs(collected):
    from mlflow import MlflowClient

    run = MlflowClient(collected["tracking"]).get_run(collected["report"]["mlflow_run_id"])
    assert run.data.tags["mlflow.parentRunId"] == collected["parent"]
    assert run.data.params["samples"] == "4" and float(run.data.metrics["pairs_train"]) > 0
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["expert"]
    assert plot_names(collected["tracking"], run.info.run_id) == ["plots/filter_report.png"]


def test_bad_config_exits_2_before_anything(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stage": "collect", "job": {"name": "x", "uid": "y"}, "output": "ftp://nowhere",
                               "model": MODEL, "env": {"name": "scienceworld"}, "samples": 0}))
    proc = subprocess.run([sys.executable, "-m", "act_trainer.cli", "collect", "--config", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "output:" in proc.stderr and "samples:" in proc.stderr


def test_missing_expert_data_fails_before_training(s3, tmp_path):
    root = f"s3://{s3.bucket}/missing-{int(time.time())}"
    cfg = CollectConfig(**common(root, "pairs"), model=MODEL, env=ENV,
                        expert=ExpertSource(uri=f"{root}/no-such-file.jsonl"))
    proc, report = run_stage(cfg, tmp_path)
    assert proc.returncode == 2 and report["permanent"] is True  # no retry can make the file appear
    assert "expert.uri" in report["error"] and "no-such-file.jsonl" in report["error"]
    assert not store.exists(f"{root}/pairs/{MANIFEST}")


def test_missing_bucket_fails_before_work(s3, tmp_path):
    cfg = CollectConfig(**common("s3://no-such-bucket-act/x", "pairs"), model=MODEL, env=ENV)
    proc, report = run_stage(cfg, tmp_path)
    assert proc.returncode == 1 and "no-such-bucket-act" in report["error"]


def judge_cfg(collected, name: str, model: str, **kw) -> JudgeConfig:
    root = collected["root"]
    kw = {**dict(model=model, learning_rate=1e-5, max_steps=2, batch_size=4, save_steps=1, group_size=4,
                 max_completion_length=12), **kw}
    return JudgeConfig(**common(root, name, collected["tracking"], collected["parent"]),
                       pairs=collected["cfg"].output, checkpoints=f"{root}/checkpoints/{name}", **kw)


def test_judge_trains_saves_and_resumes_after_a_kill(collected, warmed, tmp_path):
    # long enough that the kill lands mid-run: a checkpoint is marked complete only once the next
    # one is saved (uploads run in the background), and the tiny model takes ~0.1 s a step
    cfg = judge_cfg(collected, "judge", warmed, max_steps=40, save_steps=2)
    # kill the first attempt once a checkpoint is safely in storage, as a preempted pod would be
    proc = run_stage(cfg, tmp_path, wait=False)
    deadline = time.time() + 300
    while not store.exists(f"{cfg.checkpoints}/checkpoint-2/_COMPLETE"):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:]
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert not store.exists(f"{cfg.output}/{MANIFEST}")

    proc, report = run_stage(cfg, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resuming from" in proc.stderr + proc.stdout
    manifest = read_manifest(cfg.output)
    assert manifest["metrics"]["steps"] == 40 and manifest["metrics"]["resumed"] is True
    assert {"config.json", "model.safetensors", "train_log.json"} <= {f["path"] for f in manifest["files"]}
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(resolve_model(cfg.output))  # a loadable model
    assert not unchanged(warmed, cfg.output)


def test_judge_keeps_the_newest_complete_checkpoints_only(collected, tmp_path):
    """keepCheckpoints: save every step for 5 steps, keep 2 -> exactly checkpoint-4 and -5 remain;
    deleteCheckpointsAfterSave: none remain once the model is published."""
    from act_trainer.stages.training import checkpoints

    cfg = judge_cfg(collected, "judge-keep", MODEL, max_steps=5, save_steps=1, keep_checkpoints=2,
                    gradient_checkpointing=False)
    proc, report = run_stage(cfg, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert checkpoints(cfg.checkpoints) == {4: True, 5: True}
    assert plot_names(collected["tracking"], report["mlflow_run_id"]) == ["plots/judge_curves.png"]
    assert "deleted checkpoint(s) [1]" in proc.stderr + proc.stdout  # as each newer one completed

    cfg = judge_cfg(collected, "judge-drop", MODEL, max_steps=2, save_steps=1, keep_checkpoints=1,
                    delete_checkpoints_after_save=True, gradient_checkpointing=False)
    proc, report = run_stage(cfg, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert checkpoints(cfg.checkpoints) == {} and store.exists(f"{cfg.output}/{MANIFEST}")


@pytest.mark.slow
def test_judge_two_process_zero3(collected, warmed, tmp_path):
    """The ACT stage as a 2-process DeepSpeed ZeRO-3 gang over gloo (torchrun), as on a node."""
    cfg = judge_cfg(collected, "judge-zero3", warmed, processes_per_node=2, zero_stage=3)
    proc, report = run_stage(cfg, tmp_path, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert "torch.distributed.run" in " ".join(stage_command(cfg, tmp_path / "x.json"))
    manifest = read_manifest(cfg.output)
    assert (manifest["distributed_type"], manifest["world_size"], manifest["zero_stage"]) == ("DEEPSPEED", 2, 3)
    assert manifest["metrics"]["steps"] == 2
    assert all(t.numel() > 0 for t in weights(cfg.output).values())  # gathered, not empty ZeRO-3 shards
    assert not unchanged(warmed, cfg.output)


def test_self_reflection_as_a_two_process_gang_splits_the_rationales_and_trains_on_them_all(collected, warmed,
                                                                                           tmp_path):
    """judge.method sr on a 2-process ZeRO-3 gang (gloo): each rank writes half the rationales, every
    rank trains on all of them, and rank 0 publishes one per pair."""
    cfg = judge_cfg(collected, "judge-sr", warmed, method="sr", processes_per_node=2, zero_stage=3)
    proc, report = run_stage(cfg, tmp_path, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    manifest = read_manifest(cfg.output)
    pairs = manifest["metrics"]["pairs"]  # those with both outcomes recorded
    assert pairs > 1 and pairs + manifest["metrics"]["pairs_without_outcomes"] == \
        collected["report"]["metrics"]["pairs_train"]
    assert manifest["world_size"] == 2 and manifest["metrics"]["examples"] == pairs
    shares = sorted(re.findall(r"this rank wrote rationales (\d+)-(\d+) of (\d+)", out))
    half = str(pairs // 2)
    assert shares == sorted([("0", half, str(pairs)), (half, str(pairs), str(pairs))]), out[-3000:]
    lines = store.read_bytes(f"{cfg.output}/rationales.jsonl").decode().splitlines()
    assert len(lines) == pairs and len({json.loads(x)["pair_id"] for x in lines}) == pairs
    assert not unchanged(warmed, cfg.output)


@pytest.mark.parametrize("method", ["il", "rl"])
def test_policy_trains_the_model_it_starts_from(collected, warmed, tmp_path, method):
    """IL from the base model; RL from the warmed-up pi0 (its actions are readable, so rewards differ)."""
    root, start = collected["root"], MODEL if method == "il" else warmed
    cfg = PolicyConfig(**common(root, f"policy-{method}", collected["tracking"], collected["parent"]),
                       method=method, model=start, expert=collected["cfg"].output,
                       group_size=4, max_completion_length=12, learning_rate=1e-4, max_steps=2, batch_size=4,
                       save_steps=2)
    proc, report = run_stage(cfg, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifest = read_manifest(cfg.output)
    metrics = manifest["metrics"]
    assert metrics["steps"] == 2 and metrics["examples"] > 0
    assert not unchanged(start, cfg.output)
    assert plot_names(collected["tracking"], report["mlflow_run_id"]) == ["plots/policy_curves.png"]
    assert_registered_model_loads(collected, cfg, report, manifest, method)


def plot_names(tracking_uri: str, run_id: str) -> list[str]:
    """The PNGs a stage's child run carries under plots/ (each checked to be one)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    names = sorted(a.path for a in client.list_artifacts(run_id, "plots"))
    for name in names:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name, tracking_uri=tracking_uri)
        assert Path(local).read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), name
    return names


def assert_registered_model_loads(collected, cfg, report, manifest, method: str) -> None:
    """The stage output is itself an MLflow model: registered as the executor registers a final
    model, it loads through models:/ from S3 (transformers flavour: model and tokenizer, which
    generate a token; pyfunc: predict) and its weights are stored once (the MLmodel adds no copy)."""
    import uuid

    import mlflow

    from act_operator import tracking
    from act_operator.api import API_VERSION, parse_actjob

    files = {f["path"]: f["size"] for f in manifest["files"]}
    assert {"MLmodel", "components/tokenizer/tokenizer.json"} <= files.keys()
    assert [p for p in files if p.endswith(".safetensors")] == ["model.safetensors"]  # one copy of the weights
    job = parse_actjob({"apiVersion": API_VERSION, "kind": "ACTJob",
                        "metadata": {"name": f"itest-{method}-{uuid.uuid4().hex[:6]}", "uid": "u1"},
                        "spec": {"model": {"uri": MODEL}, "environment": {"name": "scienceworld"},
                                 "storage": {"root": collected["root"]}}})
    st = job.status
    st.phase, st.model_uri = "Succeeded", cfg.output
    st.mlflow.run_id = collected["parent"]
    st.mlflow.experiment_id = mlflow.MlflowClient(collected["tracking"]).get_run(collected["parent"]).info.experiment_id
    st.stages["policy"].phase, st.stages["policy"].outputs.uri = "Succeeded", cfg.output
    st.stages["policy"].mlflow_run_id = report["mlflow_run_id"]
    registered = tracking.register_model(collected["tracking"], job)
    name, version = registered.split("/")
    mv = mlflow.MlflowClient(collected["tracking"]).get_model_version(name, version)
    assert mv.source == cfg.output and report["mlflow_run_id"] in mv.description and cfg.output in mv.description

    mlflow.set_tracking_uri(collected["tracking"])
    t0 = time.monotonic()
    loaded = mlflow.transformers.load_model(f"models:/{registered}", return_type="components")
    load_s = time.monotonic() - t0
    model, tokenizer = loaded["model"], loaded["tokenizer"]
    assert type(model).__name__ == "Qwen3ForCausalLM"
    ids = tokenizer("look around", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=1, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 1  # one new token
    predicted = mlflow.pyfunc.load_model(f"models:/{registered}").predict(["look around"],
                                                                          params={"max_new_tokens": 1})
    assert len(predicted) == 1 and predicted[0].startswith("look around")
    added = ("MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt")
    print(f"MLmodel adds {sum(v for k, v in files.items() if k in added or k.startswith('components/'))} "
          f"bytes beside {files['model.safetensors']} of weights; models:/ load {load_s:.1f}s")


def test_eval_reports_the_papers_measures(collected, tmp_path):
    root = collected["root"]
    cfg = EvalConfig(**common(root, "eval", collected["tracking"], collected["parent"]), model=MODEL, env=ENV,
                     splits=["dev"], episodes=1, action_states=4, judge_pairs=4, pairs=collected["cfg"].output,
                     max_new_tokens=8)
    proc, report = run_stage(cfg, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(store.read_bytes(f"{cfg.output}/results.json"))["rows"]
    metrics = {(r["split"], r["metric"]): r for r in rows}
    heldout = collected["report"]["metrics"]["pairs_heldout"]
    assert heldout > 0
    for key, n in [(("dev", "success_rate"), 1), (("dev", "next_action_accuracy"), 4),
                   (("heldout", "judge_accuracy"), min(4, heldout))]:
        value = metrics[key]["value"]
        # every configured item was scored, and a rate over n items is a multiple of 1/n
        assert metrics[key]["n"] == n and abs(value * n - round(value * n)) < 1e-9 and 0 <= value <= 1, (key, n)
    assert report["metrics"]["dev/success_rate"] == metrics[("dev", "success_rate")]["value"]
    # each rate's items, one record each, whose verdicts give the rate back (paired tests read them)
    for name, key in (("actions", ("dev", "next_action_accuracy")), ("judgements", ("heldout", "judge_accuracy"))):
        records = [json.loads(line) for line in store.read_bytes(f"{cfg.output}/{name}.jsonl").decode().splitlines()]
        verdict = "exact" if name == "actions" else "correct"
        assert len(records) == metrics[key]["n"] and all("output" in r for r in records), name
        assert abs(sum(r[verdict] for r in records) / len(records) - metrics[key]["value"]) < 1e-6, name
    assert len({r["pair_id"] for r in records}) == len(records)
    assert plot_names(collected["tracking"], report["mlflow_run_id"]) == ["plots/eval.png"]


def test_the_warmup_makes_pi0_answer_in_the_format_on_held_out_pairs(collected, warmed, tmp_path):
    """What the warm-up is for: the random base model never writes a readable judgement or action
    (malformed rate 1); pi0 does, on pairs and states of episodes the warm-up never saw (collect's
    held-out episodes and the dev split). Its labels were random: this is the format, not judgement."""
    trajs = data.load_trajectories(warmed, field="expert")
    collected_trajs = data.load_trajectories(collected["cfg"].output, field="expert")
    assert data.digest_trajectories(trajs) == data.digest_trajectories(collected_trajs)  # every episode, for collect
    held = data.split_episodes(trajs, collected["cfg"].heldout_fraction, collected["cfg"].seed)[1]
    examples = read_manifest(warmed)["metrics"]["examples"]
    assert held and examples == 2 * (sum(len(t.steps) for t in trajs) - sum(len(t.steps) for t in held))
    rates = {}
    for name, model in (("random", MODEL), ("pi0", warmed)):
        cfg = EvalConfig(**common(collected["root"], f"eval-{name}"), model=model, env=ENV, splits=["dev"],
                         episodes=0, action_states=8, judge_pairs=8, pairs=collected["cfg"].output, max_new_tokens=16)
        proc, report = run_stage(cfg, tmp_path)  # one after the other: the same file names are fine
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        rates[name] = {k: report["metrics"][k] for k in ("judge_malformed_rate", "dev/action_malformed_rate")}
    assert rates["random"] == {"judge_malformed_rate": 1.0, "dev/action_malformed_rate": 1.0}, rates
    assert rates["pi0"]["judge_malformed_rate"] <= 0.5 and rates["pi0"]["dev/action_malformed_rate"] <= 0.5, rates


def test_eval_unknown_split_is_named(collected, tmp_path):
    cfg = EvalConfig(**common(collected["root"], "eval-bad"), model=MODEL, env=ENV, splits=["validation"])
    proc, report = run_stage(cfg, tmp_path)
    assert proc.returncode == 2 and "validation" in report["error"] and "splits" in report["error"]
    assert report["permanent"] is True
