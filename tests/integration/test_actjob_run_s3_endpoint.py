"""`actjob run` reads storage itself (each stage's `_TRACKING.json` after it completes, and again
when it replays them into MLflow) with the spec's storage.s3 endpoint, as the stages do: a real S3
(SeaweedFS) named only in storage.s3.endpoint, AWS_ENDPOINT_URL unset, and a real MLflow server
the offline record is replayed into. Before, the executor listed the stage's output on AWS S3 and
crashed after every stage."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from act_operator import pipeline
from act_operator.api import API_VERSION, parse_actjob
from act_operator.local import LocalExecutor
from act_trainer import store

pytestmark = pytest.mark.integration


def test_the_executor_reads_the_stages_outputs_at_the_spec_endpoint(s3, s3_root, mlflow_server, tmp_path,
                                                                    monkeypatch):
    from mlflow import MlflowClient

    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):  # the spec alone names the endpoint
        monkeypatch.delenv(var, raising=False)
    job = parse_actjob({"apiVersion": API_VERSION, "kind": "ACTJob", "metadata": {"name": "s3endpoint"},
                        "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                                 "storage": {"root": s3_root, "s3": {"endpoint": s3.endpoint, "region": s3.region}},
                                 "tracking": {"uri": mlflow_server, "experiment": "itest-s3-endpoint"},
                                 "stages": {"warmup": {"enabled": False}, "judge": {"enabled": False},
                                            "policy": {"method": "none"}, "eval": {"enabled": False}}}})
    out = io.StringIO()
    ex = LocalExecutor(job, tmp_path / "work", console=Console(file=out, width=300))
    sources = []

    def stage(name, attempt):
        """What a stage that found MLflow down leaves: its outputs, its tracking record, its manifest
        (written as the stage writes them, with the endpoint of its config)."""
        if name == pipeline.PREFLIGHT:
            return pipeline.Observed("succeeded", result={})
        uri = ex.job.status.stages[name].outputs.uri or f"{s3_root}/{name}"
        executors = dict(store.s3._settings)  # this process is the executor's too: its settings come back
        store.configure(endpoint=s3.endpoint, region=s3.region)
        try:
            record = store.join(uri, "_TRACKING.json")
            store.write_bytes(record, json.dumps({
                "offline": "MLflow did not answer (test)", "source": record, "stage": name, "run_id": None,
                "run_name": name, "tags": {"act.stage": name}, "params": {"samples": "4"},
                "metrics": [{"key": "kept", "value": 3.0, "timestamp": 0, "step": 0}]}).encode())
            store.write_bytes(store.join(uri, "_MANIFEST.json"), b"{}")
        finally:
            store.configure(**executors)
        sources.append(record)
        return pipeline.Observed("succeeded", result={"uri": uri, "manifest": store.join(uri, "_MANIFEST.json"),
                                                      "metrics": {"kept": 3}, "tracking_offline": "test"})

    monkeypatch.setattr(ex, "_run_stage", stage)
    done = ex.run()
    said = out.getvalue()
    assert done.status.phase == "Succeeded", said
    assert "did not answer collect (MLflow did not answer (test))" in " ".join(said.split())  # read the record
    (record,) = sources
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("itest-s3-endpoint")
    (replayed,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`act.replay_of` = '{record}'")
    assert replayed.data.tags["mlflow.parentRunId"] == done.status.mlflow.run_id
    assert replayed.data.metrics["kept"] == 3.0 and replayed.data.params["samples"] == "4"
    assert store.s3._settings == {"endpoint": None, "region": None}  # the spec's settings do not outlive the run
