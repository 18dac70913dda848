"""ACTExperiment: the paper's Table 1 as one resource, arms x seeds over shared stages.

An ACTExperiment names arms (``il``, ``act+il``, ``rl``, ``act+rl``, ``act``; the Early Experience
baselines ``iwm+il`` and ``sr+il``; and ``base``: the initial policy's own eval) and seeds over one
ACTJob template, and is carried out as ordinary ACTJobs, its children, wired together with ``reuse``:

    <name>-pairs          collect once (after the warm-up, if the template has one), shared by
                          every arm, which all start from its initial policy (its eval is ``base``)
    <name>-act-s<seed>    one judge per seed, shared by the ACT arms (its eval is ``act``)
    <name>-il-s<seed>     IL from the base model          <name>-act-il-s<seed>  IL from that seed's judge
    <name>-rl-s<seed>     RL from the base model          <name>-act-rl-s<seed>  RL from that seed's judge
    <name>-iwm-il-s<seed> implicit world modelling, then IL   <name>-sr-il-s<seed>  self-reflection, then IL
                          (Early Experience: the judge stage with method iwm / sr, on the same pairs,
                          which then record what followed each action: stages.collect.recordOutcomes)

Why children and not a bigger ACTJob: every arm stays an ordinary ACTJob (its status, events,
logs, MLflow lineage and registered model are the ones users already know), the ACTJob planner
stays one chain of stages, and on a cluster the arms' Jobs run at once for free. Kubeflow Katib
does the same with Experiments and Trials.

This module is pure: the children, their specs from the template and their dependencies'
outputs, the planner (what to create or suspend now) and the status (phase, per-arm table,
best arm) from what is observed. Executors (local.py, handlers.py) do the I/O.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator

from act_operator.api import DNS_LABEL_PATTERN, ACTJob, ACTJobSpec, Model, ObjectMeta, SpecError, problems
from act_trainer import contract as K
from act_trainer.stagedefs import COLLECT, EVAL, JUDGE, POLICY, WARMUP

KIND = "ACTExperiment"
PLURAL = "actexperiments"
ARMS = ("base", "act", "il", "act+il", "rl", "act+rl", "iwm+il", "sr+il")
Arm = Literal["base", "act", "il", "act+il", "rl", "act+rl", "iwm+il", "sr+il"]
EARLY_EXPERIENCE = {f"{m}+il": m for m in K.EARLY_EXPERIENCE}  # arm -> the judge stage's method
LABELS = {"base": "pi0 (before ACT)", "act": "ACT only", "il": "IL", "act+il": "IL w/ ACT", "rl": "RL",
          "act+rl": "RL w/ ACT", "iwm+il": "IL w/ IWM", "sr+il": "IL w/ SR"}  # the paper's row names (report.PAPER)
MAX_NAME = 28  # + "-act-rl-s99" / "-iwm-il-s99" stays within an ACTJob name's 40 characters
MAX_SEEDS = 10
LABEL = "act-operator.io/experiment"


# --- the resource ------------------------------------------------------------------------------

class ExperimentSpec(Model):
    template: ACTJobSpec = Field(description="The ACTJob every child starts from: model, environment, storage, "
                                             "tracking and stage settings. Which stages run is the arm's.")
    arms: list[Arm] = Field(default_factory=lambda: ["il", "act+il", "rl", "act+rl", "act"], min_length=1,
                            max_length=len(ARMS), description="Rows of the table: il, act+il, rl, act+rl, act "
                            "(the judge alone), the Early Experience baselines iwm+il and sr+il (implicit world "
                            "modelling or self-reflection, then IL), and base (the initial policy's eval).")
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0], min_length=1, max_length=MAX_SEEDS,
                             description="One judge and one policy per arm for each seed; rows are mean ± std.")
    metric: str | None = Field(None, description="Eval metric that picks the best arm, e.g. valid_seen/success_rate "
                                                 "(default: success_rate on the first eval split).")
    suspend: bool = Field(False, description="Suspend every running child and start no new one.")

    @field_validator("arms", "seeds")
    @classmethod
    def _unique(cls, v: list) -> list:
        if len(set(v)) != len(v):
            raise ValueError(f"{v}: each value at most once")
        return v

    def best_metric(self) -> str:
        return self.metric or f"{self.template.stages.eval.splits[0]}/success_rate"


class ExperimentMeta(ObjectMeta):
    name: str = Field(min_length=1, max_length=MAX_NAME, pattern=DNS_LABEL_PATTERN,
                      description=f"DNS label; at most {MAX_NAME} characters so that every child's name fits.")


ChildPhase = Literal["NotCreated", "Blocked", "Pending", "Running", "Suspended", "Succeeded", "Failed"]


class ChildStatus(Model):
    name: str
    arm: str | None = None
    seed: int | None = None
    phase: ChildPhase = "NotCreated"
    message: str | None = None


class ArmRow(Model):
    arm: str
    label: str
    seeds: int = 0
    mean: dict[str, float] = Field(default_factory=dict)
    std: dict[str, float] = Field(default_factory=dict)


ExperimentPhase = Literal["Pending", "Running", "Suspended", "Succeeded", "Failed"]


class ExperimentStatus(Model):
    phase: ExperimentPhase = "Pending"
    children: dict[str, ChildStatus] = Field(default_factory=dict)
    arms: list[ArmRow] = Field(default_factory=list)
    best_arm: str | None = None
    message: str | None = None
    mlflow_run_id: str | None = None


class ACTExperiment(Model):
    api_version: Literal["act-operator.io/v1alpha1"] = "act-operator.io/v1alpha1"
    kind: Literal["ACTExperiment"] = KIND
    metadata: ExperimentMeta
    spec: ExperimentSpec
    status: ExperimentStatus = Field(default_factory=ExperimentStatus)


def parse_experiment(data: dict) -> ACTExperiment:
    try:
        return ACTExperiment.model_validate(dict(data))
    except ValidationError as err:
        raise SpecError(problems(err)) from None


# --- the children ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Child:
    key: str                    # "pairs", "act-s0", "il-s0", "act-il-s0", ...
    arm: str | None             # the row its eval fills (None: a shared stage no row asked for)
    seed: int | None
    needs: tuple[str, ...] = ()  # children whose outputs it reuses


def children(spec: ExperimentSpec) -> list[Child]:
    """Every child, dependencies first."""
    arms = set(spec.arms)
    out = [Child("pairs", "base" if "base" in arms else None, None)]
    for s in spec.seeds:
        if arms & {"act", "act+il", "act+rl"}:
            out.append(Child(f"act-s{s}", "act" if "act" in arms else None, s, ("pairs",)))
        for method in ("il", "rl"):
            if method in arms:
                out.append(Child(f"{method}-s{s}", method, s, ("pairs",)))
            if f"act+{method}" in arms:
                out.append(Child(f"act-{method}-s{s}", f"act+{method}", s, ("pairs", f"act-s{s}")))
        for arm, method in EARLY_EXPERIENCE.items():
            if arm in arms:
                out.append(Child(f"{method}-il-s{s}", arm, s, ("pairs",)))
    return out


@dataclass(frozen=True)
class Observed:
    """A child ACTJob as the executor sees it: the fields of its status the experiment reads."""
    phase: str
    suspended: bool = False
    pairs: str | None = None    # status.stages.collect.outputs.uri
    judge: str | None = None    # status.stages.judge.outputs.uri
    pi0: str | None = None      # status.stages.warmup.outputs.uri, when the template warms up
    metrics: dict[str, float] = field(default_factory=dict)  # status.stages.eval.metrics
    message: str | None = None


def observe(job: ACTJob) -> Observed:
    st = job.status.stages
    warmup = st.get(WARMUP.name)
    return Observed(job.status.phase, suspended=job.spec.suspend, pairs=st[COLLECT.name].outputs.uri,
                    judge=st[JUDGE.name].outputs.uri, pi0=warmup.outputs.uri if warmup else None,
                    metrics=dict(st[EVAL.name].metrics), message=job.status.message)


def child_name(name: str, child: Child) -> str:
    return f"{name}-{child.key}"


def child_spec(spec: ExperimentSpec, child: Child, observed: dict[str, Observed]) -> dict:
    """The child's ACTJob spec (wire form): the template with the stages of its part, fed with its
    dependencies' outputs. Only called once every dependency succeeded."""
    s = spec.template.model_dump(mode="json", by_alias=True, exclude_unset=True)  # what the user wrote, no defaults
    st = s.setdefault("stages", {})
    collect, judge, policy, evals = (st.setdefault(d.name, {}) for d in (COLLECT, JUDGE, POLICY, EVAL))
    s["suspend"] = False
    if child.key == "pairs":
        judge["enabled"] = False
        policy["method"] = "none"
        evals["enabled"] = child.arm is not None
        if any(a in EARLY_EXPERIENCE for a in spec.arms):  # the Early Experience arms learn from the outcomes
            collect["recordOutcomes"] = True
        return s
    s["seed"] = child.seed
    collect["reuse"] = observed["pairs"].pairs
    if pi0 := observed["pairs"].pi0:  # the template warms up: once, in the shared child; every arm starts from pi0
        s["model"]["uri"] = pi0
        st.setdefault(WARMUP.name, {})["enabled"] = False
    kind = child.key.rsplit("-s", 1)[0]  # act | il | rl | act-il | act-rl
    if kind == "act":
        policy["method"] = "none"
        evals["enabled"] = child.arm is not None
        return s
    method = kind.rpartition("-")[2]
    policy["method"] = method
    if child.arm in EARLY_EXPERIENCE:  # the judge stage in its Early Experience role, on the shared pairs
        judge.update(enabled=True, method=EARLY_EXPERIENCE[child.arm])
    elif kind.startswith("act-"):
        judge["reuse"] = observed[f"act-s{child.seed}"].judge
    else:
        judge["enabled"] = False
    return s


# --- the planner -------------------------------------------------------------------------------

@dataclass(frozen=True)
class CreateChild:
    key: str
    name: str
    spec: dict
    labels: dict


@dataclass(frozen=True)
class SetSuspend:
    name: str
    suspend: bool


FINISHED = ("Succeeded", "Failed")


def plan(name: str, spec: ExperimentSpec, observed: dict[str, Observed]) -> list:
    """What to do now, level-triggered: create each missing child whose dependencies succeeded
    (never while suspended), and make every unfinished child's suspend follow the experiment's."""
    actions: list = []
    for child in children(spec):
        seen = observed.get(child.key)
        if seen is None:
            if not spec.suspend and all(observed.get(d) and observed[d].phase == "Succeeded" for d in child.needs):
                labels = {LABEL: name, "act-operator.io/arm": (child.arm or "shared").replace("+", "-"),
                          **({} if child.seed is None else {"act-operator.io/seed": str(child.seed)})}
                actions.append(CreateChild(child.key, child_name(name, child), child_spec(spec, child, observed),
                                           labels))
        elif seen.phase not in FINISHED and seen.suspended != spec.suspend:
            actions.append(SetSuspend(child_name(name, child), spec.suspend))
    return actions


# --- the status --------------------------------------------------------------------------------

def _blocked(child: Child, observed: dict[str, Observed], kids: dict[str, Child]) -> str | None:
    """The failed dependency that keeps `child` from ever starting, if any."""
    for d in child.needs:
        seen = observed.get(d)
        if seen is not None and seen.phase == "Failed":
            return d
        if seen is None and (why := _blocked(kids[d], observed, kids)):
            return why
    return None


def status(name: str, spec: ExperimentSpec, observed: dict[str, Observed], mlflow_run_id: str | None = None
           ) -> ExperimentStatus:
    """Phase, children and the per-arm table. The phase: Succeeded when every child succeeded;
    Failed once nothing can run any more and a child failed (the other arms went on and their rows
    stay in the table); Suspended while suspended with children unfinished; else Running."""
    kids = {c.key: c for c in children(spec)}
    rows: dict[str, list[dict[str, float]]] = {a: [] for a in spec.arms}
    out: dict[str, ChildStatus] = {}
    live = failed = 0
    for key, child in kids.items():
        seen = observed.get(key)
        cs = ChildStatus(name=child_name(name, child), arm=child.arm, seed=child.seed)
        if seen is not None:
            cs.phase, cs.message = seen.phase, seen.message
            if seen.phase == "Succeeded" and child.arm:
                rows[child.arm].append(seen.metrics)
            failed += seen.phase == "Failed"
            live += seen.phase not in FINISHED
        elif dep := _blocked(child, observed, kids):
            cs.phase, cs.message = "Blocked", f"{child_name(name, kids[dep])} failed"
        else:
            live += 1
        out[key] = cs
    table = [arm_row(a, rows[a]) for a in spec.arms]
    metric = spec.best_metric()
    scored = [r for r in table if metric in r.mean and r.arm != "base"]
    best = max(scored, key=lambda r: r.mean[metric]).label if scored else None
    if live == 0:
        phase = "Failed" if failed else "Succeeded"
    else:
        phase = "Suspended" if spec.suspend else ("Running" if observed else "Pending")
    blocked = [c.name for c in out.values() if c.phase == "Blocked"]
    bad = [c.name for c in out.values() if c.phase == "Failed"]
    message = (f"failed: {', '.join(bad)}" + (f"; not run: {', '.join(blocked)}" if blocked else "")) if bad else None
    return ExperimentStatus(phase=phase, children=out, arms=table, best_arm=best, message=message,
                            mlflow_run_id=mlflow_run_id)


def arm_row(arm: str, seeds: list[dict[str, float]]) -> ArmRow:
    keys = sorted({k for m in seeds for k in m})
    mean, std = {}, {}
    for k in keys:
        values = [m[k] for m in seeds if k in m]
        mean[k] = statistics.fmean(values)
        std[k] = statistics.stdev(values) if len(values) > 1 else 0.0
    return ArmRow(arm=arm, label=LABELS[arm], seeds=len(seeds), mean=mean, std=std)
