"""Small pure helpers both planes use: the operator imports this module, so it stays on the
standard library (no torch, no pydantic)."""

from __future__ import annotations

import os
from collections.abc import Mapping

# MLflow rejects longer param values (mlflow.utils.validation.MAX_PARAM_VAL_LENGTH).
MAX_PARAM_LENGTH = 6000

# Where credentials live: the environment, never a config or a spec. Param and tag values are
# checked against these exact variables (not against name fragments such as "token": that
# dropped `max_new_tokens`).
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                  "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "HF_TOKEN")
# A credential this long is scrubbed wherever it occurs in a value; a shorter one only when it
# is the whole value (a substring match on a short string would mangle innocent values).
MIN_SCRUB_LENGTH = 8
SCRUBBED = "***"


def is_number(value: object) -> bool:
    """An int or float that is not a bool: what MLflow and the ACTJob status take as a metric."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def numeric_metrics(metrics: Mapping) -> dict[str, float]:
    """The numeric entries of ``metrics`` as floats, bools as 0.0/1.0 (e.g. ``resumed``: whether an
    attempt continued from a checkpoint, worth seeing in the ACTJob status and MLflow, which both
    hold numbers only); anything else (text, None) is left out."""
    return {k: float(v) for k, v in metrics.items() if is_number(v) or isinstance(v, bool)}


def flatten(d: Mapping, prefix: str = "") -> dict[str, object]:
    """Leaves of a nested dict under dotted keys: ``{"a": {"b": 1}} -> {"a.b": 1}``."""
    out: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def credentials() -> list[str]:
    """The credential values present in this process's environment."""
    return [v for v in (os.environ.get(n) for n in CREDENTIAL_ENV) if v]


def scrub(text: str, secrets: list[str] | None = None) -> str:
    """``text`` with every credential of the environment (or ``secrets``) replaced by ``***``."""
    for secret in credentials() if secrets is None else secrets:
        if text == secret:
            return SCRUBBED
        if len(secret) >= MIN_SCRUB_LENGTH and secret in text:
            text = text.replace(secret, SCRUBBED)
    return text


def mlflow_params(d: Mapping) -> dict[str, str]:
    """A nested dict (a config or spec dump) as MLflow params: every leaf under its dotted key,
    as text (what MLflow stores), credentials scrubbed, cut to MLflow's length limit."""
    secrets = credentials()
    return {k: scrub(str(v), secrets)[:MAX_PARAM_LENGTH] for k, v in flatten(d).items()}
