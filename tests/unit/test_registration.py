"""Which final models an MLflow tracking store can register (tracking.unregistrable). Pure."""

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
