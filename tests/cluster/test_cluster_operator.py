"""End to end on the one-machine cluster: the operator, installed from the Helm chart (its
Deployment's pod in the operator image), reconciles a tiny ACTJob; its stage Jobs run as pods
in the trainer-cpu image on the node agent, with S3 (SeaweedFS) and MLflow served on the node
address."""

from __future__ import annotations

import contextlib
import json
import os
import textwrap
import time
from datetime import datetime

import pytest
import services
import yaml
from kubernetes.client import BatchV1Api

from act_operator.manifests import ACTJOB_LABEL, ATTEMPT_LABEL, STAGE_LABEL
from cluster.chart import TRAINER, ChartOperator
from cluster.kubectl import kubectl, pods_of, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NODE_IMAGES = (TRAINER,)  # stage pods run the trainer-cpu image (the operator pod its own)
STAGES = ("collect", "judge", "policy", "eval")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# agent RL as a gang: two pods play their halves of each group of ScienceWorld episodes in lockstep
ONLINE_RL_GANG = ("{method: online-rl, groupSize: 2, batchSize: 2, maxSteps: 1, saveSteps: 1, maxCompletionLength: 8, "
                  "gradientCheckpointing: false, nodes: 2, processesPerNode: 1, "
                  "online: {split: train, tasks: 2, maxTurns: 2, envsPerProcess: 1}}")


def actjob(name: str, s3_endpoint: str, bucket: str, mlflow: str | None, judge_nodes: int = 1, judge_steps: int = 2,
           judge_only: bool = False, expert_max_length: int = 8, collect_retries: int = 2,
           policy: str = "{method: il, batchSize: 2, maxSteps: 2, saveSteps: 1, gradientCheckpointing: false}") -> str:
    later = ("policy: {method: none}\n    eval: {enabled: false}" if judge_only else
             f"policy: {policy}\n"
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
            expert: {{split: train, episodes: 2, maxLength: {expert_max_length}}}
          storage:
            root: s3://{bucket}/e2e
            s3: {{endpoint: "{s3_endpoint}", credentialsSecret: act-s3}}
          {f'tracking: {{uri: "{mlflow}", experiment: e2e}}' if mlflow else "tracking: {experiment: e2e}"}
          stages:
            collect: {{samples: 2, maxAlternatives: 1, maxNewTokens: 8, heldoutFraction: 0.5, batchSize: 4,
                       maxRetries: {collect_retries}, filterInadmissible: false}}
            judge: {{groupSize: 2, batchSize: 2, maxSteps: {judge_steps}, saveSteps: 1, maxCompletionLength: 8,
                     gradientCheckpointing: false, nodes: {judge_nodes}, processesPerNode: 1}}
        """) + "    " + later + "\n"


def s3_secret(ns: str, s3) -> None:
    kubectl("create", "secret", "generic", "act-s3", "-n", ns, f"--from-literal=AWS_ACCESS_KEY_ID={s3.access_key}",
            f"--from-literal=AWS_SECRET_ACCESS_KEY={s3.secret_key}")


def status_of(ns: str, name: str) -> dict:
    return json.loads(kubectl("get", "actjob", name, "-n", ns, "-o", "json")).get("status") or {}


def jobs_of(ns: str, name: str) -> list[dict]:
    """The ACTJob's Jobs, listed by the label the operator puts on them."""
    return BatchV1Api().list_namespaced_job(ns, label_selector=f"{ACTJOB_LABEL}={name}").items


def events_of(ns: str, name: str) -> list[dict]:
    """The ACTJob's events (kubelite knows no field selector on events)."""
    events = json.loads(kubectl("get", "events", "-n", ns, "-o", "json"))["items"]
    return [e for e in events if e["involvedObject"].get("kind") == "ACTJob" and e["involvedObject"]["name"] == name]


def assert_one_job_per_attempt(ns: str, name: str, status: dict) -> None:
    """Exactly one Job per attempt of every stage: <name>-<stage>-<n> for n = 1..attempts."""
    jobs = sorted((j.metadata.labels[STAGE_LABEL], int(j.metadata.labels[ATTEMPT_LABEL]), j.metadata.name)
                  for j in jobs_of(ns, name))
    want = sorted((stage, n, f"{name}-{stage}-{n}") for stage, st in status["stages"].items()
                  for n in range(1, st.get("attempts", 0) + 1))
    assert [j for j in jobs if j[0] in status["stages"]] == want, jobs


def assert_lineage(mlflow: str, status: dict, name: str, uid: str, ns: str) -> None:
    """Parent run FINISHED with four FINISHED child runs (one per stage), the final model
    registered with the tags that trace it back to its inputs."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow)
    parent = client.get_run(status["mlflow"]["runId"])
    assert parent.info.status == "FINISHED" and parent.data.tags["act.actjob.uid"] == uid, parent.info
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(r.info.run_id for r in children) == sorted(status["stages"][s]["mlflowRunId"] for s in STAGES)
    assert len(children) == 4 and all(r.info.status == "FINISHED" for r in children), \
        [(r.info.run_name, r.info.status) for r in children]
    model, version = status["registeredModel"].split("/")
    assert model == f"{ns}.act-{name}"  # outside the default namespace, the namespace comes first
    tags = client.get_model_version(model, version).tags
    assert tags["act.namespace"] == ns
    stages = status["stages"]
    assert tags["act.base_model"] == "tiny://qwen3-tiny" and tags["act.actjob"] == name
    assert tags["act.actjob.uid"] == uid
    assert tags["act.judge_checkpoint"] == stages["judge"]["outputs"]["uri"]
    assert tags["act.contrast_pairs"] == stages["collect"]["outputs"]["uri"]
    assert tags["act.contrast_pairs_digest"] == stages["collect"]["outputs"]["digest"]


def assert_artifacts(s3, status: dict) -> None:
    """Every stage's outputs and its _MANIFEST.json (written last, listing every file) in SeaweedFS."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3.endpoint, aws_access_key_id=s3.access_key,
                          aws_secret_access_key=s3.secret_key, region_name=s3.region)
    for stage in STAGES:
        st = status["stages"][stage]
        bucket, _, key = st["outputs"]["manifest"].removeprefix("s3://").partition("/")
        manifest = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        prefix = key.rsplit("/", 1)[0] + "/"
        sizes = {o["Key"][len(prefix):]: o["Size"]
                 for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                 for o in page.get("Contents", [])}
        files = manifest["files"]
        listed = {f["path"]: f["size"] for f in files} if isinstance(files, list) else \
            {k: v["size"] for k, v in files.items()}
        assert listed and all(sizes.get(k) == v for k, v in listed.items()), (stage, listed, sizes)


def wait_stage_job(ns: str, name: str, stage: str, done: bool = False, timeout: float = 600) -> None:
    """Until the stage's first Job exists (polled every 50 ms: kill right after the operator
    created it, likely before it wrote the status that says so), or has finished."""
    def seen():
        for j in jobs_of(ns, name):
            if j.metadata.labels[STAGE_LABEL] == stage:
                conds = {c.type for c in (j.status.conditions or []) if c.status == "True"}
                return not done or bool(conds & {"Complete", "Failed"})
        return False
    wait_for(seen, timeout=timeout, interval=0.05)


@pytest.mark.parametrize("judge_nodes", [1, 2], ids=["one-pod-judge", "operator-killed-two-node-judge"])
def test_operator_runs_an_actjob_on_pods(kube_api, node, ns, tmp_path, judge_nodes):
    """`kubectl apply` of a tiny ACTJob (S3 with credentials in a Secret, MLflow) with the operator
    run as the chart's Deployment runs it; all four stages as pods, `kubectl wait` for Succeeded,
    the printer columns, artifacts and manifests in S3, the MLflow lineage. With the two-node
    judge gang, the policy is online RL on a two-pod gang too (episodes played in the pods), and the
    operator is SIGKILLed at every stage boundary and restarted: it completes, with exactly one Job
    per attempt."""
    killing = judge_nodes == 2
    with services.seaweedfs(workdir=tmp_path / "s3", host=node.host_address) as s3, \
            services.mlflow_server(workdir=tmp_path / "mlflow", host=node.host_address) as mlflow, \
            ChartOperator(node, ns) as op:
        s3_secret(ns, s3)
        policy = {"policy": ONLINE_RL_GANG} if killing else {}
        (tmp_path / "smoke.yaml").write_text(actjob("smoke", s3.endpoint, s3.bucket, mlflow, judge_nodes, **policy))
        kubectl("apply", "-n", ns, "-f", str(tmp_path / "smoke.yaml"))
        columns = {}

        def running(stage):  # kubectl get actjobs: NAME STAGE PHASE ... while a stage runs
            row = kubectl("get", "actjobs", "-n", ns, "--no-headers").split()
            return row if row[1:3] == [stage, "Running"] else None

        try:
            if killing:
                for i, stage in enumerate(("collect", "judge", "policy", "eval")):
                    # right after the stage's Job appears (and, every other stage, once it finished
                    # while the operator was down: the completion event is missed)
                    wait_stage_job(ns, "smoke", stage)
                    op.kill(keep_down=bool(i % 2))  # else the kubelet restarts it after its back-off
                    if i % 2:
                        wait_stage_job(ns, "smoke", stage, done=True)
                        op.start()
                    if stage == "policy":
                        columns[stage] = wait_for(lambda: running("policy"), timeout=60, interval=0.3)
            else:
                wait_stage_job(ns, "smoke", "judge")
                columns["judge"] = wait_for(lambda: running("judge"), timeout=60, interval=0.3)
            kubectl("wait", "-n", ns, "--for=condition=Succeeded", "actjob/smoke", "--timeout=900s", timeout=910)
        finally:
            print(kubectl("get", "jobs,pods", "-n", ns, "-o", "wide", check=False))
            print(op.log())
        status = status_of(ns, "smoke")
        uid = json.loads(kubectl("get", "actjob", "smoke", "-n", ns, "-o", "json"))["metadata"]["uid"]
        stages = {k: (v["phase"], v.get("attempts"), v.get("message")) for k, v in status["stages"].items()
                  if k in STAGES}  # (a preflight step, where there is one, is checked by its own tests)
        assert status["phase"] == "Succeeded", (stages, status.get("message"))
        assert all(v[:2] == ("Succeeded", 1) for v in stages.values()), stages
        assert_one_job_per_attempt(ns, "smoke", status)
        pods = json.loads(kubectl("get", "pods", "-n", ns, "-o", "json"))["items"]
        pods = [p for p in pods if p["metadata"]["labels"].get(STAGE_LABEL) in STAGES]  # not the operator's
        assert sorted(p["metadata"]["labels"][STAGE_LABEL] for p in pods) == sorted(
            ["collect", "eval"] + ["judge"] * judge_nodes + ["policy"] * (2 if killing else 1))
        for p in pods:
            term = p["status"]["containerStatuses"][0]["state"]["terminated"]
            assert term["exitCode"] == 0, term
            if p["metadata"]["labels"]["act-operator.io/stage"] == "preflight":
                assert json.loads(term["message"])["preflight"]["checks"]  # every check passed
            elif p["metadata"]["annotations"].get("batch.kubernetes.io/job-completion-index", "0") == "0":
                assert json.loads(term["message"])["manifest"].startswith("s3://")  # rank 0 reports

        # kubectl get actjobs: NAME STAGE PHASE JUDGE-ACC SUCCESS AGE
        name, phase, judge_acc, success, age = kubectl("get", "actjobs", "-n", ns, "--no-headers").split()
        assert (name, phase) == ("smoke", "Succeeded") and age != "<none>"
        assert float(judge_acc) == status["stages"]["eval"]["metrics"]["judge_accuracy"]
        assert float(success) == status["stages"]["eval"]["metrics"]["dev/success_rate"]
        said = [e["message"] for e in events_of(ns, "smoke")]
        assert "collect: attempt 1 started" in said and not any("{" in m for m in said), said
        assert_artifacts(s3, status)
        assert_lineage(mlflow, status, "smoke", uid, ns)
        if killing:
            assert op.starts == 5, op.starts
            policy_metrics = status["stages"]["policy"]["metrics"]  # whole episodes were played and rewarded
            assert "success_rate" in policy_metrics and policy_metrics["steps"] == 1, policy_metrics


def test_node_failure_in_a_gang_retries_the_stage_from_its_checkpoint(kube_api, node, ns, tmp_path):
    """SIGKILL of one judge pod once a checkpoint has synced: the Job fails per its
    podFailurePolicy, the operator starts attempt 2, which resumes from the checkpoint."""
    with services.seaweedfs(workdir=tmp_path / "s3", host=node.host_address) as s3, \
            services.mlflow_server(workdir=tmp_path / "mlflow", host=node.host_address) as mlflow, \
            ChartOperator(node, ns) as op:
        s3_secret(ns, s3)
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
            print(op.log(3000))
        judge = status["stages"]["judge"]
        assert status["phase"] == "Succeeded", (judge, status.get("message"))
        assert judge["attempts"] == 2 and judge["metrics"]["steps"] == 40, judge
        rank0 = json.loads(kubectl("get", "pods", "-n", ns, "-l", "batch.kubernetes.io/job-name=gang-judge-2,"
                                   "batch.kubernetes.io/job-completion-index=0", "-o", "json"))["items"][0]
        result = json.loads(rank0["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
        assert result["metrics"]["resumed"] is True and judge["metrics"]["resumed"] == 1.0  # a bool in status: 0/1
        first = json.loads(kubectl("get", "job", "gang-judge-1", "-n", ns, "-o", "json"))
        failed = {c["type"]: c for c in first["status"]["conditions"]}["Failed"]
        assert failed["reason"] == "PodFailurePolicy", failed
        assert json.loads(kubectl("get", "job", "gang-judge-2", "-n", ns, "-o", "json"))["status"]["succeeded"] == 2


def exit_code_contract() -> bool:
    """Whether the exit-code contract (issue 11) is on this branch: exit 2 = permanent (the
    ACTJob fails at once), anything else transient (retried per maxRetries)."""
    import importlib.util

    return importlib.util.find_spec("act_trainer.errors") is not None


def test_stages_that_fail_every_attempt_fail_the_actjob_with_their_message(kube_api, node, ns, tmp_path):
    """Two ACTJobs side by side, maxRetries 1 on collect:
    - `doomed`: collect fails at run time on every attempt (the expert cannot finish an episode in
      expert.maxLength=1 step: no input check knows that before it plays). Under the exit-code
      contract it exits 2 (permanent): one attempt, the ACTJob Failed at once; before it (exit 1):
      retried like `flaky`.
    - `flaky`: the collect pod is SIGKILLed on every attempt (exit 137, a crash: transient):
      attempt 2 after the 10 s backoff, then Failed.
    Both: the stage's termination message in the status and a Warning event; deleting the Jobs
    afterwards changes nothing."""
    contract = exit_code_contract()
    with services.seaweedfs(workdir=tmp_path / "s3", host=node.host_address) as s3, \
            ChartOperator(node, ns) as op:
        s3_secret(ns, s3)
        kubectl("apply", "-n", ns, "-f", "-",
                stdin=actjob("doomed", s3.endpoint, s3.bucket, None, expert_max_length=1, collect_retries=1))
        kubectl("apply", "-n", ns, "-f", "-", stdin=actjob("flaky", s3.endpoint, s3.bucket, None, collect_retries=1))
        try:
            for attempt in (1, 2):  # crash flaky's collect pod as soon as its process runs
                (pod,) = wait_for(lambda a=attempt: pods_of(f"flaky-collect-{a}", ns), timeout=300, interval=0.5)
                os.kill(node.pid(ns, pod["metadata"]["name"], timeout=300), 9)
            for name in ("doomed", "flaky"):
                kubectl("wait", "-n", ns, "--for=condition=Failed", f"actjob/{name}", "--timeout=600s", timeout=610)
        finally:
            print(kubectl("get", "actjobs,jobs,pods", "-n", ns, check=False))
            print(op.log())

        statuses = {}
        for name in ("doomed", "flaky"):
            status = statuses[name] = status_of(ns, name)
            collect = status["stages"]["collect"]
            (last,) = pods_of(f"{name}-collect-{collect['attempts']}", ns)  # the attempt that failed the stage
            term = last["status"]["containerStatuses"][0]["state"]["terminated"]
            permanent = contract and term["exitCode"] == 2
            if name == "doomed":
                assert term["exitCode"] == (2 if contract else 1), term
                said = "produced no successful episode"
                assert said in json.loads(term["message"])["error"], term
            else:
                assert term["exitCode"] == 137 and not permanent, term
                # no report of its own, only the log's tail (FallbackToLogsOnError): the pod, code, signal
                said = f"pod {last['metadata']['name']}: killed by SIGKILL (exit code 137)"
            assert collect["phase"] == "Failed" and collect["attempts"] == (1 if permanent else 2), collect
            assert said in collect["message"] and ("permanently" in collect["message"]) == permanent, collect
            assert status["phase"] == "Failed" and status["message"] == collect["message"], status
            assert all(status["stages"][s]["attempts"] == 0 for s in ("judge", "policy", "eval")), status
            assert_one_job_per_attempt(ns, name, status)
            by_reason = {e["reason"]: e for e in events_of(ns, name)}
            assert by_reason["Failed"]["type"] == "Warning" and said in by_reason["Failed"]["message"], by_reason
            assert ("StageRetrying" in by_reason) == (not permanent), by_reason
            if not permanent:  # the backoff: attempt 2 was created no sooner than 10 s after attempt 1 failed
                first, second = (json.loads(kubectl("get", "job", f"{name}-collect-{n}", "-n", ns, "-o", "json"))
                                 for n in (1, 2))
                failed_at = {c["type"]: c for c in first["status"]["conditions"]}["Failed"]["lastTransitionTime"]
                gap = (datetime.fromisoformat(second["metadata"]["creationTimestamp"])
                       - datetime.fromisoformat(failed_at)).total_seconds()
                assert gap >= 9, gap  # BACKOFF_BASE_S = 10 (timestamps have 1 s resolution)
        assert not contract or statuses["doomed"]["stages"]["collect"]["attempts"] == 1  # exit 2: tried once

        kubectl("delete", "jobs", "-n", ns, "-l", ACTJOB_LABEL, "--wait=false")
        wait_for(lambda: not jobs_of(ns, "doomed") and not jobs_of(ns, "flaky"), timeout=30)
        time.sleep(5)  # a reconcile would follow the Jobs' DELETED events at once
        for name in ("doomed", "flaky"):
            assert status_of(ns, name) == statuses[name]
            assert not jobs_of(ns, name)


def test_a_missing_credentials_secret_is_explained_and_creating_it_lets_the_stage_run(kube_api, node, ns, tmp_path):
    """The ACTJob's credentials Secret does not exist: the collect pod stays Pending with the
    kubelet's reason (CreateContainerConfigError: secret "act-s3" not found). The ACTJob says why
    within 30 s (its Waiting condition names the reason and the kubelet's message); creating the
    Secret lets the pod run, and the condition clears. An ACTJob whose stage image the node does
    not have says ImagePullBackOff the same way."""
    with services.seaweedfs(workdir=tmp_path / "s3", host=node.host_address) as s3, \
            ChartOperator(node, ns) as op:
        kubectl("apply", "-n", ns, "-f", "-", stdin=actjob("nosecret", s3.endpoint, s3.bucket, None))
        try:
            def actjob_pods():  # the first step's pod: the preflight's where there is one, else collect's
                return json.loads(kubectl("get", "pods", "-n", ns, "-l", f"{ACTJOB_LABEL}=nosecret",
                                          "-o", "json"))["items"]

            def waiting():
                for p in actjob_pods():
                    for cs in p["status"].get("containerStatuses") or []:
                        w = (cs.get("state") or {}).get("waiting") or {}
                        if w.get("reason") == "CreateContainerConfigError":
                            return w
                return None

            why = wait_for(waiting, timeout=120, interval=0.5)
            assert why["message"] == 'secret "act-s3" not found', why
            pending_at = time.monotonic()

            def explained():
                conds = status_of(ns, "nosecret").get("conditions") or []
                return [c for c in conds if c["status"] == "True" and 'secret "act-s3" not found' in c.get("message", "")]

            try:
                said = wait_for(explained, timeout=max(1.0, 30 - (time.monotonic() - pending_at)), interval=1)
            except TimeoutError:
                raise AssertionError("the ACTJob did not explain its Pending pod within 30 s: no condition names "
                                     f"'secret \"act-s3\" not found'; its status: {status_of(ns, 'nosecret')}") from None
            assert [(c["type"], c["reason"]) for c in said] == [("Waiting", "CreateContainerConfigError")], said
            s3_secret(ns, s3)

            def started():
                return any(p["status"].get("phase") in ("Running", "Succeeded", "Failed") for p in actjob_pods())

            wait_for(started, timeout=60, interval=0.5)
            wait_for(lambda: not explained(), timeout=30, interval=1)

            # a stage image the node does not have: the kubelet backs off pulling it, the ACTJob says so
            missing = "ghcr.io/act-operator/trainer-cpu:no-such-tag"
            noimg = yaml.safe_load(actjob("noimage", s3.endpoint, s3.bucket, None))
            noimg["spec"]["pod"] = {"image": missing}
            kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(noimg))

            def pull_explained():
                conds = status_of(ns, "noimage").get("conditions") or []
                return [c for c in conds if c["status"] == "True" and c["type"] == "Waiting"
                        and c.get("reason") == "ImagePullBackOff"]

            (cond,) = wait_for(pull_explained, timeout=120, interval=1)
            assert f'Back-off pulling image "{missing}"' in cond["message"], cond
        finally:
            print(kubectl("get", "actjobs,jobs,pods", "-n", ns, check=False))
            print(op.log())
            # stop the stage (kubelite has no garbage collector: deleting the ACTJob leaves its pods)
            kubectl("delete", "actjobs,jobs,pods", "--all", "-n", ns, "--wait=false", check=False)


def test_an_experiment_runs_its_arms_concurrently_on_pods(kube_api, node, ns, tmp_path):
    """`kubectl apply` of an ACTExperiment (arms il and act, one seed): the operator creates the
    shared collect, then the judge arm and the IL arm at once; their stage Jobs overlap in time
    on the node; the experiment ends Succeeded with a row per arm and a best arm."""
    with services.seaweedfs(workdir=tmp_path / "s3", host=node.host_address) as s3, \
            services.mlflow_server(workdir=tmp_path / "mlflow", host=node.host_address) as mlflow, \
            ChartOperator(node, ns) as op:
        s3_secret(ns, s3)
        template = yaml.safe_load(actjob("t", s3.endpoint, s3.bucket, mlflow))["spec"]
        template["stages"]["policy"].pop("method")
        kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump({
            "apiVersion": "act-operator.io/v1alpha1", "kind": "ACTExperiment", "metadata": {"name": "arms"},
            "spec": {"arms": ["il", "act"], "seeds": [0], "template": template}}))
        try:
            kubectl("wait", "-n", ns, "--for=jsonpath={.status.phase}=Succeeded", "actexperiment/arms",
                    "--timeout=900s", timeout=910)
        finally:
            print(kubectl("get", "actexperiments,actjobs,jobs", "-n", ns, check=False))
            print(op.log())
        status = json.loads(kubectl("get", "actexperiment", "arms", "-n", ns, "-o", "json"))["status"]
        assert {k: v["phase"] for k, v in status["children"].items()} == {
            "pairs": "Succeeded", "act-s0": "Succeeded", "il-s0": "Succeeded"}
        assert {r["arm"]: r["seeds"] for r in status["arms"]} == {"il": 1, "act": 1}
        assert status["bestArm"] in ("IL", "ACT only")
        # the two arms ran at once: each one's training Job started before the other's finished
        judge, policy = (json.loads(kubectl("get", "job", j, "-n", ns, "-o", "json"))["status"]
                         for j in ("arms-act-s0-judge-1", "arms-il-s0-policy-1"))
        assert max(judge["startTime"], policy["startTime"]) < min(judge["completionTime"],
                                                                   policy["completionTime"]), (judge, policy)
        pairs = status_of(ns, "arms-pairs")["stages"]["collect"]["outputs"]["uri"]
        for child in ("arms-act-s0", "arms-il-s0"):
            assert status_of(ns, child)["stages"]["collect"] == {**status_of(ns, child)["stages"]["collect"],
                                                                 "phase": "Reused"}
            assert status_of(ns, child)["stages"]["collect"]["outputs"]["uri"] == pairs
        row = kubectl("get", "actexperiments", "-n", ns, "--no-headers").split()
        assert row[:3] == ["arms", "Succeeded", status["bestArm"].split()[0]], row


def test_stage_runs_recorded_while_mlflow_was_down_are_replayed_by_a_pod(kube_api, node, ns, tmp_path):
    """MLflow stops once the parent run is open: collect and judge run on as pods and record their
    tracking in SeaweedFS (`trackingOffline`); the ACTJob succeeds with its lineage pending and no
    replay while MLflow is away. The same MLflow comes back (port and store): the operator closes
    the parent run, registers the model and runs its replay Job as a pod (the stage credentials
    Secret, no operator access to storage); then each stage has exactly one child run under the
    parent, named in the status, and `TrackingReplayed=True`."""
    from mlflow import MlflowClient

    (port,) = services.free_ports(1)
    store = tmp_path / "mlflow"
    uri = f"http://{node.host_address}:{port}"
    with services.seaweedfs(workdir=tmp_path / "s3", host=node.host_address) as s3, \
            ChartOperator(node, ns) as op:
        s3_secret(ns, s3)
        try:
            with services.mlflow_server(workdir=store, host=node.host_address, port=port):
                kubectl("apply", "-n", ns, "-f", "-", stdin=actjob("offline", s3.endpoint, s3.bucket, uri,
                                                                    judge_only=True))
                parent = wait_for(lambda: status_of(ns, "offline").get("mlflow", {}).get("runId"), timeout=300,
                                  interval=0.5)
            kubectl("wait", "-n", ns, "--for=condition=Succeeded", "actjob/offline", "--timeout=900s", timeout=910)
            status = status_of(ns, "offline")
            assert [s for s in ("collect", "judge") if status["stages"][s].get("trackingOffline")] == \
                ["collect", "judge"], status["stages"]
            time.sleep(2)
            assert not status_of(ns, "offline")["mlflow"].get("replay")  # not while MLflow does not answer
            with services.mlflow_server(workdir=store, host=node.host_address, port=port):
                status = wait_for(lambda: (status_of(ns, "offline")["mlflow"].get("replay") or {}).get("phase")
                                  in ("Succeeded", "Failed") and status_of(ns, "offline"), timeout=600, interval=1)
                assert status["mlflow"]["replay"]["phase"] == "Succeeded", status["mlflow"]["replay"]
                client = MlflowClient(uri)
                assert client.get_run(parent).info.status == "FINISHED" and status["registeredModel"]
                children = client.search_runs([client.get_run(parent).info.experiment_id],
                                              filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
                by_stage = sorted((r.data.tags["act.stage"], r.info.run_id) for r in children)
                assert by_stage == sorted((s, status["stages"][s]["mlflowRunId"]) for s in ("collect", "judge"))
                assert all(r.data.params and r.info.status == "FINISHED" for r in children)
        finally:
            print(kubectl("get", "actjobs,jobs,pods", "-n", ns, check=False))
            print(op.log())
        cond = next(c for c in status["conditions"] if c["type"] == "TrackingReplayed")
        assert (cond["status"], cond["reason"]) == ("True", "Replayed") and status["phase"] == "Succeeded"
        [pod] = pods_of("offline-replay-1", ns)
        term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 0 and sorted(json.loads(term["message"])["replay"]) == ["collect", "judge"]
