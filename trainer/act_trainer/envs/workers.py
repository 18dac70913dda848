"""Environments in worker processes: each instance in a process of its own, behind the same protocol.

Why: eval plays several episodes at once, and the simulators' Python sides do not overlap in one
process. ALFWorld's TextWorld calls run under one process-wide lock (alfworld.py) and the GIL, so
16 instances in threads step one at a time; the Java-backed simulators step in their JVMs but
still pay their py4j round trips under the GIL. A worker process per instance (as AgentGym's
environment servers or verl-agent's env workers do) lets them run at once, while generation stays
batched across episodes in the stage process.

- `EnvWorker`: one adapter (made by make_env from the EnvironmentConfig, in the worker) driven
  over a pipe: a request is (method, args), an answer ("ok", value) or ("error", exception, its
  traceback). `submit()` sends a request and `result()` waits for its answer, so a caller can
  keep many workers busy at once; the protocol's methods (reset, step, admissible, episodes, ...)
  are `call()`s. An exception raised in the worker is raised again here, same class, with the
  worker's traceback as its `__cause__` and a note naming the environment and the worker. A
  worker that ends while the stage waits on it (a crash, the OOM killer) raises `WorkerDied`,
  naming the environment, the worker, how it ended and the call it was making: the wait watches
  the process as well as the pipe, so nothing hangs.
- `EnvPool`: `size` workers started at once (their imports and simulator starts overlap) and
  reused for every episode of the stage; `close()` ends them all.

Lifetime: workers come from a forkserver (not fork: a forked worker would inherit the stage's
threads, torch state and the other workers' pipe ends, and a worker notices the stage's end by its
pipe closing, which needs the stage to hold the only other end). The forkserver preloads the
adapter's module and packages, so a worker starts without importing them again (ALFWorld's take
2-3 s a worker). A worker
ends (closing its simulator: the JVMs die with it, py4j's die_on_exit) when the stage closes it,
when the stage process goes away (its pipe closes; the forkserver ends too), on SIGTERM (the
multiprocessing exit handler's, or `actjob run` stopping the stage's process group). SIGINT is
ignored: a Ctrl-C reaches the whole terminal group, and the stage closes its workers itself.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import traceback
from collections.abc import Iterator

from act_trainer.envs.base import EnvUnavailable

log = logging.getLogger(__name__)

STOP_S = 10.0  # a worker asked to close gets this long to close its simulator before it is killed
# What the forkserver imports besides the adapter's module and the registry's packages, so that no
# worker imports it again: ALFWorld's adapter imports its packages on first use (a missing one is
# then a clear EnvNotInstalled), and textworld plus ALFWorld's wrappers take 2-3 s a worker.
PRELOAD = {"alfworld": ("textworld.envs", "alfworld.agents.environment.alfred_tw_env")}


class WorkerDied(EnvUnavailable):
    """An environment's worker process ended while the stage waited on it (a crash, a kill). A retry
    of the stage may get past it (e.g. the OOM killer), so it is transient."""


class WorkerTraceback(Exception):  # noqa: N818 - a traceback, shown as the cause of the error raised here
    """The traceback of an exception raised in a worker: the `__cause__` of the same exception
    raised again in the stage process."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class WorkerError(RuntimeError):
    """An exception from a worker that could not be sent back as itself (it does not pickle)."""


# --- the worker process ----------------------------------------------------------------------

def _failure(exc: BaseException) -> tuple:
    tb = "".join(traceback.format_exception(exc))
    try:  # the exception itself where it pickles (every EnvError does), so its class survives
        import pickle

        pickle.loads(pickle.dumps(exc))
        return ("error", exc, tb)
    except Exception:  # noqa: BLE001 - any pickling failure: send its class name and text instead
        return ("error", WorkerError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"), tb)


def _answer(env, method: str, args: tuple):
    if method == "expert":  # an iterator does not cross a pipe: the trajectories do
        return list(env.expert(*args))
    if method == "replay_stats":
        return env.replay_stats
    return getattr(env, method)(*args)


def _serve(conn, cfg) -> None:
    """A worker's main loop: one adapter, requests answered in order until close or the pipe ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # closes the simulator on the way out
    env = None
    try:
        from act_trainer.envs import make_env

        try:
            env = make_env(cfg)
        except Exception as e:  # noqa: BLE001 - any failure to build it goes back to the stage
            conn.send(_failure(e))
            return
        conn.send(("ok", os.getpid()))
        while True:
            try:
                method, args = conn.recv()
            except (EOFError, OSError):
                return  # the stage process is gone: end with it
            if method == "_stop":
                return
            try:
                answer = ("ok", _answer(env, method, args))
            except Exception as e:  # noqa: BLE001 - the caller gets it, as itself
                answer = _failure(e)
            try:
                conn.send(answer)
            except (BrokenPipeError, OSError):
                return
    finally:
        if env is not None:
            with contextlib.suppress(Exception):
                env.close()


# --- the stage's side ------------------------------------------------------------------------

def _context(cfg):
    """The forkserver context, its server preloading the adapter's module and packages (when it is
    not running yet; a package that is not installed is skipped, and the worker says so)."""
    from act_trainer.envs import REGISTRY

    ctx = multiprocessing.get_context("forkserver")
    preload = ["__main__", __name__]
    if cfg.name in REGISTRY:
        adapter = REGISTRY[cfg.name]
        preload += [adapter.target.split(":")[0], *adapter.modules, *PRELOAD.get(cfg.name, ())]
    ctx.set_forkserver_preload(preload)
    return ctx


def _how_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "closed its pipe"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class EnvWorker:
    """One environment adapter in a worker process, behind the Environment protocol (envs/base.py).

    The process starts on construction; `started()` waits until its adapter is built. Closed, a
    worker starts afresh on its next use (as an adapter starts its simulator afresh)."""

    def __init__(self, cfg, index: int = 0, ctx=None):
        self.cfg, self.index = cfg, index
        self.name = cfg.name
        self._ctx = ctx or _context(cfg)
        self._proc = self._conn = None
        self._pending: str | None = None  # the request awaiting its answer, for messages
        self.pid: int | None = None
        self._spawn()

    def __repr__(self) -> str:
        return f"EnvWorker({self.name} #{self.index}, pid {self.pid})"

    @property
    def label(self) -> str:
        return f"the {self.name} environment's worker {self.index} (pid {self.pid or self._proc.pid})"

    def _spawn(self) -> None:
        self._conn, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_serve, args=(child, self.cfg), daemon=True,
                                       name=f"env-{self.name}-{self.index}")
        self._proc.start()
        child.close()  # the worker holds the only other end: its end is our EOF
        self.pid = None
        self._pending = "start (building the adapter)"

    def started(self) -> EnvWorker:
        if self.pid is None:
            if self._proc is None:
                self._spawn()
            try:
                self.pid = self.result()
            except WorkerDied:
                raise
            except BaseException:
                self._finish_stop()  # a worker whose adapter could not be built ends by itself
                raise
        return self

    # --- requests --------------------------------------------------------------------------

    def submit(self, method: str, *args) -> None:
        """Send a request; its answer is the next result()."""
        self.started()
        if self._pending is not None:
            raise RuntimeError(f"{self.label}: {method}() sent while {self._pending} awaits its answer")
        self._pending = f"{method}({', '.join(repr(a)[:80] for a in args)})"
        try:
            self._conn.send((method, args))
        except (BrokenPipeError, OSError):
            raise self._died() from None

    def result(self):
        """The answer to the request in flight: its value, or its exception raised here."""
        ready = multiprocessing.connection.wait([self._conn, self._proc.sentinel])
        message = None
        if self._conn in ready or self._conn.poll():  # an answer sent just before the worker ended counts
            with contextlib.suppress(EOFError, OSError):
                message = self._conn.recv()
        if message is None:
            raise self._died()
        self._pending = None
        status, value, *tb = message
        if status == "ok":
            return value
        value.add_note(f"(raised in {self.label})")
        raise value from WorkerTraceback(tb[0])

    def call(self, method: str, *args):
        self.submit(method, *args)
        return self.result()

    def _died(self) -> WorkerDied:
        self._proc.join(timeout=STOP_S)
        how, during = _how_ended(self._proc.exitcode), self._pending
        label = self.label
        self._drop()
        return WorkerDied(f"{label} {how} during {during}; its log above may say why")

    def _drop(self) -> None:
        self._conn.close()
        self._proc = self._conn = None
        self.pid = self._pending = None

    # --- the Environment protocol ------------------------------------------------------------

    def splits(self) -> list[str]:
        return self.call("splits")

    def episodes(self, split: str) -> list[str]:
        return self.call("episodes", split)

    def task_type(self, episode: str) -> str | None:
        return self.call("task_type", episode)

    def reset(self, episode: str):
        return self.call("reset", episode)

    def step(self, action: str):
        return self.call("step", action)

    def admissible(self) -> list[str] | None:
        return self.call("admissible")

    def expert(self, split: str, limit: int, max_length: int) -> Iterator:
        return iter(self.call("expert", split, limit, max_length))

    def branch(self, traj, step: int, action: str):
        return self.call("branch", traj, step, action)

    def admissible_at(self, traj, step: int) -> list[str] | None:
        return self.call("admissible_at", traj, step)

    @property
    def replay_stats(self):
        return self.call("replay_stats")

    # --- ending ------------------------------------------------------------------------------

    def _ask_stop(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send(("_stop", ()))

    def _finish_stop(self) -> None:
        if self._proc is None:
            return
        self._proc.join(timeout=STOP_S)
        if self._proc.exitcode is None:
            log.warning("%s did not close in %.0f s; killing it", self.label, STOP_S)
            self._proc.kill()
            self._proc.join()
        self._drop()

    def close(self) -> None:
        """End the worker (its adapter closes its simulator); safe to call again."""
        self._ask_stop()
        self._finish_stop()


class EnvPool:
    """`size` EnvWorkers of one EnvironmentConfig, started at once and reused for every episode."""

    def __init__(self, cfg, size: int):
        if size < 1:
            raise ValueError(f"EnvPool: size must be >= 1, not {size}")
        ctx = _context(cfg)
        self.workers: list[EnvWorker] = []
        try:
            self.workers = [EnvWorker(cfg, i, ctx) for i in range(size)]
            for w in self.workers:
                w.started()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self.workers:  # all asked first, so their simulators shut down at once
            w._ask_stop()
        for w in self.workers:
            w._finish_stop()
