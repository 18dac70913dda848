"""Fixtures shared by the operator tests against kubelite (each module brings its own `cluster`)."""

from __future__ import annotations

import pytest
from kube import run_operator


@pytest.fixture
def operator(cluster, mlflow_server, monkeypatch):
    """The operator (kopf, in this process) on the module's namespace, with MLflow."""
    monkeypatch.setenv("ACT_PORT", "0")
    monkeypatch.setenv("ACT_MLFLOW_TRACKING_URI", mlflow_server)
    with run_operator(cluster.ns) as runner:
        yield runner
    assert runner.exception is None, runner.exception
