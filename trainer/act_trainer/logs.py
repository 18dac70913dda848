"""Logs that outlive the pods: a stage process tees its own stdout and stderr (at the file
descriptors, so that what C code, the JVM of an environment or a subprocess writes is in it too)
into a file, and when it exits, succeeded or failed, uploads that file to `<cfg.logs>/<host>-rank<r>.log`
(every pod and rank; `actjob logs` reads them) and attaches it to its MLflow child run (main
process). A SIGTERM (deletion, deadline) exits through the same path; a SIGKILL (OOM, node loss)
loses the log of that process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path

JOIN_TIMEOUT_S = 5.0  # a subprocess that outlives us may hold the pipe open: do not wait for it


def log_name(host: str | None = None, rank: int | None = None) -> str:
    """`<pod-or-host>-rank<r>.log`: one file per pod (its hostname) and rank."""
    host = host or socket.gethostname()
    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    return f"{host}-rank{rank}.log"


class Capture:
    """Tee file descriptors 1 and 2 into `path` while still writing them where they went."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed in stop()
        self.lock = threading.Lock()
        self.saved: dict[int, int] = {}
        self.threads: list[threading.Thread] = []
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            with contextlib.suppress(Exception):
                stream.flush()
            self.saved[fd] = os.dup(fd)
            r, w = os.pipe()
            os.dup2(w, fd)
            os.close(w)
            t = threading.Thread(target=self._pump, args=(r, self.saved[fd]), daemon=True, name=f"tee-{fd}")
            t.start()
            self.threads.append(t)

    def _pump(self, r: int, out: int) -> None:
        while chunk := os.read(r, 65536):
            with contextlib.suppress(OSError):  # the reader of the original stream went away: keep the file
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
            with self.lock:
                if not self.file.closed:  # after stop(): what a lingering subprocess still writes is not kept
                    self.file.write(chunk)
        os.close(r)

    def stop(self) -> None:
        """Put the original descriptors back and wait for what is still in the pipes."""
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            with contextlib.suppress(Exception):
                stream.flush()
            os.dup2(self.saved[fd], fd)  # closes our write end of the pipe: the pump reads to EOF
        for t, fd in zip(self.threads, self.saved.values(), strict=True):
            t.join(JOIN_TIMEOUT_S)
            if not t.is_alive():  # a pump still forwarding a lingering subprocess's output keeps its fd
                os.close(fd)
        with self.lock:
            self.file.close()


def exit_on_sigterm() -> None:
    """SIGTERM (a deleted pod, a deadline) raises SystemExit, so that the log is still uploaded."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


def start() -> Capture:
    exit_on_sigterm()
    return Capture(Path(tempfile.mkdtemp(prefix="act-log-")) / log_name())


def publish(capture: Capture, cfg, run=None) -> str | None:
    """Stop the capture and upload the log to cfg.logs (and to the MLflow run `run`, if it is
    live). Returns the URI; a failed upload is reported on stderr and never fails the stage."""
    from act_trainer import store

    capture.stop()
    uri = None
    try:
        if cfg is not None and cfg.logs:
            store.configure(endpoint=cfg.storage.endpoint, region=cfg.storage.region)
            uri = store.join(cfg.logs, capture.path.name)
            store.write_bytes(uri, capture.path.read_bytes())
        if run is not None and run.active and run.run_id and not run.offline:
            from mlflow import MlflowClient

            MlflowClient(cfg.tracking.uri).log_artifact(run.run_id, str(capture.path), artifact_path="logs")
    except Exception as e:  # noqa: BLE001 - the stage's outcome stands whatever happens to its log
        print(f"act-trainer: could not upload the log ({type(e).__name__}: {str(e)[:300]})", file=sys.stderr)
    finally:
        shutil.rmtree(capture.path.parent, ignore_errors=True)
    return uri
