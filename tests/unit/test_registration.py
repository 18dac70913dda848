"""Which final models an MLflow tracking store can register (tracking.unregistrable), and under which
name (tracking.model_name). Pure."""

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


def actjob(name: str, namespace: str | None, **tracking_spec):
    from act_operator.api import API_VERSION, parse_actjob

    meta = {"name": name} | ({"namespace": namespace} if namespace else {})
    return parse_actjob({"apiVersion": API_VERSION, "kind": "ACTJob", "metadata": meta,
                         "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                                  "storage": {"root": "file:///tmp/act"}, "tracking": tracking_spec}})


def test_registered_model_names_are_unique_per_namespace_and_readable():
    assert tracking.model_name(actjob("quickstart", None)) == "act-quickstart"  # `actjob run`: namespace default
    assert tracking.model_name(actjob("twin", "default")) == "act-twin"
    a, b = tracking.model_name(actjob("twin", "team-a")), tracking.model_name(actjob("twin", "team-b"))
    assert (a, b) == ("team-a.act-twin", "team-b.act-twin")
    # hyphens in both parts never make two ACTJobs share a name (a dot is in neither)
    assert tracking.model_name(actjob("b-c", "a")) != tracking.model_name(actjob("c", "a-b"))
    assert "/" not in a and ":" not in a  # what MLflow refuses in a model name
    assert tracking.model_name(actjob("twin", "team-a", registerModel="shared-agent")) == "shared-agent"


def test_the_lineage_tags_name_the_namespace():
    job = actjob("twin", "team-a")
    assert tracking.lineage_tags(job)["act.namespace"] == "team-a"
    assert tracking.lineage_tags(actjob("twin", None))["act.namespace"] == "default"
