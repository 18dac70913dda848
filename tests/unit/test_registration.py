"""Which final models an MLflow tracking store can register (tracking.unregistrable, pure), and when a
local run writes its final phase: together with the registered model."""

import pytest

from act_operator import tracking


@pytest.mark.parametrize("tracking_uri, model_uri, refused", [
    ("http://mlflow:5000", "file:///data/act/models/policy", True),   # the server refuses local sources
    ("https://mlflow.example", "/data/act/models/policy", True),
    ("http://mlflow:5000", "s3://bucket/act/models/policy", False),
    ("sqlite:///.act/runs/x/mlflow.db", "file:///data/act/models/policy", False),  # a local store reads it
])
def test_a_local_model_is_not_registered_on_an_mlflow_server_and_the_reason_says_how(tracking_uri, model_uri,
                                                                                    refused):
    why = tracking.unregistrable(tracking_uri, model_uri)
    assert bool(why) is refused
    if refused:
        assert "storage.root" in why and "s3://" in why and model_uri in why


def test_a_local_run_writes_its_final_phase_together_with_the_registered_model(tmp_path, monkeypatch):
    """ACTClient's local backend reads state.json: a Succeeded there must already name the registered
    model (the operator writes both in one status patch), or a waiting caller sees no model."""
    import io
    import json

    from rich.console import Console

    from act_operator import pipeline
    from act_operator.api import API_VERSION, parse_actjob
    from act_operator.local import LocalExecutor

    job = parse_actjob({"apiVersion": API_VERSION, "kind": "ACTJob", "metadata": {"name": "demo"},
                        "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                                 "storage": {"root": (tmp_path / "store").as_uri()}}})
    ex = LocalExecutor(job, tmp_path / "work", console=Console(file=io.StringIO()))
    ran, seen_at_registration = [], []

    def stage_done(stage, attempt):
        ran.append(stage)
        out = (tmp_path / "store" / stage).as_uri()
        return pipeline.Observed("succeeded", result={"uri": out, "manifest": out + "/_MANIFEST.json", "metrics": {}})

    def register(uri, job):
        seen_at_registration.append(json.loads(ex.state_file.read_text())["status"]["phase"])
        return "act-demo/1"

    monkeypatch.setattr(ex, "_run_stage", stage_done)
    monkeypatch.setattr(tracking, "start_parent", lambda uri, job: type(job.status.mlflow)(run_id="r1"))
    monkeypatch.setattr(tracking, "register_model", register)
    monkeypatch.setattr(tracking, "finish_parent", lambda *a: None)
    assert ex.run().status.phase == "Succeeded" and ran[-1] == "eval"
    assert seen_at_registration == ["Running"]  # not yet Succeeded on disk while the model is registered
    saved = json.loads(ex.state_file.read_text())["status"]
    assert saved["phase"] == "Succeeded" and saved["registeredModel"] == "act-demo/1"
