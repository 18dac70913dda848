"""Admission rules, each declared once: where it sits, its CEL, the same predicate in Python, its message.

A `Rule` sits on a model (by class name: the rules of a class hold for its subclasses too), or on
one field of it. The CRD (act_operator.crd) emits each rule as an `x-kubernetes-validations` entry
on that model's (or field's) schema node, so `kubectl apply` refuses with `message` at
`fieldPath`; pydantic applies the same rules (`enforce`, from the `_admission` validator of the
contract's `Settings` and of the ACTJob's models) and names the same field with the same message.
Rules of the settings the stage configs share live here; the ACTJob's and ACTExperiment's own
rules live in act_operator.rules, which declares them into the same table.

Why a Python predicate beside the CEL, rather than evaluating the CEL in process (cel-python):
cel-python brings google-re2 (a C++ extension), pendulum (Rust) and lark into every image that
admits a spec (the operator's and the trainer's), for expressions that are a line of Python each.
So each rule holds both, and tests/unit/test_rule_parity.py proves them equivalent: every CEL
rule evaluated with cel-python (and, in tests/integration/test_crd_kubelite.py, by the API
server) over the static-mistakes table and a few hundred generated specs refuses exactly what the
predicates refuse, with the same messages at the same fields.

Import-light (no project imports): act_trainer.contract applies these rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic.alias_generators import to_snake


@dataclass(frozen=True)
class Rule:
    """One admission rule. `cel` and `check` say the same over the node the rule sits on: `self` in
    CEL is the wire object (camelCase, defaults filled in), `check` gets the pydantic model (or the
    field's value). `field_path`: where the refusal points, relative to that node (".a.b")."""

    id: str
    cel: str
    check: Callable[[Any], bool]
    message: str
    field_path: str = ""
    local: bool = True  # False: the API server's only (`actjob run` resolves it otherwise)

    def x_validation(self) -> dict:
        """The CRD's x-kubernetes-validations entry."""
        return {"rule": self.cel, "message": self.message} | ({"fieldPath": self.field_path} if self.field_path else {})


@dataclass(frozen=True)
class Violation:
    rule: Rule
    path: str  # relative to the model that found it: its field (for a field's rule) and the rule's field_path

    def __str__(self) -> str:
        return f"{self.path}: {self.rule.message}" if self.path else self.rule.message


class RuleError(ValueError):
    """Rules a model breaks. Pydantic keeps the exception (ctx['error']): act_operator.api.problems
    joins each violation's path to where the model sits in the spec."""

    def __init__(self, violations: list[Violation]):
        self.violations = violations
        super().__init__("\n".join(str(v) for v in violations))


# (class name, wire field name or None) -> its rules, in declaration order
RULES: dict[tuple[str, str | None], list[Rule]] = {}


def declare(on: str, *rules: Rule, field: str | None = None) -> None:
    RULES.setdefault((on, field), []).extend(rules)


def rules_of(cls: type) -> dict[str | None, list[Rule]]:
    """The rules of a model class and of its fields (field wire name, or None for the model), its
    bases' included."""
    names = [c.__name__ for c in reversed(cls.__mro__)]
    out: dict[str | None, list[Rule]] = {}
    for (on, field), rules in RULES.items():
        if on in names:
            out.setdefault(field, []).extend(rules)
    return out


def violations(model, *, local_only: bool = True) -> list[Violation]:
    """The rules `model` breaks (its own node's; nested models check their own)."""
    found = []
    for field, rules in rules_of(type(model)).items():
        if field is None:
            node, where = model, ""
        else:
            node, where = getattr(model, to_snake(field)), field
            if node is None:  # as on the server: an unset (or null) field's rules do not run
                continue
        for rule in rules:
            if (rule.local or not local_only) and not rule.check(node):
                path = where + rule.field_path if where else rule.field_path.removeprefix(".")
                found.append(Violation(rule, path))
    return found


def enforce(model):
    """Pydantic's side: raise RuleError naming every rule `model` breaks."""
    if found := violations(model):
        raise RuleError(found)
    return model


# --- the settings the stage configs share (act_trainer.contract) -------------------------------

def _grpo_batch(on: str, method: str) -> None:
    declare(on, Rule(
        f"{on}.grpo-batch",
        f"self.method != '{method}' || (self.batchSize * self.nodes * self.processesPerNode) % self.groupSize == 0",
        lambda s: s.method != method or (s.batch_size * s.nodes * s.processes_per_node) % s.group_size == 0,
        # a static message: a messageExpression with string(int) blows the server's CEL cost estimate
        "batchSize x nodes x processesPerNode must be a multiple of groupSize (GRPO splits each global batch "
        "into whole groups); change batchSize or groupSize"))


declare("CollectSettings", Rule(
    "collect.max-alternatives", "self.maxAlternatives <= self.samples",
    lambda s: s.max_alternatives <= s.samples,
    "maxAlternatives cannot exceed samples; raise samples or lower maxAlternatives", ".maxAlternatives"))
declare("RolloutSettings", Rule(
    "rollout.server-gpus", "self.mode != 'server' || self.serverGpus >= 1",
    lambda r: r.mode != "server" or r.server_gpus >= 1,
    "rollout.mode 'server' needs a GPU for the vLLM server: set rollout.serverGpus >= 1, or use rollout.mode: "
    "colocate", ".serverGpus"), Rule(
    "rollout.tensor-parallel", "self.mode != 'server' || self.tensorParallelSize <= self.serverGpus",
    lambda r: r.mode != "server" or r.tensor_parallel_size <= r.server_gpus,
    "rollout.tensorParallelSize cannot exceed rollout.serverGpus in server mode", ".tensorParallelSize"))
_grpo_batch("JudgeSettings", "act")
declare("JudgeSettings", Rule(
    "judge.both-orders-method", "self.method == 'act' || !self.bothOrders",
    lambda s: s.method == "act" or not s.both_orders,
    "applies to the ACT judge (method act) only; turn it off for the Early Experience methods",
    ".bothOrders"), Rule(
    "judge.both-orders-batch",
    "!self.bothOrders || self.method != 'act' || (self.batchSize * self.nodes * self.processesPerNode) % "
    "(2 * self.groupSize) == 0",
    lambda s: not s.both_orders or s.method != "act"
    or (s.batch_size * s.nodes * s.processes_per_node) % (2 * s.group_size) == 0,
    "puts both orders of a pair in one step: batchSize x nodes x processesPerNode must be a multiple "
    "of 2 x groupSize; change batchSize or groupSize", ".bothOrders"))
_grpo_batch("PolicySettings", "rl")


def uri_rules(schemes: tuple[str, ...], *, allow_path: bool) -> list[Rule]:
    """A URI field: one of `schemes` (or a plain local path, where allowed), and s3:// with a bucket."""
    allowed = ", ".join(schemes) + (" or a local path" if allow_path else "")
    cel = " || ".join(f"self.startsWith('{s}')" for s in schemes)
    if allow_path:
        cel += " || (self != '' && !self.contains('://'))"
    return [
        Rule(f"uri.scheme[{allowed}]", cel,
             lambda v: v.startswith(schemes) or (allow_path and v != "" and "://" not in v),
             f"unsupported URI; use one of {allowed}"),
        Rule("uri.s3-bucket", "!self.startsWith('s3://') || self.matches('^s3://[^/]+')",
             lambda v: not v.startswith("s3://") or v[len("s3://"):].split("/")[0] != "",
             "s3:// URI has no bucket; write s3://BUCKET/prefix"),
    ]


# a reasoning benchmark's JSONL (contract.ReasoningBenchmark): what an expert file may be
declare("ReasoningBenchmark", *uri_rules(("s3://", "file://"), allow_path=True), field="data")


def check_value(value: str, rules: list[Rule]) -> str:
    """A field validator's side of field rules: the first broken rule's message (pydantic names the field)."""
    for rule in rules:
        if not rule.check(value):
            raise ValueError(rule.message)
    return value
