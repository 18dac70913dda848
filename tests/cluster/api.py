"""A thin Kubernetes API client over the `kubernetes` package's connection (TLS, kubeconfig):
raw JSON in and out, so the agent sees objects exactly as the server serves them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from kubernetes import config
from kubernetes.client.rest import ApiException

SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def path(kind: str, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
    group = "/apis/batch/v1" if kind == "jobs" else "/apis/coordination.k8s.io/v1" if kind == "leases" else "/api/v1"
    p = group + (f"/namespaces/{namespace}" if namespace else "") + f"/{kind}"
    return p + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


class Api:
    def __init__(self, kubeconfig: str):
        self.client = config.new_client_from_config(config_file=kubeconfig)

    def call(self, method: str, url: str, body=None, content_type: str = "application/json",
             query: list | None = None, timeout: float | None = 30):
        try:
            r = self.client.call_api(url, method, query_params=query or [], body=body,
                                     header_params={"Content-Type": content_type, "Accept": "application/json"},
                                     _preload_content=False, _return_http_data_only=True,
                                     _request_timeout=timeout)
        except ApiException as e:
            if e.status == 404:
                raise NotFound(url) from None
            if e.status == 409:
                raise Conflict(url) from None
            raise
        return json.loads(r.data) if r.data else None

    def get(self, kind, namespace, name):
        return self.call("GET", path(kind, namespace, name))

    def list(self, kind, namespace=None, selector: str | None = None) -> list[dict]:
        query = [("labelSelector", selector)] if selector else []
        out = self.call("GET", path(kind, namespace), query=query)
        singular = {"pods": "Pod", "jobs": "Job", "services": "Service", "secrets": "Secret",
                    "configmaps": "ConfigMap", "nodes": "Node"}.get(kind)
        for item in out["items"]:
            item.setdefault("kind", singular)
        return out["items"]

    def create(self, kind, namespace, body):
        return self.call("POST", path(kind, namespace), body)

    def patch(self, kind, namespace, name, body, sub=None, content_type=MERGE):
        return self.call("PATCH", path(kind, namespace, name, sub), body, content_type)

    def replace_status(self, kind, obj: dict):
        m = obj["metadata"]
        return self.call("PUT", path(kind, m.get("namespace"), m["name"], "status"), obj)

    def delete(self, kind, namespace, name, grace: int | None = None):
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        try:
            return self.call("DELETE", path(kind, namespace, name), body)
        except NotFound:
            return None

    def event(self, obj: dict, type_: str, reason: str, message: str, component: str, host: str = "") -> None:
        """A core/v1 Event about `obj`, as the kubelet, scheduler and controllers post them."""
        m, t = obj["metadata"], now().strftime("%Y-%m-%dT%H:%M:%SZ")
        ns = m.get("namespace") or "default"
        body = {"metadata": {"generateName": f"{m['name']}.", "namespace": ns},
                "involvedObject": {"apiVersion": obj.get("apiVersion", "v1"), "kind": obj.get("kind"),
                                   "name": m["name"], "namespace": m.get("namespace"), "uid": m.get("uid"),
                                   "resourceVersion": m.get("resourceVersion")},
                "reason": reason, "message": message[:1024], "type": type_, "count": 1,
                "firstTimestamp": t, "lastTimestamp": t, "source": {"component": component, "host": host},
                "reportingComponent": component, "reportingInstance": host}
        try:
            self.create("events", ns, body)
        except Exception:  # an event is best effort, as in client-go's recorder
            pass

    def watch_forever(self, kind: str, on_event: Callable[[dict], None], stop: threading.Event) -> None:
        """List+watch `kind` in all namespaces until `stop`; calls on_event per change (a trigger)."""
        from kubernetes.watch.watch import iter_resp_lines

        while not stop.is_set():
            try:
                rv = self.call("GET", path(kind), query=[("limit", "1")])["metadata"]["resourceVersion"]
                r = self.client.call_api(path(kind), "GET", query_params=[
                    ("watch", "true"), ("resourceVersion", rv), ("timeoutSeconds", "30"),
                    ("allowWatchBookmarks", "false")], header_params={"Accept": "application/json"},
                    _preload_content=False, _return_http_data_only=True, _request_timeout=40)
                on_event({"type": "RESYNC"})
                for line in iter_resp_lines(r):
                    if stop.is_set():
                        break
                    on_event(json.loads(line))
            except Exception:
                time.sleep(0.5)
