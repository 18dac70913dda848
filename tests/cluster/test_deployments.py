"""The Deployment and ReplicaSet controllers (pure)."""

from cluster.deployments import HASH_LABEL, sync_deployment, sync_replicaset, template_hash

T = "2026-01-01T00:00:00Z"


def deployment(replicas=1, image="op:1", strategy="Recreate"):
    tmpl = {"metadata": {"labels": {"app": "op"}}, "spec": {"containers": [{"name": "c", "image": image}]}}
    return {"metadata": {"name": "op", "namespace": "n", "uid": "d1", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "op"}}, "template": tmpl,
                     "strategy": {"type": strategy}}}


def replicaset(d, replicas, template=None, ready=0, uid="r1"):
    tmpl = template or d["spec"]["template"]
    h = template_hash(tmpl)
    return {"metadata": {"name": f"op-{h}", "namespace": "n", "uid": uid, "labels": {"app": "op", HASH_LABEL: h},
                         "ownerReferences": [{"uid": d["metadata"]["uid"], "controller": True}]},
            "spec": {"replicas": replicas, "template": tmpl},
            "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready}}


def pod(rs, name, phase="Running", ready=True, deleting=False, created=T):
    m = {"name": name, "uid": name, "creationTimestamp": created,
         "ownerReferences": [{"uid": rs["metadata"]["uid"], "controller": True}]}
    if deleting:
        m["deletionTimestamp"] = T
    return {"metadata": m, "status": {"phase": phase, "conditions": [{"type": "Ready", "status": str(ready)}]}}


def test_a_new_deployment_gets_a_replicaset_of_its_template():
    d = deployment(replicas=2)
    out = sync_deployment(d, [], [], T)
    (rs,) = out.create
    h = template_hash(d["spec"]["template"])
    assert rs["metadata"]["name"] == f"op-{h}" and rs["spec"]["replicas"] == 2
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "op", HASH_LABEL: h}
    assert rs["spec"]["template"]["metadata"]["labels"][HASH_LABEL] == h
    assert {c["type"]: c["status"] for c in out.status["conditions"]} == {"Available": "False", "Progressing": "True"}


def test_recreate_scales_the_old_replicaset_down_and_waits_for_its_pods():
    d = deployment(image="op:2")
    old = replicaset(d, 1, template=deployment(image="op:1")["spec"]["template"], ready=1)
    out = sync_deployment(d, [old], [pod(old, "p1")], T)
    assert out.scale == {old["metadata"]["name"]: 0} and out.create == []
    old["spec"]["replicas"] = 0
    out = sync_deployment(d, [old], [], T)  # its pods are gone: now the new one
    assert len(out.create) == 1 and out.scale == {}


def test_available_once_the_new_replicaset_is_ready():
    d = deployment()
    rs = replicaset(d, 1, ready=1)
    out = sync_deployment(d, [rs], [pod(rs, "p1")], T)
    conds = {c["type"]: c for c in out.status["conditions"]}
    assert conds["Available"]["status"] == "True" and conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert out.status["availableReplicas"] == 1 and out.status["observedGeneration"] == 2


def test_a_replicaset_replaces_failed_and_deleted_pods_and_removes_extra_ones():
    d = deployment()
    rs = replicaset(d, 2)
    out = sync_replicaset(rs, [pod(rs, "a"), pod(rs, "b", phase="Failed"), pod(rs, "c", deleting=True)])
    assert len(out.create) == 1 and out.delete == []
    assert out.create[0]["metadata"]["generateName"] == f"{rs['metadata']['name']}-"
    assert out.create[0]["metadata"]["ownerReferences"][0]["uid"] == "r1"
    rs["spec"]["replicas"] = 1
    out = sync_replicaset(rs, [pod(rs, "old", created="2026-01-01T00:00:00Z"),
                               pod(rs, "new", created="2026-01-01T00:01:00Z"),
                               pod(rs, "unready", ready=False)])
    assert out.delete == ["unready", "new"]  # not-ready first, then the newest
