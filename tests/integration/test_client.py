"""The Python API (act_operator.ACTClient): on a real API server (kubelite with the ACTJob CRD;
no operator runs, so the test drives the status as the operator would write it), and on this
machine (`actjob run` in the background) with a tiny ACTJob whose registered model MLflow loads
from file storage, whose stage runs carry their plots, and which `actjob compare --plot` draws."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import pytest
from actjob_files import quickstart_file

from act_operator import ACTClient, ACTJob, KubernetesBackendConfig, LocalBackendConfig, SpecError
from act_operator.client import ACTJobNotFound

pytestmark = pytest.mark.integration


def demo_job(name: str) -> ACTJob:
    """An ACTJob built from the pydantic models, snake_case as in Python."""
    return ACTJob(metadata={"name": name},
                  spec={"model": {"uri": "tiny://qwen3-tiny"},
                        "environment": {"name": "scienceworld", "tasks": ["boil"]},
                        "storage": {"root": "s3://bucket/act"},
                        "stages": {"judge": {"group_size": 4, "batch_size": 4}}})


def drive(name: str, **status) -> None:
    """Write the ACTJob's status as the operator does (kube.patch_status with the resourceVersion)."""
    from act_operator import kube

    body = kube.read_actjob("default", name)
    kube.patch_status("default", name, {**body.get("status", {}), **status}, body["metadata"]["resourceVersion"])


def test_cluster_create_get_list_wait_delete(kube_api):
    client = ACTClient(KubernetesBackendConfig(namespace="default", config_file=kube_api))
    name = f"api-{uuid.uuid4().hex[:6]}"
    assert client.train(demo_job(name)) == name
    job = client.get_job(name)
    assert job.metadata.uid and job.spec.stages.judge.group_size == 4  # what the server stored
    assert job.status.phase == "Pending" and job.spec.storage.root == "s3://bucket/act"
    assert name in [j.metadata.name for j in client.list_jobs()]
    with pytest.raises(TimeoutError, match="still Pending"):
        client.wait_for_job_status(name, {"Running"}, timeout=1, polling_interval=0.2)

    drive(name, phase="Running", currentStage="collect")
    seen = []
    assert client.wait_for_job_status(name, {"Running"}, timeout=10, callbacks=[seen.append]).status.phase \
        == "Running"
    assert seen and seen[-1].status.current_stage == "collect"

    def succeed():
        time.sleep(1.0)
        drive(name, phase="Succeeded", modelUri="s3://bucket/act/default/x/models/policy",
              registeredModel=f"act-{name}/1",
              stages={"eval": {"phase": "Succeeded", "metrics": {"dev/success_rate": 0.5}}})

    threading.Thread(target=succeed).start()
    done = client.wait_for_job_status(name, timeout=30, polling_interval=0.2)
    assert done.status.phase == "Succeeded"
    assert client.get_job_metrics(name)["eval"] == {"dev/success_rate": 0.5}
    assert client.get_model_uri(name) == f"models:/act-{name}/1"

    client.delete_job(name)
    deadline = time.monotonic() + 30  # deletion is asynchronous (no finalizer here: quickly)
    while name in [j.metadata.name for j in client.list_jobs()]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    with pytest.raises(ACTJobNotFound):
        client.get_job(name)
    with pytest.raises(ACTJobNotFound):
        client.delete_job(name)


def test_cluster_failed_job_and_bad_input_are_errors(kube_api):
    client = ACTClient(KubernetesBackendConfig(config_file=kube_api))
    name = f"api-{uuid.uuid4().hex[:6]}"
    client.train(demo_job(name).model_dump(by_alias=True))  # a dict works as well as the model
    drive(name, phase="Failed", message="collect failed permanently (exit code 2: ...)")
    with pytest.raises(RuntimeError, match="is Failed: collect failed permanently"):
        client.wait_for_job_status(name)
    with pytest.raises(ValueError, match="not ACTJob phases"):
        client.wait_for_job_status(name, {"Complete"})
    with pytest.raises(SpecError, match="spec.stages.collect.samples"):
        client.train({"apiVersion": "act-operator.io/v1alpha1", "kind": "ACTJob", "metadata": {"name": "bad"},
                      "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                               "stages": {"collect": {"samples": 0}}}})
    client.delete_job(name)


def test_the_cluster_side_needs_no_torch():
    code = ("import sys; from act_operator import ACTClient, ACTJob, KubernetesBackendConfig; "
            "import act_operator.client, act_operator.kube; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.slow
def test_local_run_of_a_tiny_job_registers_a_model_mlflow_loads(tmp_path, monkeypatch):
    """`actjob run` through the API: file storage, the local MLflow store (sqlite)."""
    import mlflow
    from mlflow import MlflowClient

    from act_operator.api import load_actjob
    from act_operator.cli import main

    monkeypatch.chdir(tmp_path)  # the quickstart's file:// root is relative to the working directory
    job = load_actjob(quickstart_file(tmp_path, **{"stages.eval.episodes": 1}))
    client = ACTClient(LocalBackendConfig(workdir=str(tmp_path / "work")))
    name = client.train(job)
    phases = []
    done = client.wait_for_job_status(name, timeout=1500, polling_interval=1.0,
                                      callbacks=[lambda j: phases.append(j.status.phase)])
    assert done.status.phase == "Succeeded" and "Running" in phases
    assert [j.metadata.name for j in client.list_jobs()] == [name]
    metrics = client.get_job_metrics(name)
    assert {"collect", "judge", "policy", "eval"} <= metrics.keys() and "dev/success_rate" in metrics["eval"]
    model_uri, tracking_uri = client.get_model_uri(name), client.get_tracking_uri(name)
    assert model_uri == "models:/act-quickstart/1" and tracking_uri.startswith("sqlite:///")
    assert done.status.model_uri.startswith("file://")

    # the registered model loads from file storage through the registry, and generates
    mlflow.set_tracking_uri(tracking_uri)
    loaded = mlflow.transformers.load_model(model_uri, return_type="components")
    ids = loaded["tokenizer"]("look around", return_tensors="pt").input_ids
    assert loaded["model"].generate(ids, max_new_tokens=1, do_sample=False).shape[1] == ids.shape[1] + 1
    mv = MlflowClient(tracking_uri).get_model_version("act-quickstart", "1")
    assert "quickstart" in mv.description and done.status.stages["policy"].mlflow_run_id in mv.description

    # every stage's child run carries its pictures
    ml = MlflowClient(tracking_uri)
    want = {"collect": ["plots/filter_report.png"], "judge": ["plots/judge_curves.png"],
            "policy": ["plots/policy_curves.png"], "eval": ["plots/eval.png"]}
    for stage, names in want.items():
        run_id = done.status.stages[stage].mlflow_run_id
        assert sorted(a.path for a in ml.list_artifacts(run_id, "plots")) == names, stage

    out = tmp_path / "compare.png"
    assert main(["compare", str(tmp_path / "work" / "runs" / name), "--plot", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    client.delete_job(name)
    with pytest.raises(ACTJobNotFound):
        client.get_job(name)
    assert (tmp_path / "work" / "runs" / name / "mlflow.db").exists()  # the lineage stays
