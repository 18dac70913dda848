"""Fixtures of the one-machine cluster: kubelite (tests/conftest.py `kube_api`) plus the
node agent (client.py) as its own process."""

from __future__ import annotations

import os
import uuid

import pytest

from cluster.client import image, node_agent, unavailable
from cluster.kubectl import kubectl

LABEL = "node-agent.test/enabled"


@pytest.fixture(scope="module")
def node(kube_api, tmp_path_factory, request):
    """The node agent on kubelite: a Node with 1 nvidia.com/gpu; pods run in their images.
    It acts only in namespaces labelled by `ns` (the session's kubelite is shared with tests
    that play the Job controller themselves), and only while this module's tests run.
    A module whose pods need more images than the operator's lists them in `NODE_IMAGES`."""
    why = unavailable(image("operator"), *getattr(request.module, "NODE_IMAGES", ()))
    if why:
        if os.environ.get("CI"):  # CI builds the images and runs as root: never skip there
            pytest.fail(why)
        pytest.skip(why)
    with node_agent(kube_api, tmp_path_factory.mktemp("node"), gpus=1, namespace_selector=f"{LABEL}=true") as n:
        yield n


@pytest.fixture
def ns(kube_api, node):
    """A fresh namespace for one test, where the node agent acts."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, f"{LABEL}=true")
    return name
