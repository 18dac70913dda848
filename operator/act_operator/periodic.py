"""Periodic work on ACTJobs (kopf-timer-like) that writes no finalizer.

kopf gives every `@kopf.timer` and `@kopf.daemon` a finalizer on each object its filter matches
(`requires_finalizer=True`, not an option): a patch when a stage starts, another when it ends, one
more watch event each, and a delete that waits for the operator. Here the ACTJobs that need
periodic work are a kopf index instead (`@kopf.index`, kept in memory from the watch kopf runs
anyway: no API call, nothing written), and one loop in the operator's event loop, started by a
startup handler, runs each timer when it is due. The semantics are kopf's: a timer starts
`initial_delay` after its filter first matches, runs every `interval` after each run ends, never
overlaps itself, and stops when its filter stops matching (or the ACTJob is deleted).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass

import kopf

log = logging.getLogger("act_operator.periodic")

TICK_S = 0.5  # how often the loop looks for due timers (a timer runs at most this late)


@dataclass(frozen=True)
class Timer:
    fn: Callable[[str, str, dict], object]  # (namespace, name, body as plain JSON)
    interval: float
    initial_delay: float
    when: Callable[..., bool]  # called as when(status=..., spec=...), as a kopf filter is
    executor: Executor | None = None  # None: kopf's executor, the one its sync handlers run in

    @property
    def id(self) -> str:
        return self.fn.__name__


TIMERS: list[Timer] = []

# The context kopf processes objects in: kopf.event (a timer's Events) needs kopf's event queue,
# which kopf puts there and not in a startup handler's context. The indexer adopts it.
_context: contextvars.Context | None = None


def forget_context() -> None:
    """An operator (re)starting in this process: the last one's context holds its closed loop."""
    global _context
    _context = None


def adopt_context() -> None:
    """Called from kopf's object processing (the index function): remember its context once."""
    global _context
    if _context is None:
        _context = contextvars.copy_context()


def timer(*, interval: float, initial_delay: float, when: Callable[..., bool], executor: Executor | None = None):
    """Register `fn(namespace, name, body)` to run while `when(status=, spec=)` holds for an ACTJob."""

    def register(fn):
        TIMERS.append(Timer(fn, interval, initial_delay, when, executor))
        return fn

    return register


def wanted(status, spec, **_) -> bool:
    """The index's filter: an ACTJob some timer wants now (the others are not kept at all)."""
    return any(t.when(status=status or {}, spec=spec or {}) for t in TIMERS)


@dataclass(frozen=True)
class Entry:
    """What the index keeps of an ACTJob: its latest body and the timers its filters want, both as
    of the last watch event (filters run once per event, not on every tick of the loop)."""
    body: Mapping
    timers: tuple[Timer, ...]


def entry(body: Mapping, timers: list[Timer] | None = None) -> Entry:
    status, spec = body.get("status") or {}, body.get("spec") or {}
    deleting = (body.get("metadata") or {}).get("deletionTimestamp")
    return Entry(body, () if deleting else tuple(
        t for t in (TIMERS if timers is None else timers) if t.when(status=status, spec=spec)))


class Schedule:
    """Which (timer, ACTJob) pairs are due, by the loop's clock. Pure bookkeeping: no I/O."""

    def __init__(self):
        self.due: dict[tuple[str, str, str], float] = {}  # (timer id, namespace, name) -> when
        self.busy: set[tuple[str, str, str]] = set()

    def take(self, entries: Iterable[tuple[str, str, Entry]], now: float) -> list[tuple[Timer, str, str, Mapping]]:
        """The timers to run now, each marked busy until `done`; forgets pairs whose filter no
        longer matches (matching again starts over from initial_delay, as a kopf timer does)."""
        live, out = set(), []
        for namespace, name, e in entries:
            for t in e.timers:
                key = (t.id, namespace, name)
                live.add(key)
                if self.due.setdefault(key, now + t.initial_delay) <= now and key not in self.busy:
                    self.busy.add(key)
                    out.append((t, namespace, name, e.body))
        for key in [k for k in self.due if k not in live and k not in self.busy]:
            del self.due[key]
        return out

    def done(self, t: Timer, namespace: str, name: str, now: float, delay: float | None = None) -> None:
        key = (t.id, namespace, name)
        self.busy.discard(key)
        self.due[key] = now + (t.interval if delay is None else delay)


async def run(index: Mapping, executor: Callable[[], Executor], to_plain: Callable[[Mapping], dict],
              tick: float = TICK_S) -> None:
    """Run the timers of the ACTJobs in `index` ((namespace, name) -> their latest Entry) until
    cancelled. `executor()` is where a timer without its own runs (looked up per call:
    kopf may replace its executor when its settings change)."""
    loop, schedule, tasks = asyncio.get_running_loop(), Schedule(), set()

    async def call(t: Timer, namespace: str, name: str, body: Mapping) -> None:
        delay = None
        try:
            # in kopf's processing context, as kopf runs a sync handler (a copy: one per thread)
            context = (_context or contextvars.copy_context()).copy()
            await loop.run_in_executor(t.executor or executor(), context.run, t.fn, namespace, name, to_plain(body))
            log.info("[%s/%s] Timer %r succeeded.", namespace, name, t.id)  # the line kopf's timers logged
        except Exception as e:  # noqa: BLE001 - a timer that failed runs again at its next tick
            delay = e.delay if isinstance(e, kopf.TemporaryError) else None  # it names when to try again
            log.warning("%s/%s: timer %s failed: %s: %s", namespace, name, t.id, type(e).__name__, e)
        finally:
            schedule.done(t, namespace, name, loop.time(), delay)

    while True:
        entries = [(ns, name, e) for (ns, name), store in list(index.items()) for e in list(store)[-1:]]
        for t, namespace, name, body in schedule.take(entries, loop.time()):
            task = loop.create_task(call(t, namespace, name, body))
            tasks.add(task)  # a reference, so that the task is not collected while it runs
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(tick)
