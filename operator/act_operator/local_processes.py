"""The processes of `actjob run` (local.LocalExecutor), owned so that none outlives its run:

* one `actjob run` per run directory at a time: `RunLock`, an flock on `run.lock` that names its
  holder (pid, command, since) to whoever is refused;
* each stage process (a shard's, or a torchrun gang's launcher and its ranks) in a session of its
  own, so that its whole process group can be stopped (`stop_group`: SIGTERM, a grace period,
  SIGKILL) and a Ctrl-C on the terminal reaches `actjob run` alone, which stops it;
* SIGTERM, SIGINT and SIGHUP of `actjob run` raise `Stopped` in its main thread (`stopping`): the
  executor stops the running stage and records why;
* each live stage process recorded in `processes.json` (pid and start time), so that the next
  `actjob run` after a SIGKILL (no handler runs) finds the orphan and stops it before it starts the
  next attempt (`stop_orphans`). Stopped rather than waited for: its output went to the killed
  run's pipe (its log and progress are lost), it may run for hours, and the next attempt resumes
  from its last checkpoint anyway.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from act_operator.rundir import write_json

GRACE_S = 15.0  # SIGTERM -> SIGKILL; the stage uploads its log on SIGTERM; ACTClient.delete waits 30 s
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PROC = Path("/proc")


class RunLocked(RuntimeError):
    pass


class Stopped(BaseException):  # noqa: N818 - like KeyboardInterrupt: not an error, a request to stop
    """`actjob run` got a stop signal; the exit code is the shell's 128 + signal."""

    def __init__(self, signum: int):
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


# --- one run per directory ---------------------------------------------------------------------

class RunLock:
    """An exclusive flock on `path`, held while the run goes on (the kernel drops it when the process
    dies, however it dies); the file says who holds it."""

    def __init__(self, path: Path):
        self.path, self._fd = path, None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace")
            os.close(fd)
            raise RunLocked(self.refusal(holder)) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode())
        self._fd = fd
        return self

    def refusal(self, holder: str) -> str:
        try:
            h = json.loads(holder)
            who = f"pid {h['pid']} ({h['command']}) since {h['since']}"
        except (ValueError, KeyError, TypeError):  # the holder has not written its name yet
            who = "another process"
        return (f"{self.path.parent} is in use by {who}: one `actjob run` per run at a time; wait for it to "
                "finish, or stop it (kill PID: it stops its stages and the next run resumes)")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


# --- processes --------------------------------------------------------------------------------

def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command (state first), or None where there is none."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def start_time(pid: int) -> str | None:
    """When `pid` started (clock ticks since boot from /proc, else `ps`): with the pid, it names one
    process, never a later one that reuses the pid. None: no such process."""
    if PROC.is_dir():
        fields = _stat(pid)
        return fields[19] if fields and fields[0] != "Z" else None
    out = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True)
    return out.stdout.strip() or None


def group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` lives (a zombie waiting for its parent does not)."""
    if not PROC.is_dir():
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (f := _stat(int(entry.name))) and f[2] == str(pgid) and f[0] != "Z":
            return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def stop_group(pgid: int, grace: float | None = None, leader: subprocess.Popen | None = None) -> float:
    """SIGTERM to the whole group, SIGKILL to what is left after `grace` seconds; returns once no process
    of it lives (reaping `leader`, our child). The seconds it took."""
    grace = GRACE_S if grace is None else grace
    started = time.monotonic()
    _signal_group(pgid, signal.SIGTERM)
    killed = False
    while True:
        if leader is not None:
            leader.poll()  # reap it: a zombie child counts as gone, but must not stay one
        if not group_alive(pgid):
            break
        if not killed and time.monotonic() - started >= grace:
            _signal_group(pgid, signal.SIGKILL)
            killed = True
        time.sleep(0.05)
    if leader is not None:
        leader.wait()
    return time.monotonic() - started


_held = {"depth": 0, "signum": None}  # a stop signal that came inside `held()`, raised at its end


@contextlib.contextmanager
def held() -> Iterator[None]:
    """A stop signal that comes inside is raised at the end (not by blocking it: a process started
    meanwhile would inherit the blocked mask and never see the SIGTERM meant to stop it)."""
    _held["depth"] += 1
    try:
        yield
    finally:
        _held["depth"] -= 1
    if not _held["depth"] and (signum := _held["signum"]) is not None:
        _held["signum"] = None
        raise Stopped(signum)


@contextlib.contextmanager
def stopping() -> Iterator[None]:
    """SIGTERM, SIGINT and SIGHUP raise `Stopped` in the main thread while inside; once the first came,
    more are ignored (the stop it started is bounded: the grace period, then SIGKILL)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        if _held["depth"]:
            _held["signum"] = signum
            return
        raise Stopped(signum)

    saved = {s: signal.signal(s, stop) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


class StageProcesses:
    """The stage processes of one run directory: each a session leader (its pid is its process group's
    id), recorded in `path` (processes.json) from its start until its group is gone."""

    def __init__(self, path: Path):
        self.path = path
        self.running: dict[str, subprocess.Popen] = {}

    def _read(self) -> dict[str, dict]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def _write(self, live: dict[str, dict]) -> None:
        write_json(self.path, live)

    def start(self, key: str, cmd: list[str], stage: str, what: str, **popen) -> subprocess.Popen:
        """Start `cmd` in a session of its own, recorded under `key` until `finish(key)`. A stop signal
        waits meanwhile (held): no process is ever started without its record."""
        with held():
            proc = subprocess.Popen(cmd, start_new_session=True, **popen)
            self.running[key] = proc
            live = self._read()
            live[key] = {"pid": proc.pid, "start": start_time(proc.pid), "stage": stage, "what": what,
                         "command": " ".join(cmd), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            self._write(live)
        return proc

    def _forget(self, key: str) -> None:
        self.running.pop(key, None)
        live = self._read()
        if live.pop(key, None) is not None:
            self._write(live)

    def finish(self, key: str) -> None:
        """After its leader exited: whatever it left in its group (a rank) is stopped too; forgotten."""
        proc = self.running[key]
        if group_alive(proc.pid):
            stop_group(proc.pid, leader=proc)
        self._forget(key)

    def stop_all(self, log=None, grace: float | None = None) -> float:
        """Stop every running stage's group (SIGTERM, `grace`, SIGKILL), what it still prints going to
        `log` (a full pipe would hold it up), and forget it. The seconds it took."""
        started = time.monotonic()
        for key, proc in list(self.running.items()):
            drain = None
            if log is not None and proc.stdout is not None:
                drain = threading.Thread(target=lambda p=proc: log.writelines(p.stdout), daemon=True)
                drain.start()
            stop_group(proc.pid, grace, leader=proc)
            if drain is not None:
                drain.join(2)
            self._forget(key)
        return time.monotonic() - started

    def orphans(self) -> list[dict]:
        """The recorded processes still alive: a killed `actjob run` left them (a record whose pid now
        names another process, by its start time, is not one)."""
        found = []
        for rec in self._read().values():
            pid, now = rec["pid"], start_time(rec["pid"])
            if now is not None and now != rec["start"]:
                continue  # the pid was reused: not ours
            # the leader may be gone while its ranks live: the group's id is not reused while it has members
            if now is not None or group_alive(pid):
                found.append(rec)
        return found

    def stop_orphans(self, grace: float | None = None) -> list[tuple[dict, float]]:
        """Stop every orphan (SIGTERM to its group, then SIGKILL) and forget every record."""
        stopped = [(rec, stop_group(rec["pid"], grace)) for rec in self.orphans()]
        if self.path.exists():
            self._write({})
        return stopped
