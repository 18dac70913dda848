"""Fixtures of the one-machine cluster: kubelite (tests/conftest.py `kube_api`) plus the
node agent (client.py) as its own process."""

from __future__ import annotations

import uuid

import pytest

from cluster.client import node_agent, unavailable
from cluster.kubectl import kubectl


@pytest.fixture(scope="session")
def node(kube_api, tmp_path_factory):
    """The node agent on kubelite: a Node with 1 nvidia.com/gpu; pods run as local processes."""
    why = unavailable()
    if why:
        pytest.skip(why)
    with node_agent(kube_api, tmp_path_factory.mktemp("node"), gpus=1) as n:
        yield n


@pytest.fixture
def ns(kube_api, node):
    """A fresh namespace for one test."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    return name
