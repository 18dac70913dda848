"""Readers of Jobs and Pods, pod failure policy matching and completed-index intervals, as
in kube-controller-manager 1.36 `pkg/controller/job` (pod_failure_policy.go,
indexed_job_utils.go). Pure; used by jobs.py.
"""

from __future__ import annotations

from datetime import datetime

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"  # annotation and (PodIndexLabel) label
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
# --- small readers ---------------------------------------------------------------------------

def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(s: str | None) -> datetime | None:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ") if s else None


def phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def deleting(pod: dict) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_active(pod: dict) -> bool:  # controller.FilterActivePods
    return phase(pod) not in ("Succeeded", "Failed") and not deleting(pod)


def is_terminating(pod: dict) -> bool:  # controller.CountTerminatingPods
    return deleting(pod) and phase(pod) not in ("Succeeded", "Failed")


def is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def has_finalizer(pod: dict) -> bool:
    return TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or [])


def completion_index(pod: dict) -> int:
    v = (pod["metadata"].get("annotations") or {}).get(INDEX_KEY)
    try:
        return int(v) if v is not None and int(v) >= 0 else -1
    except ValueError:
        return -1


def condition(job: dict, type_: str) -> dict | None:
    return next((c for c in (job.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


def is_finished(job: dict) -> bool:
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


class Spec:
    """The Job spec with the API server's defaults (kubelite applies none)."""

    def __init__(self, job: dict):
        s = job.get("spec") or {}
        self.parallelism = s.get("parallelism")
        self.completions = s.get("completions")
        if self.parallelism is None and self.completions is None:
            self.parallelism = self.completions = 1
        elif self.parallelism is None:
            self.parallelism = 1
        self.backoff_limit = s.get("backoffLimit", 6)
        self.indexed = s.get("completionMode") == "Indexed"
        self.suspend = bool(s.get("suspend"))
        self.policy = s.get("podFailurePolicy")
        self.deadline = s.get("activeDeadlineSeconds")
        self.template = s.get("template") or {}
        # podReplacementPolicy defaults to Failed with a podFailurePolicy, else TerminatingOrFailed
        self.only_failed = s.get("podReplacementPolicy", "Failed" if self.policy else "TerminatingOrFailed") == "Failed"


def is_failed(pod: dict, spec: Spec) -> bool:
    if phase(pod) == "Failed":
        return True
    return not spec.only_failed and deleting(pod) and phase(pod) != "Succeeded"


# --- pod failure policy (pod_failure_policy.go) ----------------------------------------------

def _exit_code_match(pod: dict, req: dict) -> dict | None:
    st = pod.get("status") or {}
    for statuses in (st.get("containerStatuses") or [], st.get("initContainerStatuses") or []):
        for cs in statuses:
            term = (cs.get("state") or {}).get("terminated")
            if not term or (req.get("containerName") and req["containerName"] != cs["name"]):
                continue
            code = term.get("exitCode", 0)
            if code == 0:
                continue
            inside = code in req.get("values") or []
            if (req.get("operator") == "In" and inside) or (req.get("operator") == "NotIn" and not inside):
                return cs
    return None


def _condition_match(pod: dict, patterns: list[dict]) -> dict | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        for p in patterns:
            if c.get("type") == p.get("type") and c.get("status") == p.get("status", "True"):
                return c
    return None


def match_policy(policy: dict | None, pod: dict) -> tuple[str | None, bool, str | None]:
    """(FailJob message or None, counts against backoffLimit, matched action or None).
    The first matching rule wins."""
    if not policy:
        return None, True, None
    ns, name = pod["metadata"].get("namespace"), pod["metadata"]["name"]
    for i, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        if rule.get("onExitCodes") is not None:
            cs = _exit_code_match(pod, rule["onExitCodes"])
            if cs is None:
                continue
            msg = (f"Container {cs['name']} for pod {ns}/{name} failed with exit code "
                   f"{cs['state']['terminated']['exitCode']} matching {action} rule at index {i}")
        elif rule.get("onPodConditions") is not None:
            c = _condition_match(pod, rule["onPodConditions"])
            if c is None:
                continue
            msg = f"Pod {ns}/{name} has condition {c['type']} matching {action} rule at index {i}"
        else:
            continue
        if action == "Ignore":
            return None, False, action
        if action == "Count":
            return None, True, action
        if action == "FailJob":
            return msg, True, action
    return None, True, None


# --- completed indexes (indexed_job_utils.go) ------------------------------------------------

def parse_indexes(s: str | None, completions: int) -> set[int]:
    out: set[int] = set()
    for part in (s or "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            continue
        out.update(range(first, min(last, completions - 1) + 1))
    return out


def format_indexes(indexes: set[int]) -> str:
    """Intervals as the controller writes them: "0-2,4,6,7" (two in a row are listed)."""
    parts, ordered, i = [], sorted(indexes), 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        first, last = ordered[i], ordered[j]
        parts.append(str(first) if first == last else f"{first},{last}" if last == first + 1 else f"{first}-{last}")
        i = j + 1
    return ",".join(parts)


