"""The ACTJob's parent run is found again by its uid after an executor restart, never one of its
stages' child runs (which carry the uid too). Found by the e2e test that SIGKILLs the operator
right after it created collect's Job, before the parent's run id reached the status."""

from __future__ import annotations

import uuid

import mlflow
import pytest

from act_operator import api as A
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
