"""A stage's proof of work: outputs first, `_MANIFEST.json` last, then the termination log.

The manifest lists every output file with size and sha256; its digest identifies the
outputs for lineage. The termination log (read by the operator from the pod status, or by
the local executor from a file) carries the manifest URI, the digest and the key metrics.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from act_trainer import store

MANIFEST = "_MANIFEST.json"
TERMINATION_LOG_ENV = "ACT_TERMINATION_LOG"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LIMIT = 4096  # bytes Kubernetes keeps of a termination message


class NoOutputsError(RuntimeError):
    """A stage that produced nothing must not pass as done."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe(local_dir: Path) -> list[dict]:
    files = []
    for p in sorted(local_dir.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            files.append({"path": p.relative_to(local_dir).as_posix(), "size": p.stat().st_size,
                          "sha256": sha256_file(p)})
    return files


def digest(files: list[dict]) -> str:
    canon = json.dumps([[f["path"], f["sha256"]] for f in files], separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()


def publish(local_dir: Path, output_uri: str, *, stage: str, metrics: dict, extra: dict | None = None,
            run_id: str | None = None) -> dict:
    """Upload `local_dir` to `output_uri`, then write the manifest, then the termination log."""
    files = describe(local_dir)
    if not files:
        raise NoOutputsError(f"{stage}: produced no output files under {local_dir}; refusing to report success")
    store.upload(str(local_dir), output_uri)
    manifest = {
        "stage": stage, "uri": output_uri, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "digest": digest(files), "files": files, "metrics": metrics, "mlflow_run_id": run_id, **(extra or {}),
    }
    manifest_uri = store.join(output_uri, MANIFEST)
    store.write_bytes(manifest_uri, json.dumps(manifest, indent=2).encode())
    write_termination_log({"stage": stage, "uri": output_uri, "manifest": manifest_uri,
                           "digest": manifest["digest"], "mlflow_run_id": run_id, "metrics": metrics})
    return manifest


def write_termination_log(result: dict) -> None:
    path = os.environ.get(TERMINATION_LOG_ENV, DEFAULT_TERMINATION_LOG)
    text = json.dumps(result, separators=(",", ":"))
    if len(text.encode()) > TERMINATION_LIMIT:  # keep the pointers, drop metrics that do not fit
        result = {**result, "metrics": {k: v for k, v in list(result.get("metrics", {}).items())[:8]}}
        text = json.dumps(result, separators=(",", ":"))[:TERMINATION_LIMIT]
    try:
        Path(path).write_text(text)
    except OSError:
        pass  # not in a pod and no file asked for: the manifest is the record


def amend_termination_log(extra: dict) -> None:
    """Add to the result a stage already reported (e.g. that its tracking went offline after it
    published); nothing when none was written."""
    path = Path(os.environ.get(TERMINATION_LOG_ENV, DEFAULT_TERMINATION_LOG))
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(result, dict) and "manifest" in result:
        write_termination_log({**result, **extra})


def read_manifest(output_uri: str) -> dict:
    return json.loads(store.read_bytes(store.join(output_uri, MANIFEST)))
