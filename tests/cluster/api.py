"""A thin Kubernetes API client over the `kubernetes` package's connection (TLS, kubeconfig):
raw JSON in and out, so the agent sees objects exactly as the server serves them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlencode

import urllib3
from kubernetes import client, config

SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def path(kind: str, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
    group = {"jobs": "/apis/batch/v1", "leases": "/apis/coordination.k8s.io/v1", "deployments": "/apis/apps/v1",
             "replicasets": "/apis/apps/v1"}.get(kind, "/api/v1")
    p = group + (f"/namespaces/{namespace}" if namespace else "") + f"/{kind}"
    return p + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


class ApiError(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(f"{status}: {text[:500]}")
        self.status = status


class Api:
    """urllib3 with the kubeconfig's TLS client certificate (or token): no dependence on the
    generated client's internals, which change between its major versions."""

    def __init__(self, kubeconfig: str):
        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        self.host = cfg.host.rstrip("/")
        self.headers = {"Accept": "application/json"}
        token = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
        if token:
            self.headers["Authorization"] = token if token.startswith("Bearer") else f"Bearer {token}"
        self.http = urllib3.PoolManager(num_pools=2, maxsize=8, cert_reqs="CERT_REQUIRED", ca_certs=cfg.ssl_ca_cert,
                                        cert_file=cfg.cert_file, key_file=cfg.key_file)

    def call(self, method: str, url: str, body=None, content_type: str = "application/json",
             query: list | None = None, timeout: float | None = 30):
        full = self.host + url + ("?" + urlencode(query) if query else "")
        r = self.http.request(method, full, body=None if body is None else json.dumps(body).encode(),
                              headers={**self.headers, "Content-Type": content_type}, timeout=timeout)
        if r.status == 404:
            raise NotFound(url)
        if r.status == 409:
            raise Conflict(url)
        if r.status >= 400:
            raise ApiError(r.status, r.data.decode(errors="replace"))
        return json.loads(r.data) if r.data else None

    def get(self, kind, namespace, name):
        return self.call("GET", path(kind, namespace, name))

    def list(self, kind, namespace=None, selector: str | None = None) -> list[dict]:
        query = [("labelSelector", selector)] if selector else []
        out = self.call("GET", path(kind, namespace), query=query)
        singular = {"pods": "Pod", "jobs": "Job", "services": "Service", "secrets": "Secret",
                    "configmaps": "ConfigMap", "nodes": "Node", "namespaces": "Namespace", "deployments": "Deployment",
                    "replicasets": "ReplicaSet"}.get(kind)
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
        body = {"metadata": {"name": f"{m['name']}.{time.time_ns():x}", "namespace": ns},  # as client-go names them
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
        while not stop.is_set():
            try:
                rv = self.call("GET", path(kind), query=[("limit", "1")])["metadata"]["resourceVersion"]
                query = urlencode([("watch", "true"), ("resourceVersion", rv), ("timeoutSeconds", "30")])
                r = self.http.request("GET", f"{self.host}{path(kind)}?{query}", headers=self.headers,
                                      preload_content=False, timeout=urllib3.Timeout(connect=5, read=40))
                on_event({"type": "RESYNC"})
                buf = b""
                for chunk in r.stream(4096):
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if line.strip():
                            on_event(json.loads(line))
                    if stop.is_set():
                        break
                r.release_conn()
            except Exception:
                time.sleep(0.5)
