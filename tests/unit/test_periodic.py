"""Periodic work on ACTJobs: kopf-timer semantics without kopf's timers (and their finalizer)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import kopf

from act_operator import handlers, periodic
from act_operator.pipeline import now


def running_body(name: str = "a", **meta) -> dict:
    return {"metadata": {"name": name, **meta}, "spec": {},
            "status": {"phase": "Running", "stages": {"collect": {"phase": "Running"}}}}


def running(name: str = "a", timers=None, **meta) -> tuple[str, str, periodic.Entry]:
    return "ns", name, periodic.entry(running_body(name, **meta), timers)


def settled(name: str = "a", timers=None) -> tuple[str, str, periodic.Entry]:
    return "ns", name, periodic.entry({"metadata": {"name": name}, "spec": {}, "status": {
        "phase": "Succeeded", "stages": {"collect": {"phase": "Succeeded"}}}}, timers)


def every(interval=10.0, initial_delay=5.0, when=handlers._running):
    return periodic.Timer(lambda namespace, name, body: None, interval, initial_delay, when)


def test_a_timer_starts_after_its_initial_delay_never_overlaps_and_runs_an_interval_after_each_run():
    t = every()
    s = periodic.Schedule()
    assert s.take([running(timers=[t])], 0.0) == []
    assert [(x[0], x[1], x[2]) for x in s.take([running(timers=[t])], 5.0)] == [(t, "ns", "a")]
    assert s.take([running(timers=[t])], 100.0) == []  # still running: no second run beside it
    s.done(t, "ns", "a", 101.0)
    assert s.take([running(timers=[t])], 110.0) == []
    assert len(s.take([running(timers=[t])], 111.0)) == 1
    s.done(t, "ns", "a", 111.0, delay=1.0)  # a kopf.TemporaryError's delay
    assert len(s.take([running(timers=[t])], 112.0)) == 1


def test_settled_deleted_and_forgotten_actjobs_cost_nothing_and_a_new_match_starts_over():
    t = every()
    s = periodic.Schedule()
    s.take([running(timers=[t])], 0.0)
    assert s.take([settled(timers=[t])], 6.0) == [] and s.due == {}  # its filter no longer matches: forgotten
    assert s.take([running(timers=[t])], 7.0) == []  # matching again waits its initial delay again
    assert len(s.take([running(timers=[t])], 12.0)) == 1
    s2 = periodic.Schedule()
    assert s2.take([running(timers=[t], deletionTimestamp="2026-01-01T00:00:00Z")], 0.0) == [] and s2.due == {}


def test_only_actjobs_a_timer_wants_are_indexed():
    assert periodic.wanted(status=running_body()["status"], spec={})
    assert not periodic.wanted(status=settled()[2].body["status"], spec={})
    assert [t.id for t in running()[2].timers][:1] == ["watch_timer"] and settled()[2].timers == ()
    assert not periodic.wanted(status={"phase": "Suspended", "stages": {"collect": {"phase": "Running"}}}, spec={})
    assert not periodic.wanted(status=None, spec=None)  # just created: no status yet
    backing_off = {"phase": "Running", "stages": {"collect": {"phase": "BackingOff"}}}
    assert [t.id for t in periodic.TIMERS if t.when(status=backing_off, spec={})] == ["backoff_timer"]
    assert [t.id for t in periodic.entry({"status": backing_off}).timers] == ["backoff_timer"]


def test_the_backoff_timer_makes_no_api_call_before_the_backoff_ends(monkeypatch):
    calls = []
    monkeypatch.setattr(handlers, "reconcile", lambda namespace, name, body=None: calls.append(name))

    def body(at):
        return {"metadata": {"name": "b"}, "status": {"phase": "Running", "stages": {"collect": {
            "phase": "BackingOff", "nextAttemptAt": at.strftime("%Y-%m-%dT%H:%M:%SZ")}}}}

    handlers.backoff_timer("ns", "b", body(now() + timedelta(seconds=30)))
    assert calls == []
    handlers.backoff_timer("ns", "b", body(now() - timedelta(seconds=1)))
    assert calls == ["b"]


def test_the_loop_runs_due_timers_from_the_index_and_a_failure_only_postpones_the_next_run(caplog):
    ran = []

    def fn(namespace, name, body):
        ran.append((namespace, name, body["status"]["phase"]))
        if len(ran) == 1:
            raise kopf.TemporaryError("conflict", delay=0.05)

    timer = periodic.Timer(fn, interval=0.05, initial_delay=0.0, when=handlers._running)

    async def main():
        index = {("ns", "a"): [running(timers=[timer])[2]]}
        task = asyncio.create_task(periodic.run(index, lambda: None, dict, tick=0.01))
        await asyncio.sleep(0.3)
        index.clear()  # the ACTJob finished or was deleted: it left the index
        await asyncio.sleep(0.05)
        n = len(ran)
        await asyncio.sleep(0.2)
        task.cancel()
        return n

    with caplog.at_level("INFO", logger="act_operator.periodic"):
        n = asyncio.run(main())
    assert n >= 3 and len(ran) == n  # ran again after the failure; nothing once gone from the index
    assert set(ran) == {("ns", "a", "Running")}
    assert caplog.text.count("[ns/a] Timer 'fn' succeeded.") == n - 1  # as kopf's timers logged it
    assert "timer fn failed: TemporaryError: conflict" in caplog.text
