"""`actjob run` end to end: the quickstart ACTJob with its artifacts in a real S3
(SeaweedFS) and its lineage in a real MLflow server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from actjob_files import quickstart_file as quickstart
from secret_scan import files_under, found

from act_trainer import store
from act_trainer.manifest import MANIFEST

pytestmark = [pytest.mark.integration, pytest.mark.slow]



def actjob(*args, cwd: Path, timeout: int = 1200, env: dict | None = None):
    return subprocess.run([sys.executable, "-m", "act_operator.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_quickstart_on_s3_with_mlflow_lineage(s3, s3_root, mlflow_server, tmp_path, tmp_path_factory):
    from mlflow import MlflowClient

    job_file = quickstart(tmp_path, **{"storage.root": s3_root, "tracking.uri": mlflow_server,
                                       "tracking.experiment": "itest-actjob-run"})
    # credentials in the environment, as a pod gets them from its Secrets: the S3 keys (the s3 fixture's,
    # real: SeaweedFS checks them) and an MLflow token (this MLflow server ignores it; the client sends it)
    token = f"mlflow-token-{uuid.uuid4().hex}"
    env = {**os.environ, "MLFLOW_TRACKING_TOKEN": token}
    proc = actjob("run", str(job_file), "--workdir", str(tmp_path / "work"), cwd=tmp_path, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    for stage in ("warmup", "collect", "judge", "policy", "eval"):
        assert f"✓ {stage}" in out
    assert "Succeeded" in out and "registered model: act-quickstart/" in out

    state = json.loads((tmp_path / "work" / "runs" / "quickstart" / "state.json").read_text())
    status = state["status"]
    assert status["phase"] == "Succeeded"
    assert status["stages"]["preflight"]["phase"] == "Succeeded"  # a check: it writes no artifacts
    for name in ("warmup", "collect", "judge", "policy", "eval"):
        st = status["stages"][name]
        assert st["phase"] == "Succeeded", name
        assert st["outputs"]["uri"].startswith(s3_root) and store.exists(f"{st['outputs']['uri']}/{MANIFEST}")
    assert status["modelUri"] == status["stages"]["policy"]["outputs"]["uri"]
    # the quickstart's warm-up makes pi0 answer in the format: a random model's rates are exactly 1
    warmup, judge_m, eval_m = (status["stages"][s]["metrics"] for s in ("warmup", "judge", "eval"))
    assert warmup["loss_last"] < warmup["loss_first"] and judge_m["malformed_rate_first"] < 1
    assert eval_m["judge_malformed_rate"] < 1 and eval_m["dev/action_malformed_rate"] < 1, eval_m
    run_dir = tmp_path / "work" / "runs" / "quickstart"
    pi0 = status["stages"]["warmup"]["outputs"]["uri"]
    for stage in ("collect", "judge"):  # pi0 is what collect samples from and judge starts from
        assert json.loads((run_dir / f"quickstart-{stage}-1.json").read_text())["model"] == pi0

    client = MlflowClient(mlflow_server)
    parent = client.get_run(status["mlflow"]["runId"])
    assert parent.info.status == "FINISHED" and parent.data.tags["act.actjob.uid"] == state["uid"]
    assert parent.data.params["model.uri"] == "tiny://qwen3-tiny"
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.data.tags["act.stage"] for c in children) == ["collect", "eval", "judge", "policy", "warmup"]
    judge = next(c for c in children if c.data.tags["act.stage"] == "judge")
    assert [d.dataset.name for d in judge.inputs.dataset_inputs] == ["contrast_pairs"]
    assert "reward" in judge.data.metrics or "reward_last" in judge.data.metrics
    # live progress: a bar per stage while it ran (the stage's progress lines), full once it succeeded,
    # the same record in the child run's act.progress.* metrics; each stage's log attached to its run
    for stage, unit in (("collect", "states"), ("judge", "steps"), ("policy", "steps"), ("eval", "episodes")):
        p = status["stages"][stage]["progress"]
        assert p["unit"] == unit and p["percent"] == 100 and p["done"] == p["total"] > 0, (stage, p)
        assert f"  {stage} [" in out, stage
    assert judge.data.metrics["act.progress.done"] == judge.data.metrics["act.progress.total"]
    assert judge.data.tags["act.attempt"] == "1"
    assert [a.path for a in client.list_artifacts(judge.info.run_id, "logs")] == \
        [f"logs/{p.rsplit('/', 1)[1]}" for p in store.list_uris(
            f"{s3_root}/default/quickstart/{state['uid']}/logs/judge/attempt-1")]

    name, version = status["registeredModel"].split("/")
    mv = client.get_model_version(name, version)
    assert mv.source == status["modelUri"] and mv.run_id == parent.info.run_id
    tags = mv.tags
    assert tags["act.base_model"] == "tiny://qwen3-tiny" and tags["act.initial_policy"] == pi0
    assert tags["act.judge_checkpoint"] == status["stages"]["judge"]["outputs"]["uri"]
    assert tags["act.contrast_pairs_digest"] == status["stages"]["collect"]["outputs"]["digest"]
    assert tags["act.actjob"] == "quickstart" and tags["act.actjob.uid"] == state["uid"]
    # credentials are used, never recorded: in no byte the run left (its output and logs, the run directory
    # with its state and rendered stage configs, every object under its storage root, MLflow's store and
    # artifacts, the runs' params and tags)
    mlflow_stores = [d for d in tmp_path_factory.getbasetemp().glob("mlflow*") if (d / "mlflow.db").is_file()]
    assert mlflow_stores
    places = [("actjob run's output", out.encode()), *files_under(tmp_path / "work", *mlflow_stores),
              *((uri, store.read_bytes(uri)) for uri in store.list_uris(s3_root)),
              *((f"MLflow run {r.info.run_id} params and tags", json.dumps([r.data.params, r.data.tags]).encode())
                for r in (parent, *children))]
    secrets = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
               "MLFLOW_TRACKING_TOKEN": token}
    assert len(found(secrets, [("the run's environment", "\n".join(env.values()).encode())])) == 3  # it had them
    assert found(secrets, places) == []
    print(f"no credential in {len(places)} places ({sum(len(data) for _, data in places) / 1e6:.1f} MB)")
    assert {c.data.tags["act.namespace"] for c in (parent, *children)} == {"default"}  # whose runs, on a shared MLflow


def test_invalid_file_exits_before_doing_anything(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"apiVersion": "act-operator.io/v1alpha1", "kind": "ACTJob",
                                   "metadata": {"name": "bad"},
                                   "spec": {"model": {"uri": "hf://Qwen/Qwen3-8B"},
                                            "environment": {"name": "scienceworld"},
                                            "stages": {"collect": {"samples": 0}}}}))
    proc = actjob("run", str(bad), "--workdir", str(tmp_path / "work"), cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "spec.model.uri" in proc.stderr and "spec.stages.collect.samples" in proc.stderr
    assert not (tmp_path / "work").exists()


def test_permanent_stage_failure_is_tried_once(tmp_path):
    """The exit-code contract in `actjob run`: a stage exiting 2 (here collect: the environment's
    expert cannot finish an episode within expert.maxLength=1 step, which no input check knows
    before it plays, and no retry can fix) fails the ACTJob at its first attempt with the stage's
    message, whatever maxRetries says."""
    job_file = quickstart(tmp_path, **{"storage.root": f"file://{tmp_path}/storage",
                                       "environment.expert.maxLength": 1, "stages.collect.maxRetries": 3,
                                       "stages.warmup.enabled": False})
    proc = actjob("run", str(job_file), "--workdir", str(tmp_path / "work"), cwd=tmp_path, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-6000:]
    run_dir = tmp_path / "work" / "runs" / "quickstart"
    status = json.loads((run_dir / "state.json").read_text())["status"]
    collect = status["stages"]["collect"]
    assert status["stages"]["preflight"]["phase"] == "Succeeded"  # the inputs were fine
    assert status["phase"] == "Failed" and collect["phase"] == "Failed" and collect["attempts"] == 1
    assert "failed permanently (exit code 2" in status["message"]
    assert "no successful episode" in status["message"] and "max_length=1" in status["message"]
    assert not list(run_dir.glob("quickstart-collect-2*"))  # never retried
    result = json.loads((run_dir / "quickstart-collect-1.result").read_text())
    assert result["permanent"] is True and result["exit_code"] == 2
    # the failed attempt's log: `actjob logs` shows it, and the stage uploaded its own copy to storage
    shown = actjob("logs", "quickstart", "collect", "--workdir", str(tmp_path / "work"), cwd=tmp_path, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert f"==> collect attempt 1: {run_dir / 'quickstart-collect-1.log'} <==" in shown.stdout
    assert "no successful episode" in shown.stdout
    state = json.loads((run_dir / "state.json").read_text())
    (uploaded,) = (tmp_path / "storage" / "default" / "quickstart" / state["uid"] / "logs" / "collect" /
                   "attempt-1").glob("*-rank0.log")
    text = uploaded.read_text()
    assert "no successful episode" in text and "act-trainer collect: failed, permanent" in text
    none = actjob("logs", "quickstart", "judge", "--workdir", str(tmp_path / "work"), cwd=tmp_path, timeout=60)
    assert none.returncode == 1 and "judge has not run yet" in none.stderr

    # the same file again: the failed stage is tried once more (the cause may lie outside the spec);
    # the preflight that passed is kept, and so is the first attempt's log
    again = actjob("run", str(job_file), "--workdir", str(tmp_path / "work"), cwd=tmp_path, timeout=300)
    assert again.returncode == 1 and "run again: collect tried again (attempt 2)" in again.stdout + again.stderr
    status = json.loads((run_dir / "state.json").read_text())
    assert status["uid"] == state["uid"] and status["status"]["stages"]["collect"]["attempts"] == 2
    assert status["status"]["phase"] == "Failed" and "no successful episode" in status["status"]["message"]
    assert (run_dir / "quickstart-collect-1.log").exists() and (run_dir / "quickstart-collect-2.log").exists()
    assert not list(run_dir.glob("quickstart-preflight-2*"))


def collected_pairs(tmp_path: Path, shards: int, expert: Path) -> tuple[list[str], dict]:
    """Collect only (the quickstart's collect stage) from the trajectories in `expert`, in `shards`
    shards: every pair as a sorted row."""
    from act_trainer import data

    tmp_path.mkdir()
    job_file = quickstart(tmp_path, **{"storage.root": f"file://{tmp_path}/storage",
                                       "environment.expert.uri": f"file://{expert}",
                                       "stages.collect.shards": shards, "stages.collect.batchSize": 4,
                                       "stages.warmup.enabled": False,
                                       "stages.judge.enabled": False, "stages.policy.method": "none",
                                       "stages.eval.enabled": False})
    proc = actjob("run", str(job_file), "--workdir", str(tmp_path / "work"), cwd=tmp_path, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    collect = json.loads((tmp_path / "work" / "runs" / "quickstart" / "state.json").read_text())["status"][
        "stages"]["collect"]
    uri = collect["outputs"]["uri"]
    listed = store.list_uris(uri)
    assert len([u for u in listed if u.endswith("/" + MANIFEST)]) == shards  # every shard ran
    files = [u for u in listed if u.endswith(".parquet")]
    rows = sorted(json.dumps({**r, "split": u.rsplit("/", 1)[-1]}, sort_keys=True)
                  for u in files for r in data.read_parquet(store.read_bytes(u)))
    return rows, collect["metrics"]


def test_sharded_collect_gives_the_same_pairs_as_one_shard(tmp_path):
    """A local run of a sharded collect runs every shard and merges them as the operator does;
    sharding changes where a state is sampled, never what it yields."""
    # one expert file for both runs: ScienceWorld lists same-named objects in a different order on
    # each load, so shards that each played the expert would see other prompts (and samples)
    expert = tmp_path / "expert.jsonl"
    subprocess.run([sys.executable, "-m", "act_trainer.cli", "expert", "--env", "scienceworld", "--split", "train",
                    "--episodes", "4", "--max-length", "12", "--tasks", "find-living-thing,find-non-living-thing",
                    "--out", str(expert)], check=True, capture_output=True, timeout=600)
    one, m1 = collected_pairs(tmp_path / "one", 1, expert)
    three, m3 = collected_pairs(tmp_path / "three", 3, expert)
    assert one and three == one
    for key in ("episodes", "states", "sampled", "kept", "pairs_train", "pairs_heldout", "removed_duplicate"):
        assert m3[key] == m1[key], key
    assert m1["pairs_train"] > 0 and m1["pairs_heldout"] > 0
    assert len(one) == m1["pairs_train"] + m1["pairs_heldout"]
