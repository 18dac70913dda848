"""The ACTJob's and ACTExperiment's admission rules, each declared once (act_trainer.rules says how).

Each `Rule` holds its CEL (what the API server runs: crd.py emits it into the CRD), the same
predicate in Python (what `actjob validate`, `actjob run` and the operator run: api.py applies it),
one message and the field it names. The rules of the settings the stage configs share (collect's
M <= K, GRPO batches, the rollout server, URIs) are declared in act_trainer.rules.

Why a Python predicate beside the CEL rather than cel-python in process: cel-python needs
google-re2 (C++) and pendulum (Rust) in the operator image, for one-line predicates. The parity
tests (tests/unit/test_rule_parity.py in process, tests/integration/test_crd_kubelite.py on the
API server) hold the two equal over the static-mistakes table and generated specs.

Two drifts this fixed (the CEL was the wrong side both times): the policy's expert trajectories
fall back to the warm-up's expert.jsonl (stages.expert_uri), so a warm-up is a source of them; and
a warm-up alone is something to do (it makes pi0, which is registered as the job's model and can
be the model.uri of later ACTJobs, as an ACTExperiment's shared child does).
"""

from __future__ import annotations

from pydantic.alias_generators import to_snake

from act_trainer.contract import EARLY_EXPERIENCE, ENV_FACTS, URI_SCHEMES
from act_trainer.rules import Rule, declare, uri_rules

# Well-known credential variables: refused in spec.pod.env unless from a Secret (an ACTJob is readable
# by anyone who can list ACTJobs, and a value would land in plaintext in every stage Job). Extend with care.
SECRET_ENV_NAMES = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME",
    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "WANDB_API_KEY",
    "OPENAI_API_KEY", "AZURE_STORAGE_KEY", "AZURE_STORAGE_CONNECTION_STRING", "GOOGLE_APPLICATION_CREDENTIALS",
    "DATABRICKS_TOKEN",
)
SECRET_ENV_MESSAGE = ("must not carry credentials but by reference to a Secret (a value is stored in plaintext "
                      "in the ACTJob and every stage Job, a ConfigMap's in the ConfigMap): write - name: HF_TOKEN, "
                      "valueFrom: {secretKeyRef: {name: SECRET, key: KEY}}; S3 keys go in the Secret named by "
                      "spec.storage.s3.credentialsSecret and MLflow credentials in the one named by "
                      "spec.tracking.credentialsSecret")


def cel_list(values) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


# --- URIs -------------------------------------------------------------------------------------

declare("ModelSpec", *uri_rules(URI_SCHEMES + ("tiny://", "pkg://"), allow_path=True), field="uri")
declare("ExpertSpec", *uri_rules(URI_SCHEMES, allow_path=True), field="uri")
declare("StorageSpec", *uri_rules(URI_SCHEMES, allow_path=False), Rule(
    "storage.root-absolute", "!self.startsWith('file://') || self.startsWith('file:///')",
    lambda v: not v.startswith("file://") or v.startswith("file:///"),
    "a relative file:// root means nothing on a cluster (stage pods share no working directory): "
    "use s3://BUCKET/prefix, or file:///absolute/path on a volume every stage pod mounts",
    local=False), field="root")  # `actjob run` resolves a relative root against its working directory
declare("CollectStage", *uri_rules(URI_SCHEMES, allow_path=False), field="reuse")
declare("JudgeStage", *uri_rules(URI_SCHEMES, allow_path=False), field="reuse")

declare("PodSpec", Rule(  # a credential by reference to a Secret is what the message asks for
    "pod.env-secrets", f"!self.exists(e, e.name in {cel_list(SECRET_ENV_NAMES)} && "
                       "!(has(e.valueFrom) && has(e.valueFrom.secretKeyRef)))",
    lambda env: not any(e.name in SECRET_ENV_NAMES and not (e.value_from and e.value_from.secret_key_ref)
                        for e in env),
    f"{SECRET_ENV_MESSAGE} (refused names: {', '.join(SECRET_ENV_NAMES)})"), field="env")
declare("EnvVar", Rule(
    "pod.env.value-or-from", "!has(self.value) || !has(self.valueFrom)",
    lambda e: e.value is None or e.value_from is None,
    "set value or valueFrom, not both", ".valueFrom"))
ENV_SOURCES = ("secretKeyRef", "configMapKeyRef", "fieldRef", "resourceFieldRef")
declare("EnvVarSource", Rule(
    "pod.env.one-source", " + ".join(f"(has(self.{k}) ? 1 : 0)" for k in ENV_SOURCES) + " == 1",
    lambda s: sum(getattr(s, to_snake(k)) is not None for k in ENV_SOURCES) == 1,
    f"valueFrom takes exactly one of {', '.join(ENV_SOURCES)}"))


# --- the environment's static facts (contract.ENV_FACTS) ---------------------------------------

def _env_rules(name: str) -> list[Rule]:
    f = ENV_FACTS[name]
    when = f"self.name != '{name}' || "
    out = []
    if f.tasks:
        ids = f" (or their ids {', '.join(f.task_ids)})" if f.task_ids else ""
        out.append(Rule(f"environment.tasks[{name}]", when + f"self.tasks.all(t, t in {cel_list(f.task_names)})",
                        lambda e: e.name != name or all(t in f.task_names for t in e.tasks),
                        f"unknown {f.label} task; allowed: {', '.join(f.tasks)}{ids}", ".tasks"))
    else:
        out.append(Rule(f"environment.tasks[{name}]", when + "self.tasks.size() == 0",
                        lambda e: e.name != name or not e.tasks,
                        f"{f.label} has no task names; leave tasks empty", ".tasks"))
    if f.games:
        out.append(Rule(f"environment.game[{name}]", when + f"!has(self.game) || self.game in {cel_list(f.games)}",
                        lambda e: e.name != name or e.game is None or e.game in f.games,
                        f"unknown {f.label} game; allowed: {', '.join(f.games)}", ".game"))
        out.append(Rule(f"environment.one-game[{name}]",
                        when + "self.tasks.size() == 0 || (self.tasks.size() == 1 && self.tasks[0] == "
                               f"(has(self.game) ? self.game : '{f.default_game}'))",
                        lambda e: e.name != name or not e.tasks or (
                            len(e.tasks) == 1 and e.tasks[0] == (f.default_game if e.game is None else e.game)),
                        f"{f.label} plays one game, chosen with environment.game; leave tasks empty", ".tasks"))
    else:
        out.append(Rule(f"environment.game[{name}]", when + "!has(self.game)",
                        lambda e: e.name != name or e.game is None,
                        f"applies to textworld-express only; remove it for {name}", ".game"))
    out.append(Rule(f"environment.expert.split[{name}]", when + f"self.expert.split in {cel_list(f.splits)}",
                    lambda e: e.name != name or e.expert.split in f.splits,
                    f"unknown {f.label} split; allowed: {', '.join(f.splits)}", ".expert.split"))
    return out


for _name in ENV_FACTS:
    declare("EnvironmentSpec", *_env_rules(_name))


# --- which stages can run together (on spec) ----------------------------------------------------

_HAS_PAIRS = "self.stages.collect.enabled || has(self.stages.collect.reuse)"


def _has_pairs(s) -> bool:
    return s.stages.collect.enabled or s.stages.collect.reuse is not None


def _collects(s) -> bool:
    return s.stages.collect.enabled and s.stages.collect.reuse is None


declare("ACTJobSpec", Rule(
    "spec.storage-root", "has(self.storage) && has(self.storage.root)",
    lambda s: "storage" in s.model_fields_set and "root" in s.storage.model_fields_set,
    "storage.root is required on a cluster: s3://BUCKET/prefix, or file:///absolute/path on a volume every "
    "stage pod mounts", ".storage", local=False),  # `actjob run` has a default root (.act/storage)
    Rule("judge.needs-pairs", f"!self.stages.judge.enabled || has(self.stages.judge.reuse) || {_HAS_PAIRS}",
         lambda s: not s.stages.judge.enabled or s.stages.judge.reuse is not None or _has_pairs(s),
         "stages.judge needs contrast pairs: enable stages.collect, set stages.collect.reuse, "
         "or disable stages.judge", ".stages.judge"),
    # collect's copies, else the warm-up's expert.jsonl (stages.expert_uri)
    Rule("policy.needs-expert", f"self.stages.policy.method == 'none' || {_HAS_PAIRS} || "
                                "has(self.environment.expert.uri) || self.stages.warmup.enabled",
         lambda s: s.stages.policy.method == "none" or _has_pairs(s) or s.environment.expert.uri is not None
         or s.stages.warmup.enabled,
         "stages.policy needs expert trajectories: enable stages.collect or stages.warmup, or set "
         "environment.expert.uri", ".stages.policy"),
    Rule("stages.something-to-do", "self.stages.warmup.enabled || self.stages.collect.enabled || "
                                   "self.stages.judge.enabled || self.stages.policy.method != 'none' || "
                                   "self.stages.eval.enabled",
         lambda s: any([s.stages.warmup.enabled, s.stages.collect.enabled, s.stages.judge.enabled,
                        s.stages.policy.method != "none", s.stages.eval.enabled]),
         "stages: every stage is disabled; nothing to do", ".stages"),
    Rule("judge.early-experience-outcomes",
         "!self.stages.judge.enabled || has(self.stages.judge.reuse) || self.stages.judge.method == 'act' || "
         "!self.stages.collect.enabled || has(self.stages.collect.reuse) || self.stages.collect.recordOutcomes "
         "|| self.stages.collect.verifyAlternatives",
         lambda s: not s.stages.judge.enabled or s.stages.judge.reuse is not None or s.stages.judge.method == "act"
         or not _collects(s) or s.stages.collect.branches,
         "iwm and sr learn from what followed each alternative: set "
         "stages.collect.recordOutcomes: true", ".stages.judge.method"))


def _spec_env_rules(name: str) -> list[Rule]:
    f = ENV_FACTS[name]
    out = [Rule(f"eval.splits[{name}]", f"!self.stages.eval.enabled || self.environment.name != '{name}' || "
                                        f"self.stages.eval.splits.all(s, s in {cel_list(f.splits)})",
                lambda s: not s.stages.eval.enabled or s.environment.name != name
                or all(x in f.splits for x in s.stages.eval.splits),
                f"unknown {f.label} split; allowed: {', '.join(f.splits)}", ".stages.eval.splits")]
    if not f.branching:  # collect takes alternatives in the environment only where it replays
        for field, attr in (("verifyAlternatives", "verify_alternatives"), ("recordOutcomes", "record_outcomes")):
            out.append(Rule(f"collect.{field}[{name}]", f"!self.stages.collect.enabled || "
                            f"has(self.stages.collect.reuse) || self.environment.name != '{name}' || "
                            f"!self.stages.collect.{field}",
                            lambda s, attr=attr: not _collects(s) or s.environment.name != name
                            or not getattr(s.stages.collect, attr),
                            f"{f.label} cannot restore expert states by replay; turn {field} off for it",
                            f".stages.collect.{field}"))
    return out


for _name in ENV_FACTS:
    declare("ACTJobSpec", *_spec_env_rules(_name))


# --- ACTExperiment (experiment.py) ---------------------------------------------------------------

EARLY_EXPERIENCE_ARMS = tuple(f"{m}+il" for m in EARLY_EXPERIENCE)
_EE = f"self.arms.exists(a, a in {cel_list(EARLY_EXPERIENCE_ARMS)})"  # an Early Experience arm


def _ee_arms(x) -> bool:
    return any(a in EARLY_EXPERIENCE_ARMS for a in x.arms)


declare("ExperimentSpec", Rule(
    "experiment.eval", "self.template.stages.eval.enabled",
    lambda x: x.template.stages.eval.enabled,
    "the table is made of each arm's eval; enable template.stages.eval", ".template.stages.eval.enabled"),
    Rule("experiment.collect", "self.template.stages.collect.enabled || has(self.template.stages.collect.reuse)",
         lambda x: x.template.stages.collect.enabled or x.template.stages.collect.reuse is not None,
         "the arms share one collect (or stages.collect.reuse); do not disable template.stages.collect",
         ".template.stages.collect"),
    Rule("experiment.judge-method", "self.template.stages.judge.method == 'act'",
         lambda x: x.template.stages.judge.method == "act",
         "the arms choose the judge stage's method (act arms: act; iwm+il, sr+il: iwm, sr); leave "
         "template.stages.judge.method unset", ".template.stages.judge.method"),
    Rule("experiment.early-experience-pairs",
         f"!{_EE} || self.template.stages.collect.enabled || !has(self.template.stages.collect.reuse)",
         lambda x: not _ee_arms(x) or x.template.stages.collect.enabled or x.template.stages.collect.reuse is None,
         "iwm+il and sr+il need pairs with recorded outcomes; reused pairs (template.stages.collect.reuse) must "
         "have been collected with recordOutcomes: true - enable template.stages.collect instead", ".arms"),
    *[Rule(f"experiment.early-experience-env[{name}][{arm}]",
           f"self.template.environment.name != '{name}' || !('{arm}' in self.arms)",
           lambda x, name=name, arm=arm: x.template.environment.name != name or arm not in x.arms,
           f"{arm} learns from what followed each alternative, and {f.label} cannot restore expert states by "
           f"replay; drop {arm}", ".arms")
      for name, f in ENV_FACTS.items() if not f.branching for arm in EARLY_EXPERIENCE_ARMS])
