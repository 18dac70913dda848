"""The Deployment and ReplicaSet controllers, pure (pkg/controller/deployment and
pkg/controller/replicaset of Kubernetes, reduced to what an operator Deployment needs): a
ReplicaSet per pod template (`<deployment>-<pod-template-hash>`), old ones scaled to zero
(Recreate: the new one only once their pods are gone), pods created and deleted to match
`replicas`, and both statuses with the Available and Progressing conditions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from .jobutil import is_active, is_ready

HASH_LABEL = "pod-template-hash"


def template_hash(template: dict) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def owned(objs: list[dict], owner: dict) -> list[dict]:
    uid = owner["metadata"]["uid"]
    return [o for o in objs if any(r.get("controller") and r.get("uid") == uid
                                   for r in o["metadata"].get("ownerReferences") or [])]


def _ref(owner: dict, kind: str, api_version: str) -> dict:
    m = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": m["name"], "uid": m["uid"], "controller": True,
            "blockOwnerDeletion": True}


def _cond(type_: str, ok: bool, reason: str, message: str, now: str, old: dict | None) -> dict:
    status = "True" if ok else "False"
    changed = not old or old.get("status") != status
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastUpdateTime": now,
            "lastTransitionTime": now if changed else old.get("lastTransitionTime", now)}


@dataclass
class DeploymentSync:
    create: list[dict] = field(default_factory=list)  # ReplicaSets to create
    scale: dict[str, int] = field(default_factory=dict)  # ReplicaSet name -> replicas
    status: dict | None = None


def sync_deployment(d: dict, replicasets: list[dict], pods: list[dict], now: str) -> DeploymentSync:
    spec, m = d["spec"], d["metadata"]
    want = spec.get("replicas", 1)
    h = template_hash(spec["template"])
    mine = owned(replicasets, d)
    new = next((rs for rs in mine if (rs["metadata"].get("labels") or {}).get(HASH_LABEL) == h), None)
    old = [rs for rs in mine if rs is not new]
    out = DeploymentSync()
    for rs in old:
        if rs["spec"].get("replicas", 0):
            out.scale[rs["metadata"]["name"]] = 0
    recreate = (spec.get("strategy") or {}).get("type", "RollingUpdate") == "Recreate"
    old_pods = [p for rs in old for p in owned(pods, rs) if p["metadata"].get("deletionTimestamp") or is_active(p)]
    if new is None:
        if not (recreate and old_pods):
            labels = {**(spec["template"]["metadata"].get("labels") or {}), HASH_LABEL: h}
            template = {**spec["template"], "metadata": {**spec["template"]["metadata"], "labels": labels}}
            out.create.append({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
                "name": f"{m['name']}-{h}", "namespace": m["namespace"], "labels": labels,
                "ownerReferences": [_ref(d, "Deployment", "apps/v1")]},
                "spec": {"replicas": want, "selector": {"matchLabels": {
                    **spec["selector"]["matchLabels"], HASH_LABEL: h}}, "template": template}})
    elif new["spec"].get("replicas") != want:
        out.scale[new["metadata"]["name"]] = want
    new_st = (new or {}).get("status") or {}
    total = sum((rs.get("status") or {}).get("replicas", 0) for rs in mine)
    ready = sum((rs.get("status") or {}).get("readyReplicas", 0) for rs in mine)
    available = sum((rs.get("status") or {}).get("availableReplicas", 0) for rs in mine)
    old_conds = {c["type"]: c for c in (d.get("status") or {}).get("conditions") or []}
    is_available = available >= want
    complete = new is not None and new_st.get("availableReplicas", 0) == want and total == want
    out.status = {
        "observedGeneration": m.get("generation", 1), "replicas": total, "updatedReplicas": new_st.get("replicas", 0),
        "readyReplicas": ready, "availableReplicas": available, "unavailableReplicas": max(0, want - available),
        "conditions": [
            _cond("Available", is_available, "MinimumReplicasAvailable" if is_available else "MinimumReplicasUnavailable",
                  "Deployment has minimum availability." if is_available else
                  "Deployment does not have minimum availability.", now, old_conds.get("Available")),
            _cond("Progressing", True, "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                  f'ReplicaSet "{m["name"]}-{h}" ' + ("has successfully progressed." if complete else "is progressing."),
                  now, old_conds.get("Progressing"))]}
    return out


@dataclass
class ReplicaSetSync:
    create: list[dict] = field(default_factory=list)  # pods
    delete: list[str] = field(default_factory=list)
    status: dict | None = None


def sync_replicaset(rs: dict, pods: list[dict]) -> ReplicaSetSync:
    m, spec = rs["metadata"], rs["spec"]
    active = [p for p in owned(pods, rs) if is_active(p)]
    diff = spec.get("replicas", 1) - len(active)
    out = ReplicaSetSync()
    tmpl = spec["template"]
    for _ in range(max(0, diff)):
        out.create.append({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "generateName": f"{m['name']}-", "namespace": m["namespace"], "labels": dict(tmpl["metadata"].get("labels") or {}),
            "annotations": dict(tmpl["metadata"].get("annotations") or {}),
            "ownerReferences": [_ref(rs, "ReplicaSet", "apps/v1")]}, "spec": tmpl["spec"]})
    if diff < 0:  # not-ready pods first, then the newest (controller.ActivePods ordering, reduced)
        newest = sorted(active, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
        ranked = sorted(newest, key=is_ready)
        out.delete = [p["metadata"]["name"] for p in ranked[:-diff]]
    ready = sum(1 for p in active if is_ready(p))
    out.status = {"replicas": len(active), "fullyLabeledReplicas": len(active), "readyReplicas": ready,
                  "availableReplicas": ready, "observedGeneration": m.get("generation", 1)}
    return out
