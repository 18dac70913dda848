"""End to end on the one-machine cluster: the operator, run as its own process (`kopf run`,
as the chart's Deployment runs it), reconciles a tiny ACTJob; its stage Jobs run as real
pods on the node agent, with S3 (SeaweedFS) and MLflow served on the node address."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap

import pytest
import services

from cluster.kubectl import kubectl, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@contextlib.contextmanager
def operator(kubeconfig: str, log_path, namespace: str, **settings):
    """`kopf run -m act_operator.handlers --namespace=NS --standalone` with ACT_* settings, as
    the chart runs it with `watchNamespaces: [NS]` (one namespace: the session's kubelite is
    shared with other tests)."""
    env = dict(os.environ, KUBECONFIG=kubeconfig, PYTHONUNBUFFERED="1", ACT_NAMESPACES=namespace,
               **{f"ACT_{k.upper()}": str(v) for k, v in settings.items()})
    log = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "kopf", "run", "-m", "act_operator.handlers",
                             f"--namespace={namespace}", "--standalone"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def actjob(name: str, s3_endpoint: str, bucket: str, mlflow: str, judge_nodes: int = 1, judge_steps: int = 2,
           judge_only: bool = False) -> str:
    later = ("policy: {method: none}\n    eval: {enabled: false}" if judge_only else
             "policy: {method: il, batchSize: 2, maxSteps: 2, saveSteps: 1, gradientCheckpointing: false}\n"
             "    eval: {splits: [dev], episodes: 1, actionStates: 4, judgePairs: 4, maxNewTokens: 8}")
    return textwrap.dedent(f"""\
        apiVersion: act-operator.io/v1alpha1
        kind: ACTJob
        metadata: {{name: {name}}}
        spec:
          model: {{uri: "tiny://qwen3-tiny"}}
          environment:
            name: scienceworld
            tasks: [find-living-thing]
            maxSteps: 6
            history: 2
            expert: {{split: train, episodes: 2, maxLength: 8}}
          storage:
            root: s3://{bucket}/e2e
            s3: {{endpoint: "{s3_endpoint}", credentialsSecret: act-s3}}
          tracking: {{uri: "{mlflow}", experiment: e2e}}
          stages:
            collect: {{samples: 2, maxAlternatives: 1, maxNewTokens: 8, heldoutFraction: 0.5, batchSize: 4}}
            judge: {{groupSize: 2, batchSize: 2, maxSteps: {judge_steps}, saveSteps: 1, maxCompletionLength: 8,
                     gradientCheckpointing: false, nodes: {judge_nodes}, processesPerNode: 1}}
        """) + "    " + later + "\n"


@pytest.mark.parametrize("judge_nodes", [1, 2], ids=["one-pod-judge", "two-node-judge"])
def test_operator_runs_an_actjob_on_pods(kube_api, node, ns, tmp_path, judge_nodes):
    with services.seaweedfs(workdir=tmp_path / "s3", host=node.host_address) as s3, \
            services.mlflow_server(workdir=tmp_path / "mlflow", host=node.host_address) as mlflow, \
            operator(kube_api, tmp_path / "operator.log", ns, stage_service_account="act-stage",
                     trainer_image="the-host"):
        kubectl("create", "serviceaccount", "act-stage", "-n", ns)
        kubectl("create", "secret", "generic", "act-s3", "-n", ns, f"--from-literal=AWS_ACCESS_KEY_ID={s3.access_key}",
                f"--from-literal=AWS_SECRET_ACCESS_KEY={s3.secret_key}")
        kubectl("apply", "-n", ns, "-f", "-", stdin=actjob("smoke", s3.endpoint, s3.bucket, mlflow, judge_nodes))

        def finished():
            st = json.loads(kubectl("get", "actjob", "smoke", "-n", ns, "-o", "json")).get("status") or {}
            return st if st.get("phase") in ("Succeeded", "Failed") else None

        try:
            status = wait_for(finished, timeout=900, interval=2)
        finally:
            print(kubectl("get", "jobs,pods", "-n", ns, "-o", "wide", check=False))
            print((tmp_path / "operator.log").read_text()[-5000:])
        stages = {k: (v["phase"], v.get("message")) for k, v in status["stages"].items()}
        assert status["phase"] == "Succeeded", (stages, status.get("message"))
        assert all(v[0] == "Succeeded" for v in stages.values()), stages
        pods = json.loads(kubectl("get", "pods", "-n", ns, "-o", "json"))["items"]
        assert sorted(p["metadata"]["labels"]["act-operator.io/stage"] for p in pods) == sorted(
            ["preflight", "collect", "policy", "eval"] + ["judge"] * judge_nodes)
        for p in pods:
            term = p["status"]["containerStatuses"][0]["state"]["terminated"]
            assert term["exitCode"] == 0, term
            if p["metadata"]["labels"]["act-operator.io/stage"] == "preflight":
                assert json.loads(term["message"])["preflight"]["checks"]  # every check passed
            elif p["metadata"]["annotations"].get("batch.kubernetes.io/job-completion-index", "0") == "0":
                assert json.loads(term["message"])["manifest"].startswith("s3://")  # rank 0 reports


def test_node_failure_in_a_gang_retries_the_stage_from_its_checkpoint(kube_api, node, ns, tmp_path):
    """SIGKILL of one judge pod once a checkpoint has synced: the Job fails per its
    podFailurePolicy, the operator starts attempt 2, which resumes from the checkpoint."""
    with services.seaweedfs(workdir=tmp_path / "s3", host=node.host_address) as s3, \
            services.mlflow_server(workdir=tmp_path / "mlflow", host=node.host_address) as mlflow, \
            operator(kube_api, tmp_path / "operator.log", ns, stage_service_account="act-stage",
                     trainer_image="the-host"):
        kubectl("create", "serviceaccount", "act-stage", "-n", ns)
        kubectl("create", "secret", "generic", "act-s3", "-n", ns, f"--from-literal=AWS_ACCESS_KEY_ID={s3.access_key}",
                f"--from-literal=AWS_SECRET_ACCESS_KEY={s3.secret_key}")
        kubectl("apply", "-n", ns, "-f", "-", stdin=actjob("gang", s3.endpoint, s3.bucket, mlflow, judge_nodes=2,
                                                            judge_steps=40, judge_only=True))

        def synced_pod():
            pods = json.loads(kubectl("get", "pods", "-n", ns, "-l", "batch.kubernetes.io/job-name=gang-judge-1",
                                      "-o", "json"))["items"]
            for p in pods:
                if p["spec"].get("hostname") == "gang-judge-1-0":
                    with contextlib.suppress(FileNotFoundError):
                        if "checkpoint checkpoint-" in node.log(ns, p["metadata"]["name"]):
                            return [q for q in pods if q["spec"].get("hostname") == "gang-judge-1-1"]
            return None

        (victim,) = wait_for(synced_pod, timeout=600, interval=0.5)
        os.kill(node.pid(ns, victim["metadata"]["name"]), 9)

        def finished():
            st = json.loads(kubectl("get", "actjob", "gang", "-n", ns, "-o", "json")).get("status") or {}
            return st if st.get("phase") in ("Succeeded", "Failed") else None

        try:
            status = wait_for(finished, timeout=900, interval=2)
        finally:
            print(kubectl("get", "jobs,pods", "-n", ns, check=False))
            print((tmp_path / "operator.log").read_text()[-3000:])
        judge = status["stages"]["judge"]
        assert status["phase"] == "Succeeded", (judge, status.get("message"))
        assert judge["attempts"] == 2 and judge["metrics"]["steps"] == 40, judge
        rank0 = json.loads(kubectl("get", "pods", "-n", ns, "-l", "batch.kubernetes.io/job-name=gang-judge-2,"
                                   "batch.kubernetes.io/job-completion-index=0", "-o", "json"))["items"][0]
        result = json.loads(rank0["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
        assert result["metrics"]["resumed"] is True  # (the ACTJob status keeps numeric metrics only)
        first = json.loads(kubectl("get", "job", "gang-judge-1", "-n", ns, "-o", "json"))
        failed = {c["type"]: c for c in first["status"]["conditions"]}["Failed"]
        assert failed["reason"] == "PodFailurePolicy", failed
        assert json.loads(kubectl("get", "job", "gang-judge-2", "-n", ns, "-o", "json"))["status"]["succeeded"] == 2
