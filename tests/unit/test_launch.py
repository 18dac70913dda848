"""One launch description for both executors, and how shard results merge."""

import sys

import pytest

from act_operator import launch as L
from act_operator import manifests as M
from act_operator.api import API_VERSION, parse_actjob
from act_operator.settings import OperatorSettings


def make_job(**stages):
    job = parse_actjob({"apiVersion": API_VERSION, "kind": "ACTJob",
                        "metadata": {"name": "demo", "namespace": "team", "uid": "uid-1"},
                        "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                                 "storage": {"root": "s3://bucket/act"}, "stages": stages}})
    collect = job.status.stages["collect"]
    collect.phase, collect.outputs.uri = "Succeeded", "s3://bucket/pairs"
    return job


def test_one_config_per_shard():
    run = L.plan(make_job(collect={"shards": 3}), "collect", 2, tracking_uri="http://mlflow:5000")
    assert (run.name, run.nodes, run.processes_per_node, run.shards) == ("demo-collect-2", 1, 1, 3)
    assert run.indexed and run.completions == 3 and run.service is None
    assert [(c.shard.index, c.shard.count) for c in run.configs] == [(0, 3), (1, 3), (2, 3)]
    # the shards differ only in their index: a pod's CLI can take it from JOB_COMPLETION_INDEX
    dumps = {c.model_dump_json(exclude={"shard"}) for c in run.configs}
    assert len(dumps) == 1 and run.configs[0].tracking.uri == "http://mlflow:5000"


@pytest.mark.parametrize(("stages", "stage", "pod", "local"), [
    ({}, "collect", ["act-trainer", "collect", "--config", "C"], ["PY", "-m", "act_trainer.cli", "collect",
                                                                  "--config", "C"]),
    ({"policy": {"processesPerNode": 4}}, "policy",
     ["torchrun", "--standalone", "--nproc_per_node=4", "-m", "act_trainer.cli", "policy", "--config", "C"],
     ["PY", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "-m", "act_trainer.cli",
      "policy", "--config", "C"]),
    ({"judge": {"nodes": 2, "processesPerNode": 4, "batchSize": 2}}, "judge",
     ["torchrun", "--nnodes=2", "--nproc_per_node=4", "--node_rank=$(JOB_COMPLETION_INDEX)",
      "--master_addr=demo-judge-1-0.demo-judge-1", "--master_port=29500", "-m", "act_trainer.cli", "judge",
      "--config", "C"],
     # on one machine the two nodes' processes are one standalone gang
     ["PY", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=8", "-m", "act_trainer.cli",
      "judge", "--config", "C"]),
])
def test_commands_on_a_cluster_and_on_one_machine(stages, stage, pod, local):
    run = L.plan(make_job(**stages), stage, 1)
    assert run.command("C") == pod
    assert run.command("C", python="PY") == local


def test_manifests_run_the_launch():
    job = make_job(judge={"nodes": 2, "processesPerNode": 4, "batchSize": 2})
    run = L.plan(job, "judge", 1)
    objs = {o["kind"]: o for o in M.stage_objects(job, "judge", 1, OperatorSettings())}
    assert objs["Job"]["spec"]["template"]["spec"]["containers"][0]["command"] == run.command(M.CONFIG_PATH)
    assert objs["Service"]["metadata"]["name"] == run.service
    assert objs["Job"]["spec"]["completions"] == run.completions == 2


def test_local_stage_command_is_the_launch_command(tmp_path):
    from act_operator.local import stage_command

    run = L.plan(make_job(policy={"processesPerNode": 2}), "policy", 1)
    assert stage_command(run.configs[0], tmp_path / "c.json") == run.command(str(tmp_path / "c.json"),
                                                                             python=sys.executable)


def test_names_are_dns_labels():
    assert L.service_name("7b-judge-1") == "act-7b-judge-1"
    with pytest.raises(ValueError, match="DNS label"):
        L.checked("Bad_Name")
    with pytest.raises(ValueError, match="unknown stage"):
        L.plan(make_job(), "train", 1)


# --- merging shard results -------------------------------------------------------------------

def shard(i, digest, **metrics):
    return {"stage": "eval", "uri": f"s3://b/eval/shard-{i:05d}", "manifest": f"s3://b/eval/shard-{i:05d}/_MANIFEST.json",
            "digest": digest, "metrics": metrics, "_index": i}


def test_rates_are_weighted_by_the_counts_they_were_computed_over():
    a = shard(0, "sha256:a", **{"dev/success_rate": 1.0, "dev/episodes": 1, "dev/score": 10.0,
                                "dev/success_rate.boil": 1.0, "dev/episodes.boil": 1,
                                "dev/episode_malformed_rate": 0.5, "dev/turns": 2,
                                "dev/next_action_accuracy": 0.5, "dev/action_states": 2,
                                "judge_accuracy": 1.0, "judge_pairs": 1, "seconds": 10.0})
    b = shard(1, "sha256:b", **{"dev/success_rate": 0.0, "dev/episodes": 3, "dev/score": 2.0,
                                "dev/success_rate.boil": 0.5, "dev/episodes.boil": 2,
                                "dev/episode_malformed_rate": 0.0, "dev/turns": 8,
                                "dev/next_action_accuracy": 0.75, "dev/action_states": 6,
                                "judge_accuracy": 0.25, "judge_pairs": 3, "seconds": 20.0})
    m = L.merge_results([a, b])["metrics"]
    assert m["dev/success_rate"] == pytest.approx(0.25)  # 1 of 4 episodes, not (1 + 0) / 2
    assert m["dev/score"] == pytest.approx((10 + 3 * 2) / 4)
    assert m["dev/success_rate.boil"] == pytest.approx(2 / 3)
    assert L.merge_metrics([{"dev/episodes.rate-the-score": 2}, {"dev/episodes.rate-the-score": 1}]) == {
        "dev/episodes.rate-the-score": 3}  # a task type's name does not make its count a rate
    assert m["dev/episode_malformed_rate"] == pytest.approx(1 / 10)
    assert m["dev/next_action_accuracy"] == pytest.approx((1 + 4.5) / 8)
    assert m["judge_accuracy"] == pytest.approx(0.4375)
    assert m["seconds"] == pytest.approx(15.0)  # no count: the mean over shards
    # counts add up
    assert (m["dev/episodes"], m["dev/episodes.boil"], m["dev/turns"], m["dev/action_states"],
            m["judge_pairs"]) == (4, 3, 10, 8, 4)


def test_collect_counts_add_and_throughput_is_per_generate_second():
    a = shard(0, "sha256:a", sampled=40, kept=10, pairs_train=8, alternatives_per_s=4.0, generate_seconds=10.0)
    b = shard(1, "sha256:b", sampled=60, kept=20, pairs_train=15, alternatives_per_s=2.0, generate_seconds=30.0)
    m = L.merge_results([a, b])["metrics"]
    assert (m["sampled"], m["kept"], m["pairs_train"]) == (100, 30, 23)
    assert m["alternatives_per_s"] == pytest.approx(100 / 40)


def test_a_shard_without_the_count_or_the_rate():
    # a shard with no held-out states reports no accuracy; one with no episodes weighs nothing
    a = shard(0, "d0", **{"dev/next_action_accuracy": 0.5, "dev/action_states": 4, "dev/success_rate": 0.0,
                          "dev/episodes": 0})
    b = shard(1, "d1", **{"dev/action_states": 0, "dev/success_rate": 1.0, "dev/episodes": 2})
    m = L.merge_results([a, b])["metrics"]
    assert m["dev/next_action_accuracy"] == 0.5 and m["dev/success_rate"] == 1.0
    # a rate whose count some shard did not report: the plain mean
    m = L.merge_results([shard(0, "d0", judge_accuracy=1.0, judge_pairs=3), shard(1, "d1", judge_accuracy=0.0)])
    assert m["metrics"]["judge_accuracy"] == 0.5


def test_merge_is_order_independent():
    results = [shard(i, f"sha256:{i}", sampled=i + 1, alternatives_per_s=float(i), generate_seconds=1.0 + i)
               for i in range(3)]
    forward, backward = L.merge_results(results), L.merge_results(results[::-1])
    assert forward == backward
    assert forward["uri"] == "s3://b/eval" and forward["shards"] == 3
    assert forward["manifest"] == "s3://b/eval/shard-00000/_MANIFEST.json"
    assert forward["digest"].startswith("sha256:") and forward["digest"] != L.merge_results(results[:2])["digest"]


def test_one_shard_that_recorded_its_tracking_offline_marks_the_merged_result():
    results = [shard(i, f"sha256:{i}", sampled=1) for i in range(3)]
    assert "tracking_offline" not in L.merge_results(results)
    results[1]["tracking_offline"] = "log_metrics: ConnectionError"
    assert L.merge_results(results)["tracking_offline"] == "log_metrics: ConnectionError"
    assert L.merge_results(results[::-1])["tracking_offline"] == "log_metrics: ConnectionError"


def test_one_result_passes_through():
    r = shard(0, "sha256:a", dev_success_rate=0.5)
    assert L.merge_results([r]) == {k: v for k, v in r.items() if k != "_index"}
    assert L.merge_results([]) == {}


def test_local_executor_reads_every_shard_of_an_attempt(tmp_path):
    """A stopped `actjob run` finds an attempt's results again: all shards merged, or none."""
    import io
    import json

    from rich.console import Console

    from act_operator.local import LocalExecutor, shard_stem

    ex = LocalExecutor(make_job(collect={"shards": 3}), tmp_path, console=Console(file=io.StringIO()))
    results = [shard(i, f"sha256:{i}", sampled=10, kept=i) for i in range(3)]
    for i, r in enumerate(results[:2]):
        (ex.dir / f"{shard_stem('demo-collect-1', i, 3)}.result").write_text(json.dumps(r))
    assert ex._read_results("demo-collect-1", 3) is None  # shard 2 has not reported
    (ex.dir / "demo-collect-1.shard-00002.result").write_text(json.dumps(results[2]))
    observed = ex._read_results("demo-collect-1", 3)
    assert observed.state == "succeeded" and observed.result == L.merge_results(results)
    assert observed.result["metrics"]["kept"] == 3
    (ex.dir / "demo-collect-1.shard-00001.result").write_text(json.dumps({"error": "boom"}))
    assert ex._read_results("demo-collect-1", 3).reason == "boom"


def test_a_shard_that_exits_0_without_a_manifest_fails_the_attempt(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from act_operator import pipeline
    from act_operator.local import LocalExecutor

    ex = LocalExecutor(make_job(collect={"shards": 3}), tmp_path, console=Console(file=io.StringIO()))
    ran = []

    def fake(run, cfg, attempt):
        ran.append(cfg.shard.index)
        return pipeline.Observed("succeeded", result={} if cfg.shard.index == 1 else shard(cfg.shard.index, "d"))

    monkeypatch.setattr(ex, "_run_shard", fake)
    assert ex._run_stage("collect", 1) == pipeline.Observed("succeeded", result={})  # the planner fails it
    assert ran == [0, 1]
