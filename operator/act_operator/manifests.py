"""Pure builders of the Kubernetes objects of one stage attempt: plain dicts, no I/O.

One attempt, as `launch.plan` describes it (topology, configs, command), becomes a ConfigMap
(the stage config, mounted at /etc/act/stage.json), for a multi-node stage a headless
Service, and a batch/v1 Job, created in that order.

- Single process: a plain Job running `act-trainer <stage> --config /etc/act/stage.json`.
- One node, several processes: a plain Job running `torchrun --standalone`.
- Several nodes (judge/policy with nodes > 1): an Indexed Job, one pod per node, plus a
  headless Service whose name is the pods' subdomain, so pod i is `<job>-i.<service>`.
  torchrun uses static rendezvous: node rank = JOB_COMPLETION_INDEX, master = pod 0.
- Sharded collect/eval: an Indexed Job, one pod per shard; the trainer CLI takes its shard
  from JOB_COMPLETION_INDEX.

Failures: backoffLimit 0. The operator retries a stage itself as a new attempt (a new Job),
per maxRetries, so every retry is visible in the ACTJob status. podFailurePolicy:
- a gang (multi-node) fails as a whole on any pod failure, disruptions included: a single
  NCCL rank cannot rejoin a running group, so waiting for the survivors to time out only
  wastes GPUs; the next attempt restarts the whole gang from the last checkpoint.
- any other Job ignores pod disruptions (preemption, eviction, node drain): the Job
  controller recreates the pod, which resumes from its checkpoint or redoes its shard,
  without using up one of the stage's retries. activeDeadlineSeconds still bounds it.
- exit code 2 of the stage container (permanent: bad input or config, act_trainer.errors) fails
  the Job at once; the operator reads the code and fails the ACTJob without a retry.
- any other non-zero exit fails the Job at once too (reason PodFailurePolicy); the operator
  retries the stage per maxRetries.
"""

from __future__ import annotations

from act_operator import launch, pipeline, stages
from act_operator.api import API_VERSION, KIND, ACTJob, StageCommon
from act_operator.launch import MASTER_PORT, Launch, checked
from act_operator.settings import OperatorSettings
from act_trainer import stagedefs
from act_trainer.errors import EXIT_PERMANENT
from act_trainer.manifest import DEFAULT_TERMINATION_LOG, TERMINATION_LOG_ENV

CONFIG_DIR, CONFIG_FILE = launch.CONFIG_PATH.rsplit("/", 1)
CONFIG_PATH = launch.CONFIG_PATH
CONTAINER = "stage"  # the container whose terminated state carries the stage result
PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"  # `actjob render` of an ACTJob not yet created
# the names the operator's objects carry, and those Kubernetes sets on them (kube.py reads them)
ACTJOB_LABEL = "act-operator.io/actjob"
STAGE_LABEL = "act-operator.io/stage"
ATTEMPT_LABEL = "act-operator.io/attempt"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set on pods by the Job controller
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


# --- names and metadata ----------------------------------------------------------------------

def config_map_name(job_name: str) -> str:
    return checked(f"{job_name}-config")


def labels(job: ACTJob, stage: str, attempt: int) -> dict[str, str]:
    name = job.metadata.name
    return {
        "app.kubernetes.io/name": "act-operator",
        "app.kubernetes.io/component": stage,
        "app.kubernetes.io/managed-by": "act-operator",
        "app.kubernetes.io/instance": name,
        ACTJOB_LABEL: name,
        STAGE_LABEL: stage,
        ATTEMPT_LABEL: str(attempt),
    }


def owner_reference(job: ACTJob) -> dict:
    if not job.metadata.uid:
        raise ValueError(f"ACTJob {job.metadata.name} has no metadata.uid: create it in the cluster first")
    return {"apiVersion": API_VERSION, "kind": KIND, "name": job.metadata.name, "uid": job.metadata.uid,
            "controller": True, "blockOwnerDeletion": True}


def _metadata(job: ACTJob, name: str, stage: str, attempt: int) -> dict:
    return {"name": name, "namespace": job.metadata.namespace, "labels": labels(job, stage, attempt),
            "ownerReferences": [owner_reference(job)]}


# --- the pod ---------------------------------------------------------------------------------

def _secret_env(name: str, secret: str, optional: bool) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": name, "optional": optional}}}


def _env(job: ACTJob, settings: OperatorSettings, indexed: bool) -> list[dict]:
    spec = job.spec
    env = [{"name": TERMINATION_LOG_ENV, "value": DEFAULT_TERMINATION_LOG},
           {"name": "PYTHONUNBUFFERED", "value": "1"}]
    plain = {"AWS_ENDPOINT_URL": spec.storage.s3.endpoint or settings.s3_endpoint,
             "AWS_REGION": spec.storage.s3.region,
             "MLFLOW_TRACKING_URI": settings.tracking_uri(spec.tracking.uri)}
    env += [{"name": k, "value": v} for k, v in plain.items() if v]
    # Secrets by reference only. A Secret the ACTJob names is required (a typo shows up as a pod
    # that cannot start); the operator's default is optional, for clusters that use IRSA or
    # workload identity instead.
    secrets = []
    s3 = spec.storage.s3.credentials_secret
    if s3 or settings.s3_credentials_secret:
        secrets += [_secret_env(k, s3 or settings.s3_credentials_secret, optional=not s3)
                    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]
    mlflow = spec.tracking.credentials_secret or settings.mlflow_credentials_secret
    if mlflow:  # token or user/password: each key is optional
        secrets += [_secret_env(k, mlflow, optional=True)
                    for k in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")]
    # spec.pod.env as the user wrote it (its order: a value may refer to an earlier $(VAR)), less the
    # names the operator sets itself, which win (one entry per name in the container)
    own = set(plain) | {e["name"] for e in secrets}
    env += [e.model_dump(by_alias=True, exclude_none=True) for e in spec.pod.env if e.name not in own]
    env += secrets
    if indexed:  # the Job controller injects it too, but only env declared here is expanded in args
        env.append({"name": launch.INDEX_ENV, "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"}}})
    return env


def _resources(stage: StageCommon, settings: OperatorSettings) -> dict:
    """Given cpu/memory: requests = limits. Defaults: requests only, so that an unsized stage is
    neither throttled nor OOM-killed by a guess. GPUs are limits (requests follow)."""
    r = stage.resources
    given = {k: v for k, v in (("cpu", r.cpu), ("memory", r.memory)) if v}
    requests = {"cpu": settings.default_cpu, "memory": settings.default_memory, **given}
    limits = dict(given)
    if r.gpus:
        limits["nvidia.com/gpu"] = str(r.gpus)
    return {"requests": requests, **({"limits": limits} if limits else {})}


def _pod_spec(job: ACTJob, run: Launch, settings: OperatorSettings) -> dict:
    spec, cfg = job.spec, pipeline.stage_spec(job, run.stage)
    node_selector = cfg.node_selector if cfg.node_selector is not None else spec.pod.node_selector
    tolerations = cfg.tolerations if cfg.tolerations is not None else spec.pod.tolerations
    container = {
        "name": CONTAINER,
        "image": spec.pod.image or settings.trainer_image,
        "imagePullPolicy": spec.pod.image_pull_policy or settings.image_pull_policy,
        "command": run.command(CONFIG_PATH),
        "env": _env(job, settings, run.indexed),
        "resources": _resources(cfg, settings),
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        "terminationMessagePath": DEFAULT_TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    volumes = [{"name": "config", "configMap": {"name": config_map_name(run.name),
                                                "items": [{"key": CONFIG_FILE, "path": CONFIG_FILE}]}}]
    if run.processes_per_node > 1 or cfg.resources.gpus:  # NCCL and vLLM need more than the default 64Mi of /dev/shm
        container["volumeMounts"].append({"name": "dshm", "mountPath": "/dev/shm"})
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
    if run.nodes > 1:
        container["ports"] = [{"name": "rendezvous", "containerPort": MASTER_PORT}]
    pod = {
        "restartPolicy": "Never",
        "serviceAccountName": spec.pod.service_account_name or settings.stage_service_account,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    }
    if node_selector:
        pod["nodeSelector"] = dict(node_selector)
    if tolerations:
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in tolerations]
    sched = spec.scheduling
    if sched.scheduler_name:
        pod["schedulerName"] = sched.scheduler_name
    if sched.priority_class_name:
        pod["priorityClassName"] = sched.priority_class_name
    return pod


def _pod_failure_policy(gang: bool) -> dict:
    disrupted = {"action": "FailJob" if gang else "Ignore",
                 "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    permanent = {"action": "FailJob",
                 "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [EXIT_PERMANENT]}}
    failed = {"action": "FailJob", "onExitCodes": {"containerName": CONTAINER, "operator": "NotIn", "values": [0]}}
    return {"rules": [disrupted, permanent, failed]}  # first match wins: a preempted pod also exits non-zero


# --- the objects of one attempt --------------------------------------------------------------

def stage_objects(job: ACTJob, stage: str, attempt: int, settings: OperatorSettings) -> list[dict]:
    """[ConfigMap, Service (multi-node only), Job] of one stage attempt, in creation order."""
    run = launch.plan(job, stage, attempt, tracking_uri=settings.tracking_uri(job.spec.tracking.uri))
    name, svc = checked(run.name), run.service
    # one file for every pod: a shard's config differs only in shard.index, which the trainer
    # CLI takes from JOB_COMPLETION_INDEX (one file per shard would not fit 1024 shards in 1 MiB)
    objects = [{"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": _metadata(job, config_map_name(name), stage, attempt),
                "data": {CONFIG_FILE: run.configs[0].model_dump_json(indent=2)}}]
    if svc:
        objects.append({"apiVersion": "v1", "kind": "Service",
                        "metadata": _metadata(job, svc, stage, attempt),
                        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                                 "selector": {JOB_NAME_LABEL: name},
                                 "ports": [{"name": "rendezvous", "port": MASTER_PORT,
                                            "targetPort": MASTER_PORT}]}})

    pod = _pod_spec(job, run, settings)
    if svc:
        pod["subdomain"] = svc
    meta = _metadata(job, name, stage, attempt)
    job_spec = {
        "backoffLimit": 0,
        "podFailurePolicy": _pod_failure_policy(gang=run.nodes > 1),
        "template": {"metadata": {"labels": labels(job, stage, attempt),
                                  "annotations": {"kubectl.kubernetes.io/default-container": CONTAINER}},
                     "spec": pod},
    }
    if run.indexed:
        job_spec.update(completionMode="Indexed", completions=run.completions, parallelism=run.completions)
    cfg_stage = pipeline.stage_spec(job, stage)
    if cfg_stage.timeout_seconds:
        job_spec["activeDeadlineSeconds"] = cfg_stage.timeout_seconds
    if job.spec.pod.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = job.spec.pod.ttl_seconds_after_finished
    if job.spec.scheduling.queue_name:  # Kueue admits the Job by unsuspending it
        meta["labels"][QUEUE_LABEL] = job.spec.scheduling.queue_name
        job_spec["suspend"] = True
    objects.append({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job_spec})
    server = vllm_server_objects(job, run, attempt, settings)
    if server:  # the trainer finds the server through its Service
        pod["containers"][0]["env"].append({"name": VLLM_SERVER_HOST_ENV, "value": server[0]["metadata"]["name"]})
    return objects + server


# --- vLLM server (rollout.mode: server) ----------------------------------------------------------

VLLM_SERVER_HOST_ENV = "ACT_VLLM_SERVER_HOST"  # act_trainer.stages.training reads it
ROLE_LABEL = "act-operator.io/role"
VLLM_SERVER_ROLE = "vllm-server"


def vllm_server_name(job_name: str) -> str:
    return checked(f"{job_name}-vllm")


def vllm_server_objects(job: ACTJob, run: Launch, attempt: int, settings: OperatorSettings) -> list[dict]:
    """[Service, Job] of a GRPO stage whose rollouts go to a vLLM server pod (`trl vllm-serve`,
    through `act-trainer vllm-serve`, which fetches the stage's model first), beside the
    training gang; [] otherwise. The Service exposes vLLM's HTTP port and the port the trainer
    pushes weights on. The operator suspends the server Job (ending its pod) when the attempt ends."""
    cfg = run.configs[0]
    rollout = getattr(cfg, "rollout", None)
    if not getattr(cfg, "runs_grpo", False) or rollout is None or rollout.engine != "vllm" or rollout.mode != "server":
        return []
    name, stage = vllm_server_name(run.name), run.stage
    section = pipeline.stage_spec(job, stage)
    labels_ = {**labels(job, stage, attempt), ROLE_LABEL: VLLM_SERVER_ROLE}
    ports = [{"name": "http", "port": rollout.server_port, "targetPort": rollout.server_port},
             {"name": "weights", "port": rollout.group_port, "targetPort": rollout.group_port}]
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {**_metadata(job, name, stage, attempt), "labels": labels_},
               "spec": {"selector": {JOB_NAME_LABEL: name}, "ports": ports}}
    pod = _pod_spec(job, run, settings)
    container = pod["containers"][0]
    container["env"] = [e for e in container["env"] if e["name"] != launch.INDEX_ENV]  # one pod, no index
    container.update(name="vllm", command=["act-trainer", "vllm-serve", "--config", CONFIG_PATH],
                     ports=[{"name": p["name"], "containerPort": p["port"]} for p in ports],
                     readinessProbe={"httpGet": {"path": "/health/", "port": rollout.server_port},
                                     "periodSeconds": 10})
    requests = dict(container["resources"]["requests"])
    limits = {k: v for k, v in container["resources"].get("limits", {}).items() if k != "nvidia.com/gpu"}
    limits["nvidia.com/gpu"] = str(rollout.server_gpus)
    container["resources"] = {"requests": requests, "limits": limits}
    if not any(v["name"] == "dshm" for v in pod["volumes"]):
        container["volumeMounts"].append({"name": "dshm", "mountPath": "/dev/shm"})
        pod["volumes"].append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
    pod.pop("subdomain", None)
    spec = {"backoffLimit": 0, "template": {"metadata": {"labels": labels_}, "spec": pod}}
    if section.timeout_seconds:
        spec["activeDeadlineSeconds"] = section.timeout_seconds
    if job.spec.scheduling.queue_name:
        labels_ = {**labels_, QUEUE_LABEL: job.spec.scheduling.queue_name}
        spec["suspend"] = True
    server = {"apiVersion": "batch/v1", "kind": "Job",
              "metadata": {**_metadata(job, name, stage, attempt), "labels": labels_}, "spec": spec}
    return [service, server]


def all_stage_objects(job: ACTJob, settings: OperatorSettings) -> list[dict]:
    """The preflight's and every stage's objects for attempt 1, as `actjob render` shows them. Later stages read
    the outputs the earlier ones will write; the input job is not changed."""
    job = job.model_copy(deep=True)
    job.metadata.uid = job.metadata.uid or PLACEHOLDER_UID
    objects = stage_objects(job, pipeline.PREFLIGHT, 1, settings)
    for stage in stagedefs.chain_names():
        st = job.status.stages[stage]
        decided = pipeline.skip_or_reuse(job, stage)
        if isinstance(decided, pipeline.SkipStage):
            st.phase = "Skipped"
        elif isinstance(decided, pipeline.ReuseStage):
            st.phase, st.outputs.uri = "Reused", decided.uri
        else:
            objects += stage_objects(job, stage, 1, settings)
            st.phase, st.outputs.uri = "Succeeded", stages.stage_output(job, stage)
    return objects
