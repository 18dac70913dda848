"""GRPO rollouts: the `rollout` settings of judge and policy (rl) reach TRL's GRPOConfig as its
vLLM settings; `auto` is vLLM on stages with GPUs; server mode renders a vLLM server Job and a
Service beside the training gang; a server without a GPU is rejected (pydantic and CEL)."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
from test_manifests import K8S, SETTINGS, by_kind, container, env_of, make_job

from act_operator import crd as CRD
from act_operator import manifests as M
from act_operator.api import SpecError
from act_trainer import engines
from act_trainer.config import parse_stage_config
from act_trainer.contract import RolloutSettings
from act_trainer.stages import training

GANG = {"nodes": 2, "processesPerNode": 8, "batchSize": 8, "resources": {"gpus": 8}}


def stage_config(objs):
    return parse_stage_config(json.loads(by_kind(objs)["ConfigMap"]["data"]["stage.json"]))


def test_auto_is_vllm_on_stages_with_gpus():
    job = make_job(stages={"judge": GANG, "policy": {"method": "rl", "resources": {"gpus": 8}}})
    for stage in ("judge", "policy"):
        objs = M.stage_objects(job, stage, 1, SETTINGS)
        rollout = stage_config(objs).rollout
        assert (rollout.engine, rollout.mode, rollout.sleep_mode) == ("vllm", "colocate", True)
        assert [o["kind"] for o in objs] in (["ConfigMap", "Service", "Job"], ["ConfigMap", "Job"])  # no server
    cpu = stage_config(M.stage_objects(make_job(), "judge", 1, SETTINGS)).rollout
    assert cpu.engine == "auto"  # no GPU asked for: the stage decides (transformers without a GPU)


def test_colocated_settings_reach_trl(monkeypatch):
    job = make_job(stages={"judge": {**GANG, "rollout": {"gpuMemoryUtilization": 0.4, "tensorParallelSize": 2}}})
    cfg = stage_config(M.stage_objects(job, "judge", 1, SETTINGS))
    monkeypatch.setattr(training, "gpu_available", lambda: True)
    monkeypatch.setattr(engines, "gpu_available", lambda: True)
    monkeypatch.setattr(engines, "vllm_problem", lambda: None)
    args = training.rollout_args(cfg)
    assert args == {"use_vllm": True, "vllm_mode": "colocate", "vllm_tensor_parallel_size": 2,
                    "vllm_gpu_memory_utilization": 0.4, "vllm_enable_sleep_mode": True}
    from trl import GRPOConfig  # every key is a GRPOConfig field of the TRL we run
    fields = set(GRPOConfig.__dataclass_fields__)
    assert set(args) <= fields
    server = cfg.model_copy(update={"rollout": RolloutSettings(engine="vllm", mode="server")})
    assert set(training.rollout_args(server)) <= fields


def test_transformers_rollouts_without_vllm(monkeypatch):
    monkeypatch.setattr(engines, "gpu_available", lambda: False)
    cfg = stage_config(M.stage_objects(make_job(), "judge", 1, SETTINGS))
    assert training.rollout_args(cfg) == {"use_vllm": False}
    monkeypatch.setattr(engines, "vllm_problem", lambda: "the vllm package is not installed")
    vllm = cfg.model_copy(update={"rollout": RolloutSettings(engine="vllm")})
    with pytest.raises(engines.EngineUnavailable, match=r"rollout.engine: 'vllm' cannot run here.*make vllm-env"):
        engines.check(vllm)


def test_server_mode_renders_a_vllm_server_and_service():
    job = make_job(stages={"judge": {**GANG, "rollout": {"engine": "vllm", "mode": "server", "serverGpus": 4,
                                                         "tensorParallelSize": 4}}})
    objs = M.stage_objects(job, "judge", 3, SETTINGS)
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ConfigMap", "demo-judge-3-config"), ("Service", "demo-judge-3"), ("Job", "demo-judge-3"),
        ("Service", "demo-judge-3-vllm"), ("Job", "demo-judge-3-vllm")]
    gang, service, server = objs[2], objs[3], objs[4]
    assert env_of(gang)["ACT_VLLM_SERVER_HOST"]["value"] == "demo-judge-3-vllm"
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": "demo-judge-3-vllm"}
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"http": 8000, "weights": 51216}
    c = container(server)
    assert c["command"] == ["act-trainer", "vllm-serve", "--config", "/etc/act/stage.json"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert container(gang)["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert server["metadata"]["labels"]["act-operator.io/role"] == "vllm-server"
    assert "completionMode" not in server["spec"] and "JOB_COMPLETION_INDEX" not in env_of(server)
    assert server["metadata"]["ownerReferences"] == gang["metadata"]["ownerReferences"]
    for o in objs:
        kubernetes_validate.validate(o, K8S, strict=True)


def test_server_mode_reaches_trl(monkeypatch):
    job = make_job(stages={"judge": {**GANG, "rollout": {"mode": "server", "serverPort": 8001}}})
    cfg = stage_config(M.stage_objects(job, "judge", 1, SETTINGS))
    monkeypatch.setattr(engines, "vllm_problem", lambda: None)
    monkeypatch.setenv(training.VLLM_SERVER_HOST, "demo-judge-1-vllm")
    args = training.rollout_args(cfg)
    assert args == {"use_vllm": True, "vllm_mode": "server", "vllm_tensor_parallel_size": 1,
                    "vllm_server_host": "demo-judge-1-vllm", "vllm_server_port": 8001, "vllm_group_port": 51216,
                    "vllm_server_timeout": 1800.0}


def test_server_without_gpu_is_rejected():
    with pytest.raises(SpecError, match="serverGpus"):
        make_job(stages={"judge": {"rollout": {"engine": "vllm", "mode": "server", "serverGpus": 0}}})
    crd = CRD.crd()
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rollout = schema["properties"]["spec"]["properties"]["stages"]["properties"]["judge"]["properties"]["rollout"]
    assert any("self.serverGpus >= 1" in r["rule"] for r in rollout["x-kubernetes-validations"])


def test_8b_examples_use_vllm_rollouts():
    import yaml

    from act_operator.api import parse_actjob

    examples = sorted(Path(__file__).resolve().parents[2].glob("examples/*qwen3-8b*.yaml"))
    assert examples
    for path in examples:
        job = parse_actjob(next(d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "ACTJob"))
        for stage in ("judge", "policy"):
            section = getattr(job.spec.stages, stage)
            if stage == "policy" and section.method != "rl":
                continue
            if stage == "judge" and not section.enabled:
                continue
            cfg = stage_config(M.stage_objects(job_with_pairs(job), stage, 1, SETTINGS))
            assert cfg.rollout.engine == "vllm", (path.name, stage)


def job_with_pairs(job):
    job = job.model_copy(deep=True)
    job.metadata.uid = job.metadata.uid or "uid"
    collect = job.status.stages["collect"]
    collect.phase, collect.outputs.uri = "Succeeded", "s3://bucket/pairs"
    return job


@pytest.mark.skipif(engines.vllm_problem() is None, reason="vLLM can run here")
@pytest.mark.parametrize("stage", ["collect", "judge"])
def test_vllm_where_it_cannot_run_is_bad_input(stage, tmp_path):
    """Exit 2 (permanent) naming the field and the fix, before any data is read: the expert file
    and the pairs do not exist, and the error is not about them."""
    import os
    import subprocess
    import sys

    from act_trainer.config import CollectConfig, EnvironmentConfig, ExpertSource, JobRef, JudgeConfig

    common = dict(job=JobRef(name="t", uid="u"), output=f"file://{tmp_path}/out", model="tiny://qwen3-tiny")
    if stage == "collect":
        cfg, field = CollectConfig(**common, env=EnvironmentConfig(name="scienceworld"), engine="vllm",
                                   expert=ExpertSource(uri=str(tmp_path / "missing.jsonl"))), "engine"
    else:
        cfg, field = JudgeConfig(**common, pairs=f"file://{tmp_path}/missing",
                                 rollout=RolloutSettings(engine="vllm")), "rollout.engine"
    path = tmp_path / "stage.json"
    path.write_text(cfg.model_dump_json())
    proc = subprocess.run([sys.executable, "-m", "act_trainer.cli", stage, "--config", str(path)], text=True,
                          capture_output=True, env={**os.environ, "ACT_TERMINATION_LOG": str(tmp_path / "t")},
                          timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"{field}: 'vllm' cannot run here" in proc.stderr and "make vllm-env" in proc.stderr
    assert "missing" not in proc.stderr


def test_an_ended_attempt_stops_its_vllm_server(monkeypatch):
    """Completed, failed or retried: the server Jobs of the stage's attempts are suspended (their
    pods end); a colocated stage has none to stop."""
    from act_operator import handlers, kube

    calls = []
    monkeypatch.setattr(kube, "set_suspended", lambda ns, names, suspend: calls.append((ns, names, suspend)))
    job = make_job(stages={"judge": {**GANG, "rollout": {"mode": "server"}}})
    job.status.stages["judge"].attempts = 2
    handlers._stop_vllm_server(job, "judge")
    assert calls == [("team", ["demo-judge-1-vllm", "demo-judge-2-vllm"], True)]
    calls.clear()
    handlers._stop_vllm_server(make_job(stages={"judge": GANG}), "judge")
    assert calls == []


@pytest.mark.parametrize("gpu,problem,sampler,rollouts", [
    (True, None, "vllm", "vllm"),                        # a GPU with vLLM: both
    (False, None, "vllm", "hf"),                         # vLLM's CPU build: sampling only (its 4.5x), not GRPO
    (False, "the vllm package is not installed", "hf", "hf"),
    (True, "the vllm package is not installed", "hf", "hf")])
def test_auto_takes_vllm_wherever_it_runs_but_cpu_grpo_rollouts(monkeypatch, gpu, problem, sampler, rollouts):
    monkeypatch.setattr(engines, "gpu_available", lambda: gpu)
    monkeypatch.setattr(engines, "vllm_problem", lambda: problem)
    assert engines.resolve("auto", "stages.collect.engine") == sampler
    assert engines.resolve("auto", "rollout.engine") == rollouts
    assert engines.resolve("hf", "stages.eval.engine") == "hf"
