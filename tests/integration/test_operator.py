"""The operator against a real API server (kubelite): kopf runs the handlers; the tests
play the Job controller and the kubelet by patching Job and Pod status, as kubelite has
no controllers."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import uuid

import pytest
import secret_scan
from kube import run_operator
from kubernetes import client
from kubernetes.client.rest import ApiException

from act_operator import api as A
from act_operator import experiment as E

pytestmark = pytest.mark.integration

TIMEOUT = 30.0


def wait_for(fn, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except ApiException as e:
            if e.status != 404:
                raise
            last = None
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Cluster:
    """Small helpers over the typed clients, for one namespace."""

    def __init__(self, namespace: str):
        self.ns = namespace
        self.core, self.batch, self.custom = client.CoreV1Api(), client.BatchV1Api(), client.CustomObjectsApi()

    def apply(self, name: str, spec: dict, *, pass_preflight: bool = True) -> dict:
        """Create an ACTJob; unless told otherwise, play its preflight pod passing every check."""
        body = {"apiVersion": A.API_VERSION, "kind": A.KIND, "metadata": {"name": name}, "spec": spec}
        created = self.custom.create_namespaced_custom_object(A.GROUP, A.VERSION, self.ns, A.PLURAL, body,
                                                              field_validation="Strict")
        if pass_preflight:
            self.job(f"{name}-preflight-1")
            self.finish(f"{name}-preflight-1", result=PREFLIGHT_OK)
        return created

    def actjob(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(A.GROUP, A.VERSION, self.ns, A.PLURAL, name)

    def status(self, name: str) -> dict:
        return self.actjob(name).get("status") or {}

    def patch_spec(self, name: str, spec: dict) -> None:
        self.custom.patch_namespaced_custom_object(A.GROUP, A.VERSION, self.ns, A.PLURAL, name, {"spec": spec})

    def jobs(self, actjob: str) -> list:
        return self.batch.list_namespaced_job(self.ns, label_selector=f"act-operator.io/actjob={actjob}").items

    def job(self, name: str):
        return wait_for(lambda: self.batch.read_namespaced_job(name, self.ns), f"Job {name}")

    def finish(self, job_name: str, *, result: dict | None = None, error: str | None = None, pods: int = 1,
               exit_code: int = 1, reason: str = "Error"):
        """What the kubelet and the Job controller would do: terminate the pods with the stage's
        termination message (`reason`: the container runtime's, e.g. OOMKilled), then mark the Job
        Complete or Failed."""
        for index in range(pods):
            pod_name = f"{job_name}-{index}-{uuid.uuid4().hex[:5]}"
            self.core.create_namespaced_pod(self.ns, {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "labels": {"batch.kubernetes.io/job-name": job_name},
                             "annotations": {"batch.kubernetes.io/job-completion-index": str(index)}},
                "spec": {"containers": [{"name": "stage", "image": "x"}]}})
            message = json.dumps(result) if result and index == 0 else (error or "")
            self.core.patch_namespaced_pod_status(pod_name, self.ns, {"status": {"phase": "Failed" if error else
                                                                                 "Succeeded",
                "containerStatuses": [{"name": "stage", "image": "x", "imageID": "", "ready": False,
                                       "restartCount": 0, "state": {"terminated": {
                                           "exitCode": exit_code if error else 0, "message": message,
                                           **({"reason": reason} if error else {})}}}]}})
        cond = "Failed" if error else "Complete"
        self.batch.patch_namespaced_job_status(job_name, self.ns, {"status": {
            "conditions": [{"type": cond, "status": "True", "reason": "Test", "message": error or "done"}],
            "failed" if error else "succeeded": pods}})


PREFLIGHT_OK = {"stage": "preflight", "preflight": {"checks": ["storage", "model", "tracking"]},
                "metrics": {"seconds": 2.0}}


def result(stage: str, root: str = "s3://bucket/act") -> dict:
    uri = f"{root}/{stage}"
    return {"stage": stage, "uri": uri, "manifest": f"{uri}/_MANIFEST.json", "digest": f"sha256:{stage}",
            "mlflow_run_id": None, "metrics": {"steps": 4.0, "judge_accuracy": 0.75}}


SPEC = {
    "model": {"uri": "s3://bucket/models/base"},
    "environment": {"name": "scienceworld", "tasks": ["find-living-thing"]},
    "storage": {"root": "s3://bucket/act", "s3": {"endpoint": "http://minio:9000", "credentialsSecret": "team-s3"}},
    "stages": {"judge": {"nodes": 2, "processesPerNode": 4, "batchSize": 2, "resources": {"gpus": 4}},
               "collect": {"maxRetries": 1}},
}


@pytest.fixture(scope="module")
def cluster(kube_api):
    ns = f"op-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api().create_namespace({"metadata": {"name": ns}})
    return Cluster(ns)


def test_actjob_runs_through_every_stage(cluster, operator, mlflow_server, caplog):
    c = cluster
    caplog.set_level(logging.DEBUG)  # every log line of the operator (kopf's and ours) is searched below
    # the credentials Secrets of the namespace (SPEC's S3 one, the operator's default MLflow one), with
    # values searched for at the end in everything the run left
    secrets = {"AWS_ACCESS_KEY_ID": f"AKIA{uuid.uuid4().hex[:16].upper()}", "AWS_SECRET_ACCESS_KEY": uuid.uuid4().hex,
               "MLFLOW_TRACKING_TOKEN": f"token-{uuid.uuid4().hex}"}
    for name, keys in (("team-s3", ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")),
                       ("act-mlflow", ("MLFLOW_TRACKING_TOKEN",))):
        c.core.create_namespaced_secret(c.ns, {"metadata": {"name": name},
                                               "stringData": {k: secrets[k] for k in keys}})
    c.apply("happy", SPEC)
    t0 = time.monotonic()
    collect = c.job("happy-collect-1")
    first_job_s = time.monotonic() - t0
    owner = collect.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("ACTJob", "happy", True)
    assert collect.metadata.labels["act-operator.io/stage"] == "collect"
    pod = collect.spec.template.spec
    env = {e.name: e for e in pod.containers[0].env}
    assert env["AWS_SECRET_ACCESS_KEY"].value_from.secret_key_ref.name == "team-s3"
    assert env["AWS_SECRET_ACCESS_KEY"].value is None
    assert pod.containers[0].termination_message_policy == "FallbackToLogsOnError"
    cm = c.core.read_namespaced_config_map("happy-collect-1-config", c.ns)
    stage_cfg = json.loads(cm.data["stage.json"])
    assert stage_cfg["stage"] == "collect" and stage_cfg["output"].startswith("s3://bucket/act/")
    status = wait_for(lambda: c.status("happy").get("stages", {}).get("collect", {}).get("phase") == "Running"
                      and c.status("happy"), "collect Running")
    assert status["phase"] == "Running" and status["currentStage"] == "collect"
    assert status["mlflow"]["runId"]
    assert any(cond["type"] == "Valid" and cond["status"] == "True" for cond in status["conditions"])

    t1 = time.monotonic()
    c.finish("happy-collect-1", result=result("pairs"))
    judge = c.job("happy-judge-1")
    handoff_s = time.monotonic() - t1
    assert handoff_s < 5.0, handoff_s  # event-driven, not a slow timer (the benchmark measures it finely)
    assert judge.spec.completion_mode == "Indexed" and judge.spec.completions == judge.spec.parallelism == 2
    svc = c.core.read_namespaced_service(judge.spec.template.spec.subdomain, c.ns)
    assert svc.spec.cluster_ip == "None"
    args = " ".join(judge.spec.template.spec.containers[0].command + (judge.spec.template.spec.containers[0].args or []))
    assert "--nnodes=2" in args and "--nproc_per_node=4" in args and "JOB_COMPLETION_INDEX" in args
    assert json.loads(c.core.read_namespaced_config_map("happy-judge-1-config", c.ns).data["stage.json"])[
        "pairs"] == "s3://bucket/act/pairs"

    c.finish("happy-judge-1", result=result("models/judge"), pods=2)
    c.job("happy-policy-1")
    c.finish("happy-policy-1", result=result("models/policy"))
    c.job("happy-eval-1")
    c.finish("happy-eval-1", result=result("eval"))
    status = wait_for(lambda: c.status("happy").get("phase") == "Succeeded" and c.status("happy"), "Succeeded")
    assert [status["stages"][s]["phase"] for s in ("collect", "judge", "policy", "eval")] == ["Succeeded"] * 4
    assert status["modelUri"] == "s3://bucket/act/models/policy"
    assert status["stages"]["judge"]["outputs"]["digest"] == "sha256:models/judge"
    assert status["stages"]["eval"]["metrics"]["judge_accuracy"] == 0.75
    assert status["registeredModel"].startswith(f"{c.ns}.act-happy/")  # unique per namespace
    conds = {cond["type"]: cond for cond in status["conditions"]}
    assert conds["Succeeded"]["status"] == "True" and conds["Running"]["status"] == "False"
    assert all(cond["observedGeneration"] == 1 for cond in status["conditions"])
    reasons = {e.reason for e in c.core.list_namespaced_event(c.ns).items if e.involved_object.name == "happy"}
    assert {"StageStarted", "StageSucceeded", "Succeeded"} <= reasons
    # one Job per stage, no duplicates
    assert sorted(j.metadata.name for j in c.jobs("happy")) == [
        "happy-collect-1", "happy-eval-1", "happy-judge-1", "happy-policy-1", "happy-preflight-1"]
    assert status["stages"]["preflight"]["phase"] == "Succeeded"
    from mlflow import MlflowClient

    parent = MlflowClient(mlflow_server).get_run(status["mlflow"]["runId"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["act.namespace"] == c.ns  # whose run it is, on an MLflow namespaces share
    print(f"first Job after {first_job_s:.2f}s, hand-off {handoff_s:.2f}s")
    # the Secrets reach pods by reference only: no value in the ACTJob (spec, status), its Events, the
    # objects the operator made (ConfigMaps with the rendered stage configs, Jobs, Services), the MLflow
    # run's params and tags, or the operator's log
    dump = client.ApiClient().sanitize_for_serialization
    objects = [c.actjob("happy"), *c.core.list_namespaced_event(c.ns).items, *c.core.list_namespaced_config_map(
        c.ns).items, *c.batch.list_namespaced_job(c.ns).items, *c.core.list_namespaced_service(c.ns).items]
    places = [(f"{o.get('kind', '')} {o['metadata']['name']}", json.dumps(o).encode()) for o in map(dump, objects)]
    places += [("the MLflow run's params and tags", json.dumps([parent.data.params, parent.data.tags]).encode()),
               ("the operator's log", "\n".join(r.getMessage() for r in caplog.records).encode())]
    assert len(places) > 20 and caplog.records
    assert secret_scan.found(secrets, places) == []
    proc = subprocess.run([sys.executable, "-m", "act_operator.cli", "status", "happy", "-n", c.ns],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "ACTJob happy: Succeeded" in proc.stdout and "models/judge" in proc.stdout
    assert f"{c.ns}.act-happy/" in proc.stderr


def test_warmup_runs_before_collect_and_its_model_is_pi0(cluster, operator, mlflow_server):
    """stages.warmup: its Job first; collect samples from its model and the episodes it wrote, the
    judge starts from its model, and the registered model names it as the initial policy."""
    c = cluster
    spec = {**SPEC, "stages": {**SPEC["stages"], "warmup": {"enabled": True, "maxSteps": 60}}}
    c.apply("warm", spec)
    c.job("warm-warmup-1")
    cfg = json.loads(c.core.read_namespaced_config_map("warm-warmup-1-config", c.ns).data["stage.json"])
    assert (cfg["stage"], cfg["model"], cfg["max_steps"]) == ("warmup", "s3://bucket/models/base", 60)
    assert not [j for j in c.jobs("warm") if j.metadata.name.startswith("warm-collect")]  # not before pi0
    c.finish("warm-warmup-1", result=result("models/warmup"))
    c.job("warm-collect-1")
    cfg = json.loads(c.core.read_namespaced_config_map("warm-collect-1-config", c.ns).data["stage.json"])
    assert cfg["model"] == "s3://bucket/act/models/warmup"
    assert cfg["expert"]["uri"] == "s3://bucket/act/models/warmup/expert.jsonl"
    c.finish("warm-collect-1", result=result("pairs"))
    c.job("warm-judge-1")
    cfg = json.loads(c.core.read_namespaced_config_map("warm-judge-1-config", c.ns).data["stage.json"])
    assert cfg["model"] == "s3://bucket/act/models/warmup"
    c.finish("warm-judge-1", result=result("models/judge"), pods=2)
    c.job("warm-policy-1")
    c.finish("warm-policy-1", result=result("models/policy"))
    c.job("warm-eval-1")
    c.finish("warm-eval-1", result=result("eval"))
    status = wait_for(lambda: c.status("warm").get("registeredModel") and c.status("warm"), "registered model")
    assert status["phase"] == "Succeeded" and status["stages"]["warmup"]["phase"] == "Succeeded"
    from mlflow import MlflowClient

    name, version = status["registeredModel"].split("/")
    tags = MlflowClient(mlflow_server).get_model_version(name, version).tags
    assert tags["act.initial_policy"] == "s3://bucket/act/models/warmup" and tags["act.namespace"] == c.ns


def test_failed_stage_is_retried_then_fails_the_actjob(cluster, operator):
    c = cluster
    c.apply("flaky", SPEC)
    c.job("flaky-collect-1")
    c.finish("flaky-collect-1", error="Traceback ...\nRuntimeError: CUDA out of memory")
    status = wait_for(lambda: c.status("flaky")["stages"]["collect"]["phase"] == "BackingOff" and c.status("flaky"),
                      "BackingOff")
    assert "CUDA out of memory" in status["stages"]["collect"]["message"]
    c.job("flaky-collect-2")  # after the 10 s backoff
    c.finish("flaky-collect-2", error="RuntimeError: CUDA out of memory again")
    status = wait_for(lambda: c.status("flaky").get("phase") == "Failed" and c.status("flaky"), "Failed")
    assert "collect failed after 2 attempt(s)" in status["message"]
    assert {j.metadata.name for j in c.jobs("flaky")} == {"flaky-preflight-1", "flaky-collect-1", "flaky-collect-2"}
    # terminal stays terminal: a deleted Job does not restart it
    c.batch.delete_namespaced_job("flaky-collect-2", c.ns)
    time.sleep(1.5)
    assert c.status("flaky")["phase"] == "Failed" and len(c.jobs("flaky")) == 2


# what FallbackToLogsOnError hands over for a stage pod the kubelet SIGKILLed: the log's last 2 KB
KILLED_LOG_TAIL = ("".join(
    f"/usr/lib/python3.11/site-packages/transformers/utils.py:{n}: FutureWarning: `temperature` is set but "
    f"`do_sample` is False\n  warnings.warn(\n" + "\r".join(
        f"Sampling: {i // 2:3d}%|{'█' * (i // 20)}{' ' * (10 - i // 20)}| {i}/200 [00:{i // 4:02d}<00:50,  2.6it/s]"
        for i in range(n, n + 8)) + "\n" for n in range(40, 120, 16)) + "{'kept': 41, 'sampled': 96}\n"
    + "\r".join(f"Sampling: {i // 2:3d}%|█████     | {i}/200 [00:41<00:50,  2.6it/s]" for i in range(120, 126)))[-2048:]


def test_a_killed_pods_retry_names_the_pod_the_exit_code_and_the_signal_not_its_log_tail(cluster, operator):
    """collect's pod is SIGKILLed (exit 137, no report of its own: its termination message is the
    log's tail, tqdm bars and warnings): the stage's message, the Waiting condition (RetryBackoff)
    and the StageRetrying Event say which pod, exit code 137, SIGKILL and the log's last real line,
    in a few hundred characters. Attempt 2 is OOMKilled: the ACTJob fails saying so."""
    import re

    c = cluster
    c.apply("killed", SPEC)
    c.job("killed-collect-1")
    assert len(KILLED_LOG_TAIL) > 1500 and "it/s]" in KILLED_LOG_TAIL[-100:]
    c.finish("killed-collect-1", error=KILLED_LOG_TAIL, exit_code=137)
    status = wait_for(lambda: c.status("killed")["stages"]["collect"]["phase"] == "BackingOff" and c.status("killed"),
                      "BackingOff")
    said = status["stages"]["collect"]["message"]
    assert re.fullmatch(r"pod killed-collect-1-0-\w{5}: killed by SIGKILL \(exit code 137\); "
                        r"the log ends: \{'kept': 41, 'sampled': 96\}", said), said
    cond = waiting(c, "killed")
    assert cond["reason"] == "RetryBackoff" and said in cond["message"] and len(cond["message"]) < 300, cond
    retrying = wait_for(lambda: [e for e in events(c, "killed") if e.reason == "StageRetrying"], "StageRetrying")
    assert said in retrying[0].message and "it/s" not in retrying[0].message
    c.job("killed-collect-2")  # after the backoff
    c.finish("killed-collect-2", error=KILLED_LOG_TAIL, exit_code=137, reason="OOMKilled")
    status = wait_for(lambda: c.status("killed").get("phase") == "Failed" and c.status("killed"), "Failed")
    assert re.search(r"collect failed after 2 attempt\(s\): pod killed-collect-2-0-\w{5}: OOMKilled, out of memory "
                     r"\(exit code 137, SIGKILL; resources.memory sets the limit\)", status["message"]), status["message"]
    assert "it/s" not in status["message"] and len(status["message"]) < 400


def test_preflight_problems_fail_the_actjob_in_seconds_with_no_stage_job(cluster, operator):
    from act_trainer.preflight import failure

    c = cluster
    c.apply("mistaken", SPEC, pass_preflight=False)
    pre = c.job("mistaken-preflight-1")
    container = pre.spec.template.spec.containers[0]
    assert container.command == ["act-trainer", "preflight", "--config", "/etc/act/stage.json"]
    assert "nvidia.com/gpu" not in (container.resources.limits or {})
    assert {e.name for e in container.env} >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"}
    wait_for(lambda: c.status("mistaken").get("currentStage") == "preflight", "preflight recorded")  # Job first
    problems = ["spec.model.uri: nothing at s3://bucket/models/base; point it at a saved Hugging Face model",
                "spec.stages.collect.reuse: nothing at s3://bucket/old/pairs",
                "spec.tracking.uri: MLflow at http://mlflow:5000 does not answer (ConnectionError)"]
    t0 = time.monotonic()
    c.finish("mistaken-preflight-1", error="preflight found 3 problem(s)", result=failure(problems))
    status = wait_for(lambda: c.status("mistaken").get("phase") == "Failed" and c.status("mistaken"), "Failed")
    failed_s = time.monotonic() - t0
    valid = next(cond for cond in status["conditions"] if cond["type"] == "Valid")
    assert (valid["status"], valid["reason"]) == ("False", "PreflightFailed")
    assert all(p in valid["message"] and p in status["message"] for p in problems)
    assert status["stages"]["preflight"]["phase"] == "Failed" and status["stages"]["preflight"]["attempts"] == 1
    wait_for(lambda: any(e.reason == "PreflightFailed" and "spec.model.uri" in e.message
                         for e in c.core.list_namespaced_event(c.ns).items if e.involved_object.name == "mistaken"),
             "PreflightFailed event")
    time.sleep(1.0)  # no stage Job follows, and the preflight is not retried
    assert [j.metadata.name for j in c.jobs("mistaken")] == ["mistaken-preflight-1"]
    assert not status.get("mlflow", {}).get("runId")  # no parent run for an ACTJob that never ran
    print(f"Failed {failed_s:.2f}s after the preflight pod ended")


def test_permanent_exit_code_fails_the_actjob_without_a_retry(cluster, operator):
    """The exit-code contract on a cluster: the stage container exited 2 (bad input), so the ACTJob
    fails at its first attempt with the stage's message, although maxRetries allows two more."""
    c = cluster
    c.apply("badinput", SPEC)
    c.job("badinput-collect-1")
    error = json.dumps({"stage": "collect", "error": "InputError: expert.uri: trajectory record lacks 'action'",
                        "exit_code": 2, "permanent": True})
    c.finish("badinput-collect-1", error=error, exit_code=2)
    status = wait_for(lambda: c.status("badinput").get("phase") == "Failed" and c.status("badinput"), "Failed")
    assert "collect failed permanently (exit code 2" in status["message"]
    assert "trajectory record lacks 'action'" in status["message"]
    collect = status["stages"]["collect"]
    assert collect["phase"] == "Failed" and collect["attempts"] == 1
    time.sleep(1.5)  # nothing else comes: no backoff timer, no second Job
    assert sorted(j.metadata.name for j in c.jobs("badinput")) == ["badinput-collect-1", "badinput-preflight-1"]


def test_suspend_and_resume(cluster, operator):
    c = cluster
    c.apply("pausable", SPEC)
    c.job("pausable-collect-1")
    # the hand-off from the preflight is recorded before the spec changes (a suspend racing a
    # hand-off: test_a_suspend_racing_a_stage_hand_off_suspends_the_new_stage_job_too)
    wait_for(lambda: c.status("pausable")["stages"]["collect"]["phase"] == "Running", "collect Running")
    c.patch_spec("pausable", {"suspend": True})
    wait_for(lambda: c.status("pausable").get("phase") == "Suspended", "Suspended")
    wait_for(lambda: c.batch.read_namespaced_job("pausable-collect-1", c.ns).spec.suspend, "Job suspended")
    c.patch_spec("pausable", {"suspend": False})
    wait_for(lambda: c.status("pausable").get("phase") == "Running", "Running again")
    wait_for(lambda: c.batch.read_namespaced_job("pausable-collect-1", c.ns).spec.suspend is False, "Job resumed")
    assert len(c.jobs("pausable")) == 2  # the preflight's and collect's


def test_a_suspend_racing_a_stage_hand_off_suspends_the_new_stage_job_too(cluster, kube_api, mlflow_server,
                                                                          monkeypatch):
    """collect's Job finishes and the reconcile handing off creates judge's Job, but its status
    write loses to `spec.suspend: true` (a Conflict): the status never names judge's Job. Played
    here with the operator's own planner and object calls while no operator runs, then the
    operator starts: the suspend reaches every Job of the ACTJob (listed by its label), and
    the resume runs judge's Job, the one the hand-off created, once."""
    from act_operator import kube, manifests, pipeline
    from act_operator.settings import OperatorSettings

    monkeypatch.setenv("ACT_PORT", "0")
    monkeypatch.setenv("ACT_MLFLOW_TRACKING_URI", mlflow_server)
    c = cluster
    with run_operator(c.ns) as first:
        c.apply("racy", SPEC)
        c.job("racy-collect-1")
        wait_for(lambda: c.status("racy")["stages"]["collect"]["phase"] == "Running", "collect Running")
    assert first.exception is None
    c.finish("racy-collect-1", result=result("pairs"))
    job = A.parse_actjob(c.actjob("racy"))  # the hand-off's view: suspend is still false
    t = pipeline.now()
    actions = pipeline.plan(job, {"collect": kube.observe(c.ns, "racy-collect-1")}, t)
    assert [type(a).__name__ for a in actions] == ["CompleteStage", "StartStage"]
    for action in actions:
        job.status = pipeline.apply(job, action, t)
    kube.create_objects(manifests.stage_objects(job, "judge", 1, OperatorSettings()))
    c.patch_spec("racy", {"suspend": True})  # lands before the hand-off's status write, which is lost
    assert c.batch.read_namespaced_job("racy-judge-1", c.ns).spec.suspend in (None, False)
    with run_operator(c.ns) as second:
        wait_for(lambda: c.status("racy").get("phase") == "Suspended", "Suspended")
        wait_for(lambda: c.batch.read_namespaced_job("racy-judge-1", c.ns).spec.suspend, "judge's Job suspended")
        assert c.status("racy")["stages"]["judge"]["phase"] == "Pending"  # the status never knew it
        c.patch_spec("racy", {"suspend": False})
        wait_for(lambda: c.status("racy")["stages"]["judge"]["phase"] == "Running", "judge Running")
        wait_for(lambda: c.batch.read_namespaced_job("racy-judge-1", c.ns).spec.suspend is False, "judge's Job runs")
        time.sleep(1.0)
    assert second.exception is None
    assert sorted(j.metadata.name for j in c.jobs("racy")) == ["racy-collect-1", "racy-judge-1", "racy-preflight-1"]
    assert c.status("racy")["stages"]["judge"]["attempts"] == 1


def run_container(c: Cluster, job_name: str, tmp_path) -> dict:
    """What the kubelet does for a one-pod Job of the operator, with this machine as the image:
    run the container's command on the config its ConfigMap holds; returns its termination message."""
    container = c.job(job_name).spec.template.spec.containers[0]
    assert container.command[0] == "act-trainer" and container.command[-2] == "--config"
    config = tmp_path / f"{job_name}.json"
    config.write_text(c.core.read_namespaced_config_map(f"{job_name}-config", c.ns).data["stage.json"])
    out = tmp_path / f"{job_name}.result"
    proc = subprocess.run([sys.executable, "-m", "act_trainer.cli", *container.command[1:-1], str(config)],
                          capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "ACT_TERMINATION_LOG": str(out)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_stage_tracking_recorded_while_mlflow_was_down_is_replayed_under_the_parent(
        cluster, operator, s3, s3_root, tmp_path, monkeypatch):
    """MLflow is down when the ACTJob starts: collect is rendered with no parent run, so it logs no
    top-level run but records its tracking in storage (the real act_trainer tracking, on SeaweedFS)
    and says so in its result. MLflow comes back (the real server): the parent run is opened, the
    later stages log under it, and once the ACTJob succeeded the operator's replay Job (its
    command run here on its ConfigMap) attaches collect's run under the parent. A replay attempt
    that fails is retried and never changes the ACTJob's outcome."""
    from mlflow import MlflowClient
    from services import free_ports, mlflow_server

    from act_trainer.config import parse_stage_config
    from act_trainer.manifest import write_termination_log
    from act_trainer.tracking import NO_PARENT, stage_run

    c = cluster
    (port,) = free_ports(1)
    uri = f"http://127.0.0.1:{port}"
    spec = dict(SPEC, tracking={"uri": uri, "experiment": "replay"},
                storage={"root": s3_root, "s3": {"endpoint": s3.endpoint}})
    c.apply("replayed", spec)
    c.job("replayed-collect-1")
    cm = c.core.read_namespaced_config_map("replayed-collect-1-config", c.ns)
    cfg = parse_stage_config(json.loads(cm.data["stage.json"]))
    assert cfg.tracking.uri == uri and cfg.tracking.parent_run_id is None  # MLflow did not answer the operator
    # collect's pod: it publishes its result, then (no parent run) its tracking goes to storage
    monkeypatch.setenv("ACT_TERMINATION_LOG", str(tmp_path / "collect.result"))
    write_termination_log({**result("pairs"), "uri": cfg.output, "manifest": f"{cfg.output}/_MANIFEST.json"})
    with stage_run(cfg) as run:
        run.log_metrics({"kept": 3.0}, step=1)
        run.log_dataset("s3://bucket/expert.jsonl", "expert", "sha256:" + "cd" * 32, "training", rows=[{"a": 1}])
    assert run.offline == NO_PARENT
    collect = json.loads((tmp_path / "collect.result").read_text())
    assert collect["tracking_offline"] == NO_PARENT

    with mlflow_server(tmp_path / "mlflow", port=port):  # MLflow answers from here on
        c.finish("replayed-collect-1", result=collect)
        c.job("replayed-judge-1")
        status = wait_for(lambda: c.status("replayed")["stages"]["judge"]["phase"] == "Running"
                          and c.status("replayed"), "judge Running")
        parent = status["mlflow"]["runId"]  # opened before judge's config was rendered
        judge_cfg = json.loads(c.core.read_namespaced_config_map("replayed-judge-1-config", c.ns).data["stage.json"])
        assert parent and judge_cfg["tracking"]["parent_run_id"] == parent
        assert status["stages"]["collect"]["trackingOffline"] is True
        for stage, out in (("judge", "models/judge"), ("policy", "models/policy"), ("eval", "eval")):
            c.job(f"replayed-{stage}-1")
            c.finish(f"replayed-{stage}-1", result=result(out), pods=2 if stage == "judge" else 1)
        first = c.job("replayed-replay-1")  # once it succeeded
        assert first.spec.template.spec.containers[0].command[:2] == ["act-trainer", "replay"]
        wait_for(lambda: c.status("replayed")["phase"] == "Succeeded", "Succeeded")  # the Job comes first
        c.finish("replayed-replay-1", error="MlflowException: connection reset (MLflow went away again)")
        status = wait_for(lambda: (c.status("replayed").get("mlflow", {}).get("replay") or {}).get("phase") ==
                          "BackingOff" and c.status("replayed"), "replay BackingOff")
        cond = next(x for x in status["conditions"] if x["type"] == "TrackingReplayed")
        assert (cond["status"], cond["reason"]) == ("False", "ReplayRetrying") and status["phase"] == "Succeeded"
        c.job("replayed-replay-2")  # after the 10 s backoff
        report = run_container(c, "replayed-replay-2", tmp_path)
        c.finish("replayed-replay-2", result=report)
        status = wait_for(lambda: c.status("replayed")["mlflow"]["replay"]["phase"] == "Succeeded"
                          and c.status("replayed"), "replay Succeeded")
        client = MlflowClient(uri)
        [child] = client.search_runs([client.get_run(parent).info.experiment_id],
                                     filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")
        assert child.data.tags["act.stage"] == "collect" and child.data.tags["act.replay"] == "complete"
        assert child.data.params["stage"] == "collect" and child.data.metrics["kept"] == 3.0
        assert [i.dataset.name for i in child.inputs.dataset_inputs] == ["expert"]
        assert report["replay"] == {"collect": [child.info.run_id]}
        assert status["stages"]["collect"]["mlflowRunId"] == child.info.run_id
        tops = client.search_runs([child.info.experiment_id], filter_string="tags.`act.actjob` = 'replayed'")
        assert [r.info.run_id for r in tops if "mlflow.parentRunId" not in r.data.tags] == [parent]  # no stray run
        cond = next(x for x in status["conditions"] if x["type"] == "TrackingReplayed")
        assert (cond["status"], cond["reason"]) == ("True", "Replayed")
        assert status["phase"] == "Succeeded" and status["registeredModel"]
        assert any(e.reason == "Replayed" for e in events(c, "replayed"))
        time.sleep(1.0)  # done is final: no third replay
    assert sorted(j.metadata.name for j in c.jobs("replayed") if "-replay-" in j.metadata.name) == [
        "replayed-replay-1", "replayed-replay-2"]


def test_spec_the_schema_cannot_check_is_failed_with_valid_false(cluster, operator):
    c = cluster
    spec = dict(SPEC, model={"uri": "hf://Qwen/Qwen3-8B"})  # the scheme is checked by the pydantic model
    try:
        c.apply("badscheme", spec, pass_preflight=False)
    except ApiException as e:  # the CRD schema may already reject it: that is the better place
        assert e.status == 422 and "model.uri" in e.body
        return
    status = wait_for(lambda: c.status("badscheme").get("phase") == "Failed" and c.status("badscheme"), "Failed")
    valid = next(cond for cond in status["conditions"] if cond["type"] == "Valid")
    assert valid["status"] == "False" and "spec.model.uri" in valid["message"]
    assert c.jobs("badscheme") == []


def test_the_platforms_policy_refuses_an_image_or_service_account_before_any_job(cluster, kube_api, monkeypatch):
    """The chart's policy values reach the operator as ACT_ALLOWED_*: an ACTJob naming an image and a
    ServiceAccount outside them fails at once, Valid=False naming each field, with an Event and no Job;
    an allowed one runs as it asked. (kubelite has no ValidatingAdmissionPolicy: on such a cluster the
    operator is what refuses it; tests/unit/test_policy.py checks the chart's policy says the same.)"""
    monkeypatch.setenv("ACT_PORT", "0")
    monkeypatch.delenv("ACT_MLFLOW_TRACKING_URI", raising=False)  # no lineage needed
    monkeypatch.setenv("ACT_ALLOWED_IMAGES", "registry.example.com/ml/")
    monkeypatch.setenv("ACT_ALLOWED_SERVICE_ACCOUNTS", "team-s3,act-stage")
    c = cluster
    with run_operator(c.ns) as op:
        c.apply("refused", dict(SPEC, pod={"image": "registry.example.com/ml-evil/act:1",
                                           "serviceAccountName": "admin"}), pass_preflight=False)
        c.apply("allowed", dict(SPEC, pod={"image": "registry.example.com/ml/act:1", "serviceAccountName": "team-s3"}),
                pass_preflight=False)
        # an ACTExperiment's template is held to the same policy: Failed before it makes any child
        c.custom.create_namespaced_custom_object(A.GROUP, A.VERSION, c.ns, E.PLURAL, {
            "apiVersion": A.API_VERSION, "kind": E.KIND, "metadata": {"name": "refused-exp"},
            "spec": {"arms": ["act"], "template": dict(SPEC, pod={"image": "evil.example/act:1"})}})
        pre = c.job("allowed-preflight-1").spec.template.spec
        status = wait_for(lambda: c.status("refused").get("phase") == "Failed" and c.status("refused"), "refused")
        wait_for(lambda: any(e.reason == "PolicyViolation" and "spec.pod.image" in e.message for e in events(c, "refused")),
                 "PolicyViolation event")
        experiment = wait_for(lambda: (st := c.custom.get_namespaced_custom_object(
            A.GROUP, A.VERSION, c.ns, E.PLURAL, "refused-exp").get("status") or {}).get("phase") == "Failed" and st,
            "the ACTExperiment Failed")
        time.sleep(0.5)  # no Job follows
    assert op.exception is None
    assert "spec.template.pod.image: evil.example/act:1 is not allowed" in experiment["message"]
    assert not experiment.get("children") and not c.custom.list_namespaced_custom_object(
        A.GROUP, A.VERSION, c.ns, A.PLURAL, label_selector=f"{E.LABEL}=refused-exp")["items"]
    assert (pre.containers[0].image, pre.service_account_name) == ("registry.example.com/ml/act:1", "team-s3")
    assert c.jobs("refused") == []
    valid = next(cond for cond in status["conditions"] if cond["type"] == "Valid")
    assert (valid["status"], valid["reason"]) == ("False", "PolicyViolation")
    for field in ("spec.pod.image: registry.example.com/ml-evil/act:1 is not allowed",
                  "spec.pod.serviceAccountName: admin is not allowed"):
        assert field in valid["message"] and field in status["message"]
    assert {st["phase"] for st in status["stages"].values()} == {"Pending"}  # nothing ran, nothing lost


def test_operator_restart_mid_pipeline_creates_no_duplicates(cluster, kube_api, mlflow_server, monkeypatch):
    """All state is in the ACTJob and the cluster: an operator stopped mid-stage and started
    again continues, and the stage that finished while it was down hands off exactly once."""
    monkeypatch.setenv("ACT_PORT", "0")
    monkeypatch.setenv("ACT_MLFLOW_TRACKING_URI", mlflow_server)
    c = cluster
    with run_operator(c.ns) as first:
        c.apply("restart", SPEC)
        c.job("restart-collect-1")
        # Running starts with the preflight; the parent run is opened once it passed
        run_id = wait_for(lambda: c.status("restart").get("phase") == "Running"
                          and c.status("restart").get("mlflow", {}).get("runId"), "Running with a parent run")
    assert first.exception is None
    c.finish("restart-collect-1", result=result("pairs"))  # while no operator runs
    with run_operator(c.ns) as second:
        c.job("restart-judge-1")
        wait_for(lambda: c.status("restart")["stages"]["judge"]["phase"] == "Running", "judge Running")
        time.sleep(1.0)  # let any duplicate attempt show itself
    assert second.exception is None
    assert sorted(j.metadata.name for j in c.jobs("restart")) == ["restart-collect-1", "restart-judge-1",
                                                                  "restart-preflight-1"]
    status = c.status("restart")
    assert status["stages"]["collect"]["attempts"] == 1 and status["mlflow"]["runId"] == run_id
    started = sorted(e.message for e in events(c, "restart") for _ in range(e.count or 1) if e.reason == "StageStarted")
    assert started == ["collect: attempt 1 started", "judge: attempt 1 started", "preflight: attempt 1 started"]


def test_events_and_stage_durations_are_told_once_per_transition_when_status_writes_conflict(cluster, operator,
                                                                                              monkeypatch):
    """Every status write of the ACTJob first loses to a real 409: just before it, its
    resourceVersion is moved on (an annotation patched), so the API server refuses the write and
    the reconcile re-reads and re-plans. Through the preflight, a skipped warm-up, a collect that
    fails once and the other stages: exactly one StageStarted Event per stage attempt (read back
    from the API server), one of each other transition, and one stage-duration observation per
    stage that succeeded."""
    from prometheus_client import REGISTRY

    from act_operator import kube

    c, real, conflicts, moved_to = cluster, kube.patch_status, [], set()

    def conflicting(namespace, name, status, resource_version):
        if name == "conflicted" and resource_version not in moved_to:  # each read's first write loses
            moved = c.custom.patch_namespaced_custom_object(A.GROUP, A.VERSION, namespace, A.PLURAL, name, {
                "metadata": {"annotations": {"test/moved": str(len(conflicts))}}})
            moved_to.add(moved["metadata"]["resourceVersion"])
            conflicts.append(resource_version)
        return real(namespace, name, status, resource_version)

    monkeypatch.setattr(kube, "patch_status", conflicting)

    def seconds_count(stage):
        return REGISTRY.get_sample_value("act_stage_seconds_count", {"stage": stage}) or 0.0

    stages = ("preflight", "collect", "judge", "policy", "eval")
    counted = {s: seconds_count(s) for s in stages}
    c.apply("conflicted", SPEC)
    c.job("conflicted-collect-1")
    c.finish("conflicted-collect-1", error="RuntimeError: NCCL timeout")
    c.job("conflicted-collect-2")  # after the backoff
    c.finish("conflicted-collect-2", result=result("pairs"))
    for stage, out in (("judge", "models/judge"), ("policy", "models/policy"), ("eval", "eval")):
        c.job(f"conflicted-{stage}-1")
        c.finish(f"conflicted-{stage}-1", result=result(out), pods=2 if stage == "judge" else 1)
    wait_for(lambda: c.status("conflicted").get("phase") == "Succeeded", "Succeeded")
    wait_for(lambda: any(e.reason == "Succeeded" for e in events(c, "conflicted")), "Succeeded Event")
    time.sleep(2.0)  # kopf posts Events from a queue: any second copy would be there by now

    told: dict[tuple[str, str], int] = {}
    for e in events(c, "conflicted"):
        told[e.reason, e.message] = told.get((e.reason, e.message), 0) + (e.count or 1)
    started = sorted(m for (r, m), n in told.items() for _ in range(n) if r == "StageStarted")
    assert started == sorted(f"{s}: attempt {a} started" for s, a in (
        ("preflight", 1), ("collect", 1), ("collect", 2), ("judge", 1), ("policy", 1), ("eval", 1))), told
    assert all(n == 1 for n in told.values()), {k: n for k, n in told.items() if n > 1}
    reasons = sorted(r for r, _ in told)
    assert reasons.count("StageSucceeded") == 5 and reasons.count("StageRetrying") == 1, reasons
    assert reasons.count("StageSkipped") == 1 and reasons.count("Succeeded") == 1, reasons  # the warm-up
    assert {s: seconds_count(s) - counted[s] for s in stages} == {s: 1.0 for s in stages}
    assert len(conflicts) >= 8, conflicts  # every transition's write was refused once


def test_delete_ends_the_mlflow_run_as_killed(cluster, operator, mlflow_server):
    from mlflow import MlflowClient

    c = cluster
    c.apply("doomed", SPEC)
    c.job("doomed-collect-1")
    run_id = wait_for(lambda: c.status("doomed").get("mlflow", {}).get("runId"), "parent run")
    c.custom.delete_namespaced_custom_object(A.GROUP, A.VERSION, c.ns, A.PLURAL, "doomed")
    wait_for(lambda: MlflowClient(mlflow_server).get_run(run_id).info.status == "KILLED", "run KILLED")

    def gone():
        try:
            c.actjob("doomed")
            return False
        except ApiException as e:
            return e.status == 404

    wait_for(gone, "ACTJob deleted")


def test_periodic_work_writes_no_finalizer_and_a_delete_needs_no_operator(cluster, mlflow_server, monkeypatch):
    """The timers of a running stage (its waits, its progress) and of a backoff run, and no version
    of the ACTJob the API server held carries a finalizer (kopf's timers put one on each ACTJob
    they serve); so a delete with no operator running is done at once, not held."""
    from kubernetes import watch

    monkeypatch.setenv("ACT_PORT", "0")
    monkeypatch.setenv("ACT_MLFLOW_TRACKING_URI", mlflow_server)
    c = cluster
    versions = []  # (event type, finalizers) of every version of the ACTJob

    def follow():
        for ev in watch.Watch().stream(c.custom.list_namespaced_custom_object, A.GROUP, A.VERSION, c.ns, A.PLURAL,
                                       field_selector="metadata.name=unheld", timeout_seconds=120):
            versions.append((ev["type"], ev["object"]["metadata"].get("finalizers")))
            if ev["type"] == "DELETED":
                return

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    time.sleep(0.5)
    with run_operator(c.ns) as op:
        c.apply("unheld", SPEC)
        c.job("unheld-collect-1")
        pod = "unheld-collect-1-0-stuck"
        c.core.create_namespaced_pod(c.ns, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "labels": {"batch.kubernetes.io/job-name": "unheld-collect-1"}},
            "spec": {"containers": [{"name": "stage", "image": "x"}]}})
        c.core.patch_namespaced_pod_status(pod, c.ns, {"status": {"phase": "Pending", "containerStatuses": [
            {"name": "stage", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
             "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}]}})
        wait_for(lambda: waiting(c, "unheld").get("reason") == "ImagePullBackOff", "the watch timer's Waiting")
        c.finish("unheld-collect-1", error="RuntimeError: boom")
        c.job("unheld-collect-2")  # the backoff timer started it
    assert op.exception is None
    assert len(versions) >= 5 and all(not f for _, f in versions), versions
    c.custom.delete_namespaced_custom_object(A.GROUP, A.VERSION, c.ns, A.PLURAL, "unheld")  # no operator runs
    with pytest.raises(ApiException) as gone:
        c.actjob("unheld")  # gone at once: nothing held it
    assert gone.value.status == 404
    follower.join(10)
    assert versions[-1] == ("DELETED", None), versions[-3:]


def test_many_actjobs_racing_for_one_mlflow_experiment(cluster, operator, mlflow_server):
    """ACTJobs created together all open their parent runs in one new experiment: exactly one
    experiment of that name exists, every status names it, and it holds each ACTJob's own run."""
    from mlflow import MlflowClient

    c = cluster
    experiment = f"race-{uuid.uuid4().hex[:6]}"
    spec = dict(SPEC, tracking={"experiment": experiment})
    names = [f"race-{i}" for i in range(6)]
    for name in names:
        c.apply(name, spec)
    statuses = {}
    for name in names:
        statuses[name] = wait_for(lambda n=name: c.status(n).get("mlflow", {}).get("runId") and c.status(n)["mlflow"],
                                  f"{name} parent run")
        c.job(f"{name}-collect-1")
    client = MlflowClient(mlflow_server)
    found = [e for e in client.search_experiments() if e.name.startswith(experiment)]  # no second one, no look-alike
    assert [e.name for e in found] == [experiment]
    exp = found[0]
    assert {s["experimentId"] for s in statuses.values()} == {exp.experiment_id}
    runs = [r for r in client.search_runs([exp.experiment_id], max_results=100) if "act.stage" not in r.data.tags]
    assert {r.info.run_name: r.info.run_id for r in runs} == {n: s["runId"] for n, s in statuses.items()}
    assert all(client.get_run(s["runId"]).info.experiment_id == exp.experiment_id for s in statuses.values())


def waiting(c: Cluster, name: str) -> dict:
    return next((cond for cond in c.status(name).get("conditions", []) if cond["type"] == "Waiting"), {})


def events(c: Cluster, name: str) -> list:
    return [e for e in c.core.list_namespaced_event(c.ns).items if e.involved_object.name == name]


def test_pods_that_cannot_start_are_explained_within_30s_and_cleared(cluster, operator):
    c = cluster
    c.apply("stuck", SPEC)
    c.job("stuck-collect-1")
    pod = "stuck-collect-1-0-abcde"
    c.core.create_namespaced_pod(c.ns, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod, "labels": {"batch.kubernetes.io/job-name": "stuck-collect-1"}},
        "spec": {"containers": [{"name": "stage", "image": "x"}]}})
    message = 'secret "team-s3" not found'
    c.core.patch_namespaced_pod_status(pod, c.ns, {"status": {"phase": "Pending", "containerStatuses": [
        {"name": "stage", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
         "state": {"waiting": {"reason": "CreateContainerConfigError", "message": message}}}]}})
    t0 = time.monotonic()
    cond = wait_for(lambda: waiting(c, "stuck").get("status") == "True" and waiting(c, "stuck"), "Waiting")
    explained_s = time.monotonic() - t0
    assert cond["reason"] == "CreateContainerConfigError" and message in cond["message"] and pod in cond["message"]
    wait_for(lambda: any(e.reason == "CreateContainerConfigError" and message in e.message
                         for e in events(c, "stuck")), "Warning event")
    assert c.status("stuck")["phase"] == "Running"
    # the Secret appeared: the container runs
    c.core.patch_namespaced_pod_status(pod, c.ns, {"status": {"phase": "Running", "containerStatuses": [
        {"name": "stage", "image": "x", "imageID": "", "ready": True, "restartCount": 0,
         "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}})
    t1 = time.monotonic()
    cond = wait_for(lambda: waiting(c, "stuck").get("status") == "False" and waiting(c, "stuck"), "cleared")
    cleared_s = time.monotonic() - t1
    assert cond["reason"] == "Progressing"
    assert any(e.reason == "WaitOver" for e in events(c, "stuck"))
    assert explained_s < 30 and cleared_s < 30, (explained_s, cleared_s)
    print(f"explained after {explained_s:.1f}s, cleared after {cleared_s:.1f}s")


def test_unschedulable_pods_and_kueue_admission_are_explained(cluster, operator):
    c = cluster
    c.apply("queued", dict(SPEC, scheduling={"queueName": "gpu-queue"}))
    collect = c.job("queued-collect-1")
    assert collect.spec.suspend is True  # Kueue admits it by unsuspending it
    cond = wait_for(lambda: waiting(c, "queued").get("status") == "True" and waiting(c, "queued"), "NotAdmitted")
    assert cond["reason"] == "NotAdmitted" and "gpu-queue" in cond["message"]
    c.batch.patch_namespaced_job("queued-collect-1", c.ns, {"spec": {"suspend": False}})  # admitted
    pod = "queued-collect-1-0-fghij"
    c.core.create_namespaced_pod(c.ns, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod, "labels": {"batch.kubernetes.io/job-name": "queued-collect-1"}},
        "spec": {"containers": [{"name": "stage", "image": "x"}]}})
    c.core.patch_namespaced_pod_status(pod, c.ns, {"status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]}})
    cond = wait_for(lambda: waiting(c, "queued").get("reason") == "Unschedulable" and waiting(c, "queued"),
                    "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in cond["message"]
    c.finish("queued-collect-1", result=result("pairs"))
    c.job("queued-judge-1")


def test_mlflow_unreachable_is_explained_and_holds_no_stage_back(cluster, operator, mlflow_server):
    from services import free_ports

    c = cluster
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    spec = dict(SPEC, tracking={"uri": dead, "experiment": "outage"})
    t0 = time.monotonic()
    c.apply("offline", spec)
    c.job("offline-collect-1")  # the stage starts without the parent run
    cond = wait_for(lambda: waiting(c, "offline").get("status") == "True" and waiting(c, "offline"),
                    "MLflowUnavailable")
    assert time.monotonic() - t0 < 30
    assert cond["reason"] == "MLflowUnavailable" and dead in cond["message"]
    wait_for(lambda: any(e.reason == "MLflowUnavailable" for e in events(c, "offline")), "Warning event")
    assert not c.status("offline").get("mlflow", {}).get("runId")
    c.patch_spec("offline", {"tracking": {"uri": mlflow_server, "experiment": "outage"}})  # MLflow answers
    run_id = wait_for(lambda: c.status("offline").get("mlflow", {}).get("runId"), "parent run opened")
    cond = wait_for(lambda: waiting(c, "offline").get("status") == "False" and waiting(c, "offline"), "cleared")
    assert run_id and cond["reason"] == "Progressing"


def test_mlflow_stopped_and_restarted_the_lineage_completes_after(cluster, operator, tmp_path):
    """The real MLflow server stops mid-run: the stages go on, the finished ACTJob says
    MLflowUnavailable; once the same server (port, store) answers again, the operator registers
    the model and closes the parent run by itself (its lineage timer), once."""
    from mlflow import MlflowClient
    from services import free_ports, mlflow_server

    c = cluster
    (port,) = free_ports(1)
    uri = f"http://127.0.0.1:{port}"
    spec = dict(SPEC, tracking={"uri": uri, "experiment": "restart"})
    with mlflow_server(tmp_path / "mlflow", port=port):
        c.apply("outage", spec)
        c.job("outage-collect-1")
        run_id = wait_for(lambda: c.status("outage").get("mlflow", {}).get("runId"), "parent run")
    t0 = time.monotonic()  # MLflow is down from here on; the stages go on
    for stage, out in (("collect", "pairs"), ("judge", "models/judge"), ("policy", "models/policy"),
                       ("eval", "eval")):
        c.job(f"outage-{stage}-1")
        c.finish(f"outage-{stage}-1", result=result(out), pods=2 if stage == "judge" else 1)
    status = wait_for(lambda: c.status("outage").get("phase") == "Succeeded" and waiting(c, "outage").get(
        "reason") == "MLflowUnavailable" and c.status("outage"), "Succeeded, lineage pending")
    assert time.monotonic() - t0 < 60 and not status.get("registeredModel")
    with mlflow_server(tmp_path / "mlflow", port=port):
        status = wait_for(lambda: c.status("outage").get("registeredModel") and c.status("outage"),
                          "model registered", timeout=60)
        cond = wait_for(lambda: waiting(c, "outage").get("status") == "False" and waiting(c, "outage"), "cleared")
        client = MlflowClient(uri)
        parent = client.get_run(run_id)
        assert parent.info.status == "FINISHED" and status["mlflow"]["runId"] == run_id
        name, version = status["registeredModel"].split("/")
        assert version == "1" and len(client.search_model_versions(f"name = '{name}'")) == 1
        assert client.get_model_version(name, version).run_id == run_id
        assert cond["reason"] == "Progressing"
