"""Operator latency against a real API server (kubelite), with the operator in its own process.

Measures, for N ACTJobs applied at once:
  - ACTJob created -> its first Job (the preflight's) exists
  - that Job completed (as a kubelet + Job controller would report it) -> the next stage's Job exists
each as a ratio to the median round trip of a bare Job create on the same server, and the
operator's peak RSS.   Targets: medians <= 5x the bare round trip, hand-off < 1 s, RSS <= 200 MB.
Throughput, ROUNDS times: the time from the first of N ACTJobs applied at once (from THREADS
threads) until all N first Jobs exist (as a watch sees them), against a bare client doing the same
user's work and the operator's writes itself, from the same number of threads, on the same server,
in the same window (first ACTJob create -> last first Job seen):
  - bare: each ACTJob created, then its ConfigMap + Job (what the operator creates for it);
  - bare + status + Event: the same, then the ACTJob's status patch and its StageStarted Event
    (every write the operator makes for a first Job).
The operator reconciles THREADS ACTJobs at once (ACT_MAX_CONCURRENT_RECONCILES).
Target: median ratio to the first <= 1.5x.

    OMP_NUM_THREADS=1 python bench/operator_latency.py [N] [ROUNDS] [THREADS]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from kube import apply_crd, kubelite  # noqa: E402

SPEC = {"model": {"uri": "s3://bucket/models/base"}, "environment": {"name": "scienceworld"},
        "storage": {"root": "s3://bucket/act"}}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class JobWatcher(threading.Thread):
    """Records when each Job is first seen (watch events, not polling)."""

    def __init__(self, batch, ns: str):
        super().__init__(daemon=True)
        self.batch, self.ns, self.seen, self.stop = batch, ns, {}, False

    def run(self):
        from kubernetes import watch

        w = watch.Watch()
        try:
            for ev in w.stream(self.batch.list_namespaced_job, self.ns, timeout_seconds=600):
                self.seen.setdefault(ev["object"].metadata.name, time.monotonic())
                if self.stop:
                    w.stop()
        except Exception:  # the server goes away at the end of the run
            pass

    def wait(self, name: str, timeout: float = 120.0) -> float:
        deadline = time.monotonic() + timeout
        while name not in self.seen:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} (Jobs seen: {sorted(self.seen)[:8]})")
            time.sleep(0.002)
        return self.seen[name]


def complete(core, batch, ns: str, job: str, uri: str) -> None:
    pod = f"{job}-{uuid.uuid4().hex[:5]}"
    core.create_namespaced_pod(ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": pod, "labels": {"batch.kubernetes.io/job-name": job}},
        "spec": {"containers": [{"name": "stage", "image": "x"}]}})
    msg = json.dumps({"uri": uri, "manifest": f"{uri}/_MANIFEST.json", "digest": "sha256:x", "metrics": {}})
    core.patch_namespaced_pod_status(pod, ns, {"status": {"containerStatuses": [{
        "name": "stage", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
        "state": {"terminated": {"exitCode": 0, "message": msg}}}]}})
    batch.patch_namespaced_job_status(job, ns, {"status": {"succeeded": 1, "conditions": [
        {"type": "Complete", "status": "True"}]}})


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def actjob_body(name: str) -> dict:
    from act_operator import api as A

    return {"apiVersion": A.API_VERSION, "kind": A.KIND, "metadata": {"name": name}, "spec": SPEC}


def first_stages() -> tuple[str, str]:
    """The stage whose Job an ACTJob of SPEC starts with, and the one after it: as the planner says."""
    from act_operator import api as A
    from act_operator import pipeline as P

    body = actjob_body("x")
    body["metadata"].update(uid="u", generation=1)
    job, t = A.parse_actjob(body), P.now()
    (first,) = P.plan(job, {}, t)
    job.status = P.apply(job, first, t)
    after = P.plan(job, {first.stage: P.Observed("succeeded", result={"manifest": "s3://b/x/_MANIFEST.json"})}, t)
    return first.stage, next(a.stage for a in after if isinstance(a, P.StartStage))


FIRST, SECOND = first_stages()


def stage_objects(ns: str, name: str) -> list[dict]:
    """What the operator creates for an ACTJob's first stage (ConfigMap + Job), built as it builds them."""
    from act_operator import api as A
    from act_operator.manifests import stage_objects as build
    from act_operator.settings import OperatorSettings

    body = actjob_body(name)
    body["metadata"].update(namespace=ns, uid=str(uuid.uuid4()), generation=1)
    return build(A.parse_actjob(body), FIRST, 1, OperatorSettings())


def first_status(body: dict) -> dict:
    """The status the operator writes with an ACTJob's first Job, built as the planner builds it."""
    from act_operator import api as A
    from act_operator import pipeline as P

    job, t = A.parse_actjob(body), P.now()
    P.set_condition(job.status, "Valid", True, "SpecValid", "the spec passed validation", t, job.metadata.generation)
    (first,) = P.plan(job, {}, t)
    job.status = P.apply(job, first, t)
    return job.status.model_dump(mode="json", by_alias=True)


def event_body(actjob: dict) -> dict:
    """A StageStarted Event on the ACTJob, as the operator posts one (kube.post_event)."""
    from datetime import UTC, datetime

    meta = actjob["metadata"]
    t = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": actjob["apiVersion"], "kind": actjob["kind"], "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "reason": "StageStarted", "message": f"{FIRST}: attempt 1 started", "type": "Normal", "count": 1,
            "source": {"component": "act-operator"}, "firstTimestamp": t, "lastTimestamp": t}


def bare_burst(core, batch, custom, ns: str, names: list[str], threads: int, *, writes: bool) -> float:
    """Seconds for a bare client to create every name's ACTJob, then its ConfigMap + Job (and with
    `writes`, the ACTJob's status patch and Event after them), from `threads` threads: from the
    first ACTJob create until a watch has seen every Job, as the operator's burst is timed."""
    from act_operator import api as A

    objects = {nm: stage_objects(ns, nm) for nm in names}  # built beforehand: only the API calls are timed
    watcher = JobWatcher(batch, ns)
    watcher.start()
    time.sleep(0.5)

    def create(nm):
        actjob = custom.create_namespaced_custom_object(A.GROUP, A.VERSION, ns, A.PLURAL, actjob_body(nm))
        for obj in objects[nm]:
            if obj["kind"] == "ConfigMap":
                core.create_namespaced_config_map(ns, obj)
            else:
                batch.create_namespaced_job(ns, obj)
        if writes:
            custom.patch_namespaced_custom_object_status(A.GROUP, A.VERSION, ns, A.PLURAL, nm, {
                "metadata": {"resourceVersion": actjob["metadata"]["resourceVersion"]},
                "status": first_status(actjob)})
            core.create_namespaced_event(ns, event_body(actjob))

    t = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, names))
    seen = max(watcher.wait(f"{nm}-{FIRST}-1") for nm in names)
    watcher.stop = True
    return seen - t


def main(n: int = 100, rounds: int = 3, threads: int = 8) -> None:
    from kubernetes import client, config

    from act_operator import api as A
    from act_operator.crd import crd

    with tempfile.TemporaryDirectory() as tmp, kubelite(tmp) as kubeconfig:
        config.load_kube_config(config_file=kubeconfig)
        apply_crd(client.ApiClient(), crd())
        core, batch, custom = client.CoreV1Api(), client.BatchV1Api(), client.CustomObjectsApi()
        ns = "bench"
        core.create_namespace({"metadata": {"name": ns}})
        # warm the CRD path (the first create after a CRD is applied is slow on any apiserver)
        custom.create_namespaced_custom_object(A.GROUP, A.VERSION, "default", A.PLURAL,
                                               {"apiVersion": A.API_VERSION, "kind": A.KIND,
                                                "metadata": {"name": "warm"}, "spec": SPEC})

        rtts = []
        for i in range(30):  # the baseline: a bare Job create round trip
            t = time.perf_counter()
            batch.create_namespaced_job("default", {"apiVersion": "batch/v1", "kind": "Job", "metadata": {
                "name": f"bare-{i}"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                    {"name": "c", "image": "x"}]}}}})
            rtts.append(time.perf_counter() - t)
        rtt = statistics.median(rtts)

        bare, bare_writes = [], []  # the two baselines, alternating
        for r in range(rounds):
            for writes, out in ((False, bare), (True, bare_writes)):
                bns = f"bare-{r}-{'w' if writes else 'c'}"
                core.create_namespace({"metadata": {"name": bns}})
                out.append(bare_burst(core, batch, custom, bns, [f"b{r}-{i:03d}" for i in range(n)], threads,
                                      writes=writes))

        env = {**os.environ, "KUBECONFIG": kubeconfig, "ACT_PORT": "0", "ACT_MLFLOW_TRACKING_URI": "",
               "ACT_MAX_CONCURRENT_RECONCILES": str(threads)}
        # BENCH_OPERATOR_LOG=FILE BENCH_KOPF_ARGS=--verbose: keep kopf's log (its patches) to see where time goes
        log = os.environ.get("BENCH_OPERATOR_LOG") or str(Path(tmp) / "operator.log")
        op = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", ns, "-m",
                               "act_operator.handlers", *(os.environ.get("BENCH_KOPF_ARGS") or "--quiet").split()],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        try:
            time.sleep(4)  # let kopf start watching
            watcher = JobWatcher(batch, ns)
            watcher.start()
            time.sleep(0.5)
            alone = []  # one at a time: the operator's own latency, without a queue in front of it
            for i in range(10):
                nm = f"solo{i}"
                t = time.monotonic()
                custom.create_namespaced_custom_object(A.GROUP, A.VERSION, ns, A.PLURAL, {
                    "apiVersion": A.API_VERSION, "kind": A.KIND, "metadata": {"name": nm}, "spec": SPEC})
                alone.append(watcher.wait(f"{nm}-{FIRST}-1") - t)
            bursts, first, cpu = [], [], []
            # BENCH_PYSPY=FILE: sample the operator during the bursts (py-spy, collapsed stacks of the thread
            # holding the GIL: where its CPU goes, not where its threads wait)
            spy = os.environ.get("BENCH_PYSPY") and subprocess.Popen(
                ["py-spy", "record", "--format", "raw", "--threads", "--gil", "-r", "200", "-o", os.environ["BENCH_PYSPY"],
                 "-p", str(op.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for r in range(rounds):
                names = [f"r{r}-{i:03d}" for i in range(n)]
                created: dict[str, float] = {}

                def apply(name, created=created):
                    custom.create_namespaced_custom_object(A.GROUP, A.VERSION, ns, A.PLURAL, actjob_body(name))
                    created[name] = time.monotonic()

                c0, t0 = cpu_s(op.pid), time.monotonic()
                with ThreadPoolExecutor(threads) as pool:  # "at once"
                    list(pool.map(apply, names))
                seen = [watcher.wait(f"{nm}-{FIRST}-1") for nm in names]
                bursts.append(max(seen) - t0)
                cpu.append(cpu_s(op.pid) - c0)
                first += [s - created[nm] for s, nm in zip(seen, names, strict=True)]
                time.sleep(2)  # let the round's own status events settle
            if spy:
                spy.send_signal(2)
                spy.wait(30)
            names = [f"r0-{i:03d}" for i in range(n)]
            handoff = []
            for nm in names:
                complete(core, batch, ns, f"{nm}-{FIRST}-1", f"s3://bucket/act/{nm}/{FIRST}")
                done = time.monotonic()
                handoff.append(watcher.wait(f"{nm}-{SECOND}-1") - done)
            rss = peak_rss_mb(op.pid)
            held = sum(bool(o["metadata"].get("finalizers")) for o in custom.list_namespaced_custom_object(
                A.GROUP, A.VERSION, ns, A.PLURAL)["items"])
            watcher.stop = True
        finally:
            op.terminate()
            op.wait(10)

    print(f"operator latency: {n} ACTJobs applied at once, kubelite on loopback, operator in its own process")
    print(f"  bare Job create round trip (median of 30): {rtt * 1000:.1f} ms")
    for label, vals in (("created -> first Job (alone)", alone), (f"created -> first Job ({n} at once)", first),
                        ("Job completed -> next Job", handoff)):
        med, p95 = statistics.median(vals), pct(vals, 95)
        print(f"  {label:36s} median {med * 1000:7.1f} ms ({med / rtt:5.1f}x)   p95 {p95 * 1000:7.1f} ms "
              f"({p95 / rtt:5.1f}x)")
    print(f"  operator peak RSS: {rss:.0f} MB   (targets: medians <= 5x, hand-off < 1 s, RSS <= 200 MB)")
    print(f"  ACTJobs with a finalizer at the end: {held} of {len(alone) + n * rounds}")
    print(f"throughput: {n} ACTJobs applied at once from {threads} threads, from the first ACTJob create until "
          f"all {n} first Jobs are seen ({rounds} rounds)")

    def row(label: str, values: list[float]) -> None:
        print(f"  {label:49s}" + ", ".join(f"{v:.2f}" for v in values) + f" s (median {statistics.median(values):.2f} s)")

    row("operator:", bursts)
    row("  its CPU seconds in that window:", cpu)
    row("bare: ACTJob + ConfigMap + Job", bare)
    row("bare: ACTJob + ConfigMap + Job + status + Event", bare_writes)
    for label, base, target in (("bare", bare, "   (target <= 1.5x)"), ("bare + status + Event", bare_writes, "")):
        ratios = [o / b for o, b in zip(bursts, base, strict=True)]
        print(f"  ratio operator / {label}: " + ", ".join(f"{x:.2f}" for x in ratios)
              + f"   median {statistics.median(ratios):.2f}x{target}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
