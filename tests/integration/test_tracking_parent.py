"""The ACTJob's parent run is found again by its uid after an executor restart, never one of its
stages' child runs (which carry the uid too). Found by the e2e test that SIGKILLs the operator
right after it created collect's Job, before the parent's run id reached the status."""

from __future__ import annotations

import uuid

import mlflow
import pytest

from act_operator import api as A
from act_operator import lineage, pipeline
from act_operator.tracking import start_parent

pytestmark = pytest.mark.integration


def test_a_restarted_executor_finds_the_parent_not_a_newer_child(mlflow_server):
    uid = str(uuid.uuid4())
    job = A.parse_actjob({"apiVersion": A.API_VERSION, "kind": A.KIND,
                          "metadata": {"name": "restarted", "namespace": "ns", "uid": uid},
                          "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                                   "storage": {"root": "file:///tmp/act"}, "tracking": {"experiment": "itest-parent"}}})
    first = start_parent(mlflow_server, job)
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    # what a stage pod does (act_trainer.tracking.stage_run): a child run tagged with the same uid
    child = client.create_run(first.experiment_id, run_name="collect",
                              tags={"act.stage": "collect", "act.actjob.uid": uid,
                                    "mlflow.parentRunId": first.run_id})
    again = start_parent(mlflow_server, job)
    assert again.run_id == first.run_id != child.info.run_id


def succeeded(name: str, namespace: str, trained: tuple[str, ...]) -> A.ACTJob:
    """A finished ACTJob whose stages `trained` (besides the preflight and collect) succeeded."""
    job = A.parse_actjob({"apiVersion": A.API_VERSION, "kind": A.KIND,
                          "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
                          "spec": {"model": {"uri": "s3://bucket/models/base"}, "environment": {"name": "scienceworld"},
                                   "storage": {"root": "s3://bucket/act"}, "tracking": {"experiment": "itest-names"}}})
    job.status.stages["preflight"].phase = "Succeeded"  # outputs only where it converted a GGUF model.uri
    for stage in ("collect", *trained):
        st = job.status.stages[stage]
        st.phase, st.outputs.uri = "Succeeded", f"s3://bucket/{namespace}/{name}/{stage}"
    job.status.phase = "Succeeded"
    job.status.model_uri = pipeline.final_model_uri(job)
    return job


def test_actjobs_of_one_name_in_two_namespaces_register_two_models_and_a_collect_only_run_none(mlflow_server):
    """Two ACTJobs named `twin` in two namespaces (one MLflow): one model each, version 1 each, each
    version tagged with its namespace. An ACTExperiment's collect-only child trains nothing: its
    lineage completes (the parent run closed) with no model registered."""
    suffix = uuid.uuid4().hex[:6]
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    names = []
    for ns in (f"team-a-{suffix}", f"team-b-{suffix}"):
        job = succeeded("twin", ns, ("judge", "policy"))
        assert lineage.complete(job, mlflow_server) is None
        name, version = job.status.registered_model.split("/")
        assert (name, version) == (f"{ns}.act-twin", "1")
        tags = client.get_model_version(name, version).tags
        assert tags["act.namespace"] == ns and tags["act.actjob"] == "twin"
        assert client.get_model_version(name, version).source == f"s3://bucket/{ns}/twin/policy"
        names.append(name)
    assert len(set(names)) == 2

    pairs = succeeded(f"exp-{suffix}-pairs", f"team-a-{suffix}", ())
    assert pairs.status.model_uri == "s3://bucket/models/base"  # the "model" is the base model
    assert lineage.complete(pairs, mlflow_server) is None and pairs.status.registered_model is None
    assert client.search_registered_models(f"name LIKE '%exp-{suffix}%'") == []
    assert client.get_run(pairs.status.mlflow.run_id).info.status == "FINISHED"
