"""Namespaces that share a storage bucket and an MLflow server stay apart: every path a stage writes
is under <root>/<namespace>/<name>/<uid> (but the shared GGUF conversion cache), every MLflow run
says its namespace, and the registered
model's name holds it. (The end-to-end credential checks are in test_actjob_run.py, a real run, and
test_operator.py, the operator's objects, events, log and MLflow run.)"""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest
from secret_scan import found
from test_experiment import TEMPLATE
from test_manifests import SETTINGS

from act_operator import manifests as M
from act_operator import stages
from act_operator import tracking as T
from act_operator.api import API_VERSION, parse_actjob
from act_trainer import tracking
from act_trainer.config import parse_stage_config

ROOT = "s3://bucket/act"
GGUF_CACHE = f"{ROOT}/models"  # PreflightConfig.models
EVERY_STAGE = {"warmup": {"enabled": True}, "collect": {"shards": 2}, "judge": {"nodes": 2, "batchSize": 4},
               "policy": {"method": "rl"}}


def configs(namespace: str) -> list:
    job = parse_actjob({"apiVersion": API_VERSION, "kind": "ACTJob",
                        "metadata": {"name": "same", "namespace": namespace, "uid": f"uid-{namespace}"},
                        "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                                 "storage": {"root": ROOT}, "stages": EVERY_STAGE}})
    return job, [parse_stage_config(json.loads(o["data"]["stage.json"]))
                 for o in M.all_stage_objects(job, SETTINGS) if o["kind"] == "ConfigMap"]


def uris(value) -> set[str]:
    """Every string under the storage root in a config (as JSON)."""
    if isinstance(value, dict):
        return set().union(*map(uris, value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*map(uris, value)) if value else set()
    return {value} if isinstance(value, str) and value.startswith(ROOT) else set()


def test_every_path_a_stage_uses_is_under_its_namespace():
    seen = {}
    for namespace in ("team-a", "team-b"):
        job, cfgs = configs(namespace)
        own = stages.job_root(job)
        assert own == f"{ROOT}/{namespace}/same/uid-{namespace}"
        paths = set().union(*(uris(c.model_dump(mode="json")) for c in cfgs))
        assert {c.stage for c in cfgs} >= {"preflight", "warmup", "collect", "judge", "policy", "eval"}
        # one exception, by design: the preflight's cache of GGUF conversions, content-addressed (the GGUF's
        # sha256) and shared by every ACTJob of the storage root (docs/security.md says so)
        assert {p for p in paths if not (p == own or p.startswith(own + "/"))} == {GGUF_CACHE}
        seen[namespace] = paths - {GGUF_CACHE}
    assert not seen["team-a"] & seen["team-b"]


def test_mlflow_runs_and_models_say_whose_they_are(monkeypatch):
    for var in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):  # fail_fast sets them
        monkeypatch.setenv(var, "1")
    job, cfgs = configs("team-a")
    assert T.lineage_tags(job)["act.namespace"] == "team-a"  # the parent run's and the model version's
    assert T.model_name(job) == "team-a.act-same"

    class Stop(Exception):
        pass

    cfg = next(c for c in cfgs if c.stage == "collect").model_copy(update={"tracking": cfgs[0].tracking.model_copy(
        update={"uri": "http://127.0.0.1:9"})})
    with pytest.raises(Stop), tracking.stage_run(cfg) as run:  # no parent run: MLflow is not called
        tags = dict(run.record["tags"])
        raise Stop
    assert tags["act.namespace"] == "team-a" and tags["act.actjob.uid"] == "uid-team-a"


class FakeMlflow:
    """The MlflowClient calls start_parent and start_experiment make, recording the runs' tags."""

    def __init__(self):
        self.tags: dict = {}

    def get_experiment_by_name(self, name):
        return SimpleNamespace(experiment_id="1")

    def search_runs(self, *args, **kwargs):
        return []

    def create_run(self, experiment_id, run_name, tags):
        self.tags[run_name] = tags
        return SimpleNamespace(info=SimpleNamespace(run_id=f"run-{run_name}"))

    def log_param(self, *args):
        pass


def test_the_parent_and_experiment_runs_say_their_namespace(monkeypatch):
    from act_operator import experiment as E

    fake = FakeMlflow()
    monkeypatch.setattr(T, "_client", lambda uri: fake)
    job, _ = configs("team-b")
    T.start_parent("http://mlflow", job)
    exp = E.ACTExperiment.model_validate({"metadata": {"name": "tab", "namespace": "team-b", "uid": "e1"},
                                          "spec": {"template": TEMPLATE}})
    T.start_experiment("http://mlflow", exp)
    assert fake.tags["same"]["act.namespace"] == fake.tags["tab"]["act.namespace"] == "team-b"


def test_the_secret_scan_finds_a_value_as_written_and_base64_encoded():
    secrets = {"KEY": "s3cr3t-value"}
    assert found(secrets, [("a", b"nothing here")]) == []
    assert found(secrets, [("a", b"x s3cr3t-value y"), ("b", base64.b64encode(b"s3cr3t-value"))]) == \
        ["KEY in a", "KEY in b"]
