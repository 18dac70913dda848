"""What the operator process shares between the handlers of its resources (handlers.py for
ACTJobs, experiment_handlers.py for ACTExperiments): its settings, read when kopf starts it; a
lock per object reconciled; how an Event is posted; kopf's own configuration (the startup
handler). Handler modules import this one and never each other's internals, so kopf may run
them as `kopf run -m act_operator.handlers` (which imports experiment_handlers) or each named.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict

import kopf

from act_operator import kube, metrics, tracking
from act_operator.settings import OperatorSettings

SETTINGS = OperatorSettings()  # read again when the operator starts (configure): its environment counts
LOCKS: dict[str, threading.Lock] = defaultdict(threading.Lock)  # one per object: "ns/name", "experiment:ns/name"
RETRY_S = 5  # a reconcile that raised (API or MLflow hiccup) is tried again this soon, not kopf's 60 s


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    global SETTINGS
    from kubernetes import config

    SETTINGS = OperatorSettings()

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    kube.reset_clients()
    # progress in annotations: the ACTJob status schema is ours, kopf must not write into it
    settings.persistence.progress_storage = ProgressStorage(prefix="act-operator.io")
    # the last handled spec in memory, not in an annotation: one patch (and one watch event) less per
    # handled change. Every handler calls the same level-triggered reconcile, so what kopf loses on a
    # restart (it sees every ACTJob as new: on.create instead of on.resume) changes nothing
    settings.persistence.diffbase_storage = DIFFBASE
    settings.posting.level = logging.WARNING
    # kopf waits this long for more events of one object before handling them (0.1 s by default):
    # shorter keeps the hand-off between stages quick
    settings.batching.batch_window = 0.01
    settings.execution.max_workers = SETTINGS.max_concurrent_reconciles
    tracking.fail_fast()  # an MLflow outage is reported in seconds, not after minutes of client retries
    metrics.serve(SETTINGS.port)


class ProgressStorage(kopf.AnnotationsProgressStorage):
    """kopf's per-handler progress in annotations (written only while a handler is retried) without
    the `<prefix>/kopf-managed` marker kopf adds to every object it handles: a patch per ACTJob that
    only tells other kopf operators the prefix is taken."""

    def _store_marker(self, prefix, patch, body) -> None:
        pass


class MemoryDiffBaseStorage(kopf.DiffBaseStorage):
    """kopf's "last handled configuration" of each object, kept in this process (by uid)."""

    def __init__(self):
        super().__init__()
        self.essences: dict[str, dict] = {}

    def build(self, *, body, extra_fields=None):
        """kopf's essence (spec and the like, labels, annotations, the extra fields), built from only
        the stanzas it keeps: kopf deep-copies the whole body first, status and managedFields (most of
        an ACTJob) included, on every event, then drops them."""
        keep = {"status"} if any(f and f[0] == "status" for f in extra_fields or ()) else set()
        meta = body.get("metadata") or {}
        slim = {k: v for k, v in body.items() if k not in ("metadata", "status") or k in keep}
        slim["metadata"] = {k: meta[k] for k in ("labels", "annotations") if k in meta}
        return super().build(body=slim, extra_fields=extra_fields)

    def fetch(self, *, body):
        return self.essences.get(body.get("metadata", {}).get("uid"))

    def store(self, *, body, patch, essence) -> None:
        self.essences[body.get("metadata", {}).get("uid")] = essence

    def forget(self, uid: str | None) -> None:
        self.essences.pop(uid, None)


DIFFBASE = MemoryDiffBaseStorage()


def post_event(body: dict, reason: str, message: str, type_: str = "Normal") -> None:
    """An event on the object, the kopf way: queued and posted in the background (a failure to
    post is logged, never fails the reconcile), the message truncated to what an event holds."""
    kopf.event(body, type=type_, reason=reason, message=message)


def plain(body) -> dict:
    """A kopf Body as the plain JSON it came as."""
    import json

    return json.loads(json.dumps(dict(body), default=dict))
