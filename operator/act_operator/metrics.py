"""Prometheus metrics of the operator: ACTJobs by phase, reconcile and stage durations."""

from __future__ import annotations

import threading

from prometheus_client import Gauge, Histogram, start_http_server

ACTJOBS = Gauge("act_actjobs", "ACTJobs known to this operator, by phase", ["phase"])
RECONCILE_SECONDS = Histogram("act_reconcile_seconds", "Time to reconcile one ACTJob")
STAGE_SECONDS = Histogram("act_stage_seconds", "Stage duration from Job creation to its result", ["stage"],
                          buckets=(10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400))

_phases: dict[str, str] = {}
_lock = threading.Lock()
_served = False


def observe_phase(namespace: str, name: str, phase: str) -> None:
    with _lock:
        _phases[f"{namespace}/{name}"] = phase
        _publish()


def forget(namespace: str, name: str) -> None:
    """A deleted ACTJob no longer counts in any phase."""
    with _lock:
        if _phases.pop(f"{namespace}/{name}", None) is not None:
            _publish()


def _publish() -> None:
    counts: dict[str, int] = {}
    for p in _phases.values():
        counts[p] = counts.get(p, 0) + 1
    for p in ("Pending", "Running", "Suspended", "Succeeded", "Failed"):
        ACTJOBS.labels(p).set(counts.get(p, 0))


def serve(port: int) -> None:
    global _served
    if port and not _served:
        start_http_server(port)
        _served = True
