"""`actjob logs NAME [STAGE] [--attempt N]`: a stage attempt's log after its pods are gone.

On a cluster every stage process uploads its log when it ends (act_trainer.logs) under
`<storage root>/<namespace>/<name>/<uid>/logs/<stage>/attempt-<n>/<pod-or-host>-rank<r>.log`
(stages.logs_uri); this reads them with the caller's own storage credentials (AWS_* in the
environment). A local run (`actjob run`) keeps each attempt's log in `<workdir>/runs/<name>/`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from act_operator import pipeline, stages
from act_operator.api import ACTJob, ACTJobStatus
from act_operator.rundir import RunDir


class NoLogs(Exception):
    """Nothing to show; the message says why and what to do."""


def chosen(status: ACTJobStatus, stage: str | None, attempt: int | None) -> list[tuple[str, int]]:
    """(stage, attempt) pairs to show: one stage's given or latest attempt, or every stage that
    ran, its latest attempt each. Pure."""
    known = pipeline.steps(status)
    if stage is not None and stage not in known:
        raise NoLogs(f"STAGE: '{stage}' is not a stage; choose one of {', '.join(known)}")
    pairs = []
    for s in ([stage] if stage else known):
        ran = status.stages[s].attempts if s in status.stages else 0
        if attempt is not None:
            if not 1 <= attempt <= ran:
                raise NoLogs(f"--attempt: {s} has {'attempts 1 to ' + str(ran) if ran else 'not run'}; "
                             f"there is no attempt {attempt}")
            pairs.append((s, attempt))
        elif ran:
            pairs.append((s, ran))
    if not pairs:
        raise NoLogs(f"{stage} has not run yet" if stage else "no stage has run yet")
    return pairs


def local_run(workdir: Path, name: str) -> tuple[ACTJobStatus, RunDir] | None:
    """A local run's status and directory, if `actjob run` ran NAME under this workdir."""
    run_dir = RunDir(workdir, name)
    status = run_dir.read_status()
    return (status, run_dir) if status else None


def local_logs(run_dir: RunDir, stage: str, attempt: int) -> list[tuple[str, bytes]]:
    """The log files `actjob run` wrote for one attempt (one per shard)."""
    files = run_dir.attempt_logs(pipeline.job_name(run_dir.name, stage, attempt))
    return [(str(f), f.read_bytes()) for f in files]


def cluster_logs(job: ACTJob, stage: str, attempt: int) -> list[tuple[str, bytes]]:
    """The files an attempt's pods uploaded (one per pod and rank), read from storage."""
    from act_trainer import store

    s3 = job.spec.storage.s3
    store.configure(endpoint=s3.endpoint, region=s3.region)
    uri = stages.logs_uri(job, stage, attempt)
    try:
        return [(u, store.read_bytes(u)) for u in sorted(store.list_uris(uri)) if u.endswith(".log")]
    except store.StoreError as e:
        raise NoLogs(f"cannot read {uri} ({e}); logs are read with your own storage credentials "
                     "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and AWS_ENDPOINT_URL when the ACTJob names no endpoint)"
                     ) from None


def show(pairs: list[tuple[str, int]], fetch) -> Iterator[str]:
    """Each attempt's files, each after a `==> stage attempt N: where <==` header."""
    for stage, attempt in pairs:
        files = fetch(stage, attempt)
        if not files:
            yield (f"==> {stage} attempt {attempt}: no log (it is uploaded when the attempt ends; a process "
                   "killed with SIGKILL, e.g. out of memory, leaves none: see `kubectl logs` while its pod exists) <==\n")
        for where, body in files:
            yield f"==> {stage} attempt {attempt}: {where} <==\n"
            yield body.decode(errors="replace")
