"""The operator runs an ACTExperiment on a real API server (kubelite): it creates the child
ACTJobs wave by wave, wires the shared outputs, and keeps the table; the children's stage Jobs
are played as in test_operator.py (kubelite has no Job controller)."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from test_operator import PREFLIGHT_OK, Cluster, result, wait_for

from act_operator import api as A
from act_operator import experiment as E

pytestmark = pytest.mark.integration

TEMPLATE = {
    "model": {"uri": "s3://bucket/models/base"},
    "environment": {"name": "scienceworld", "tasks": ["find-living-thing"]},
    "storage": {"root": "s3://bucket/act"},
    "tracking": {"experiment": "itest-experiments"},
    "stages": {"eval": {"splits": ["dev"]}, "collect": {"maxRetries": 0}, "judge": {"maxRetries": 0}},
}


@pytest.fixture(scope="module")
def cluster(kube_api):
    import uuid

    ns = f"ex-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api().create_namespace({"metadata": {"name": ns}})
    return Cluster(ns)


def apply_experiment(c: Cluster, name: str, **spec) -> dict:
    body = {"apiVersion": A.API_VERSION, "kind": E.KIND, "metadata": {"name": name},
            "spec": {"template": TEMPLATE, **spec}}
    return c.custom.create_namespaced_custom_object(A.GROUP, A.VERSION, c.ns, E.PLURAL, body,
                                                    field_validation="Strict")


def experiment_status(c: Cluster, name: str) -> dict:
    return c.custom.get_namespaced_custom_object(A.GROUP, A.VERSION, c.ns, E.PLURAL, name).get("status") or {}


def play(c: Cluster, actjob: str, stages: list[str], success: float = 0.5, fail: str | None = None) -> None:
    """Play a child ACTJob's preflight and stage Jobs to their end (`fail`: that stage fails)."""
    c.job(f"{actjob}-preflight-1")
    c.finish(f"{actjob}-preflight-1", result=PREFLIGHT_OK)
    for stage in stages:
        c.job(f"{actjob}-{stage}-1")
        if stage == fail:
            c.finish(f"{actjob}-{stage}-1", error="boom", exit_code=2)
            return
        out = result({"collect": "pairs", "judge": "models/judge", "policy": "models/policy"}.get(stage, stage),
                     root=f"s3://bucket/act/{actjob}")
        out["metrics"] = {"dev/success_rate": success, "judge_accuracy": 0.5}
        c.finish(f"{actjob}-{stage}-1", result=out)


def test_the_operator_runs_the_arms_wave_by_wave_and_fills_the_table(cluster, operator, mlflow_server):
    c = cluster
    apply_experiment(c, "tab", arms=["il", "act+il", "base"], seeds=[0, 1])
    pairs = wait_for(lambda: c.actjob("tab-pairs"), "the shared collect")
    assert pairs["metadata"]["ownerReferences"][0]["kind"] == E.KIND
    assert pairs["spec"]["stages"]["judge"]["enabled"] is False
    run_id = pairs["metadata"]["annotations"]["act-operator.io/mlflow-parent-run"]
    time.sleep(1.0)
    assert [j for j in ("tab-il-s0", "tab-act-s0") if _exists(c, j)] == []  # nothing before the pairs exist
    play(c, "tab-pairs", ["collect", "eval"], success=0.1)

    # the second wave at once: a judge per seed and the IL arms, all reusing the one collect
    for name in ("tab-act-s0", "tab-act-s1", "tab-il-s0", "tab-il-s1"):
        child = wait_for(lambda n=name: c.actjob(n), name)
        assert child["spec"]["stages"]["collect"]["reuse"] == "s3://bucket/act/tab-pairs/pairs"
    assert not _exists(c, "tab-act-il-s0")
    st = wait_for(lambda: experiment_status(c, "tab").get("phase") == "Running" and experiment_status(c, "tab"),
                  "Running")
    assert st["children"]["act-s0"]["phase"] in ("Pending", "Running")

    for seed, (il, act_il) in enumerate([(0.2, 0.4), (0.3, 0.6)]):
        play(c, f"tab-act-s{seed}", ["judge"])  # "act" is not an arm here: the judge skips its eval
        play(c, f"tab-il-s{seed}", ["policy", "eval"], success=il)
        child = wait_for(lambda s=seed: c.actjob(f"tab-act-il-s{s}"), f"act-il-s{seed}")
        assert child["spec"]["stages"]["judge"]["reuse"] == f"s3://bucket/act/tab-act-s{seed}/models/judge"
        play(c, f"tab-act-il-s{seed}", ["policy", "eval"], success=act_il)

    st = wait_for(lambda: experiment_status(c, "tab").get("phase") == "Succeeded" and experiment_status(c, "tab"),
                  "Succeeded")
    rows = {r["arm"]: r for r in st["arms"]}
    assert rows["il"]["seeds"] == 2 and rows["il"]["mean"]["dev/success_rate"] == pytest.approx(0.25)
    assert rows["act+il"]["mean"]["dev/success_rate"] == pytest.approx(0.5)
    assert rows["base"]["seeds"] == 1 and st["bestArm"] == "IL w/ ACT"

    from mlflow import MlflowClient

    ml = MlflowClient(mlflow_server)
    assert st["mlflowRunId"] == run_id and ml.get_run(run_id).info.status == "FINISHED"
    assert ml.get_run(run_id).data.metrics["act_il.dev/success_rate"] == pytest.approx(0.5)
    nested = ml.search_runs([ml.get_run(run_id).info.experiment_id],
                            filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    assert len(nested) == 7  # pairs + 2 judges + 2 IL + 2 IL w/ ACT: one ACTJob run each


def test_a_failing_judge_blocks_its_arm_only_and_suspend_reaches_the_children(cluster, operator):
    c = cluster
    apply_experiment(c, "fl", arms=["il", "act+il"], seeds=[0])
    play(c, "fl-pairs", ["collect"])
    wait_for(lambda: c.actjob("fl-il-s0"), "il-s0")
    c.custom.patch_namespaced_custom_object(A.GROUP, A.VERSION, c.ns, E.PLURAL, "fl", {"spec": {"suspend": True}})
    wait_for(lambda: c.actjob("fl-il-s0")["spec"]["suspend"] is True, "the child suspended")
    wait_for(lambda: experiment_status(c, "fl").get("phase") == "Suspended", "Suspended")
    c.custom.patch_namespaced_custom_object(A.GROUP, A.VERSION, c.ns, E.PLURAL, "fl", {"spec": {"suspend": False}})
    wait_for(lambda: c.actjob("fl-il-s0")["spec"]["suspend"] is False, "the child resumed")

    play(c, "fl-act-s0", ["judge"], fail="judge")
    play(c, "fl-il-s0", ["policy", "eval"])
    st = wait_for(lambda: experiment_status(c, "fl").get("phase") == "Failed" and experiment_status(c, "fl"), "Failed")
    assert st["children"]["act-il-s0"]["phase"] == "Blocked" and not _exists(c, "fl-act-il-s0")
    assert st["children"]["il-s0"]["phase"] == "Succeeded" and "fl-act-s0" in st["message"]
    assert {r["arm"]: r["seeds"] for r in st["arms"]} == {"il": 1, "act+il": 0}


def _exists(c: Cluster, name: str) -> bool:
    from kubernetes.client.rest import ApiException

    try:
        c.actjob(name)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise
