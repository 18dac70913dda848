"""kopf wiring of ACTExperiments: reconcile on the experiment's own changes and on its child
ACTJobs' events. The decisions are experiment.plan's; each child is an ordinary ACTJob that
handlers.py runs. What the two share (settings, locks, Events, kopf's configuration) is
runtime.py's; handlers.py imports this module, so `kopf run -m act_operator.handlers` serves both."""

from __future__ import annotations

import logging

import kopf

from act_operator import api as A
from act_operator import experiment as E
from act_operator import kube, policy, runtime, tracking

log = logging.getLogger("act_operator.experiment")


def reconcile_experiment(namespace: str, name: str) -> None:
    with runtime.LOCKS[f"experiment:{namespace}/{name}"]:
        for _ in range(5):  # a status conflict: read again and re-plan
            try:
                return _reconcile_once(namespace, name)
            except kube.Conflict as e:
                log.info("%s; retrying", e)
        raise kopf.TemporaryError(f"{namespace}/{name}: status kept changing under the reconcile", delay=1)


def _reconcile_once(namespace: str, name: str) -> None:
    body = kube.read_experiment(namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    rv = body["metadata"]["resourceVersion"]
    before = body.get("status") or {}
    try:
        exp = E.parse_experiment(body)
    except A.SpecError as e:  # what the CRD schema could not reject
        status = E.ExperimentStatus(phase="Failed", message="invalid spec: " + "; ".join(e.problems))
        if before.get("phase") != "Failed":
            kube.patch_experiment_status(namespace, name, status.model_dump(mode="json", by_alias=True), rv)
            runtime.post_event(body, "InvalidSpec", status.message, "Warning")
        return
    if exp.status.phase in ("Succeeded", "Failed"):
        return
    settings = runtime.SETTINGS
    if problems := policy.refusals(exp.spec.template.pod, settings.allowed_images, settings.allowed_service_accounts,
                                   "spec.template.pod"):
        # as for an ACTJob (handlers._refused): Failed for good, before any child; children made under
        # an earlier policy are refused one by one by their own reconcile
        message = policy.refusal_message(problems)
        status = exp.status.model_copy(update={"phase": "Failed", "message": message})
        kube.patch_experiment_status(namespace, name, status.model_dump(mode="json", by_alias=True), rv)
        runtime.post_event(body, "PolicyViolation", message, "Warning")
        return
    observed = {}
    for child in kube.experiment_children(namespace, name):
        key = child["metadata"]["name"].removeprefix(f"{name}-")
        try:
            observed[key] = E.observe(A.parse_actjob(child))
        except A.SpecError as e:
            observed[key] = E.Observed("Failed", message=f"invalid child: {e}")
    uri = runtime.SETTINGS.tracking_uri(exp.spec.template.tracking.uri)
    run_id = exp.status.mlflow_run_id or _start_run(exp, uri)
    for action in E.plan(name, exp.spec, observed):
        if isinstance(action, E.CreateChild):
            annotations = {tracking.PARENT_RUN_ANNOTATION: run_id} if run_id else {}
            owner = {"apiVersion": exp.api_version, "kind": E.KIND, "name": name, "uid": exp.metadata.uid,
                     "controller": True, "blockOwnerDeletion": True}
            if kube.create_child_actjob(namespace, {
                    "apiVersion": A.API_VERSION, "kind": A.KIND, "spec": action.spec, "metadata": {
                        "name": action.name, "namespace": namespace, "labels": action.labels,
                        "annotations": annotations, "ownerReferences": [owner]}}):
                runtime.post_event(body, "ChildCreated", f"{action.name} (arm {action.labels['act-operator.io/arm']})")
            observed[action.key] = E.Observed("Pending")
        elif isinstance(action, E.SetSuspend):
            kube.set_actjob_suspended(namespace, action.name, action.suspend)
    status = E.status(name, exp.spec, observed, run_id)
    if status.phase in ("Succeeded", "Failed") and uri and run_id:
        try:
            tracking.finish_experiment(uri, run_id, status)
        except Exception as e:  # noqa: BLE001 - the table is in the status either way
            log.warning("MLflow: the experiment's run %s was not closed: %s", run_id, e)
    after = status.model_dump(mode="json", by_alias=True)
    if after != before:
        kube.patch_experiment_status(namespace, name, after, rv)
        if status.phase != before.get("phase") and status.phase in ("Succeeded", "Failed"):
            runtime.post_event(body, status.phase, status.message or f"best arm: {status.best_arm or '-'}",
                                "Normal" if status.phase == "Succeeded" else "Warning")


def _start_run(exp: E.ACTExperiment, uri: str | None) -> str | None:
    if not uri:
        return None
    try:
        return tracking.start_experiment(uri, exp)
    except Exception as e:  # noqa: BLE001 - an outage holds no arm back; the children report it too
        log.warning("MLflow at %s does not answer (%s): the children run without the experiment's run", uri, e)
        return None


# --- triggers --------------------------------------------------------------------------------

@kopf.on.resume(A.GROUP, A.VERSION, E.PLURAL, backoff=runtime.RETRY_S)
@kopf.on.create(A.GROUP, A.VERSION, E.PLURAL, backoff=runtime.RETRY_S)
@kopf.on.update(A.GROUP, A.VERSION, E.PLURAL, field="spec", backoff=runtime.RETRY_S)
def on_experiment(namespace, name, **_):
    reconcile_experiment(namespace, name)


_child_phases: dict[str, str] = {}  # child ACTJob uid -> the phase last seen (this process)


def _phase_changed(event, body, **_) -> bool:
    """Only a child whose phase changed (or that vanished) can change its experiment's plan or table.
    The status is not part of kopf's diff base, so on.field cannot watch it: remembered here."""
    uid = body["metadata"].get("uid")
    if event["type"] == "DELETED":
        _child_phases.pop(uid, None)
        return True
    phase = (body.get("status") or {}).get("phase")
    changed = _child_phases.get(uid) != phase
    _child_phases[uid] = phase
    return changed


@kopf.on.event(A.GROUP, A.VERSION, A.PLURAL, labels={E.LABEL: kopf.PRESENT}, when=_phase_changed)
def on_child(body, namespace, **_):
    """A child ACTJob changed phase: release the arms that waited for it, update the table."""
    reconcile_experiment(namespace, body["metadata"]["labels"][E.LABEL])
