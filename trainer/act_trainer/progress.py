"""Live progress of a running stage: the one definition of the record both sides share.

A stage's main process measures how far it is (`Meter`: units done of a total, throughput, ETA,
the latest key metrics) and reports it at most every `ACT_PROGRESS_SECONDS` (10 s) and at the end,
two ways: as MLflow metrics of its child run (`act.progress.*`, what the operator reads while the
stage runs: stage pods have no Kubernetes API access) and as one log line (`act-progress ...`,
what `actjob run` reads from the stage's output). Both are written and read here. Pure: no I/O.

Compare Kubeflow Trainer v2's trainerStatus (progressPercentage, estimatedRemainingSeconds, metrics).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable

from pydantic import BaseModel, Field

from act_trainer import stagedefs

PREFIX = "act.progress."  # MLflow metric keys of the record
INTERVAL_ENV = "ACT_PROGRESS_SECONDS"
DEFAULT_INTERVAL_S = 10.0
LINE_MARK = "act-progress "  # the log line: `act-progress <summary> | <json>`


class Progress(BaseModel):
    """How far a running stage attempt is (what status.stages[s].progress holds)."""

    done: float = Field(0, ge=0, description="Units done (see unit).")
    total: float | None = Field(None, ge=0, description="Units in all; null when unknown.")
    percent: float | None = Field(None, ge=0, le=100, description="done / total, in percent.")
    rate: float | None = Field(None, ge=0, description="Units per second lately (weighted to about "
                               "the last fifth of the attempt's work).")
    eta_seconds: float | None = Field(None, ge=0, description="Estimated seconds until done = total, "
                                      "at the recent rate.")
    unit: str = Field("steps", description="What is counted: steps, states or episodes.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Latest key metrics "
                                      "(reward, loss, malformed rate; pairs kept; success rate).")
    updated: float | None = Field(None, description="When the stage reported this (unix seconds).")


def unit(stage: str) -> str:
    """What a stage counts (its StageDef.unit): optimizer steps for the training stages, expert
    states sampled for collect, episodes played for eval (over every split)."""
    d = stagedefs.find(stage)
    return d.unit if d else "steps"


def live_metrics(stage: str) -> tuple[str, ...]:
    """The latest values worth a glance while a stage runs (its StageDef.live_metrics)."""
    d = stagedefs.find(stage)
    return d.live_metrics if d else ()


def percent(done: float, total: float | None) -> float | None:
    if not total:
        return None
    return round(min(100.0, 100.0 * done / total), 1)


RECENT_POWER = 4  # the unit done as the u-th of U weighs (u/U)**4: about the last fifth counts


class RecentRate:
    """Units per second lately, for the ETA. An average since the start lags a rate that changed
    (slow first steps, a warm cache) by the whole history; tqdm's per-update EMA and rich's 30 s
    window follow the change but jump with every pause. Here each unit's seconds are weighted by
    (its place among the units this attempt did / how many it did)**RECENT_POWER: a window of
    about the last fifth of the work, that grows with it (measured on simulated runs: a 4x change
    at 25% is within 15% at 50%; a checkpoint pause moves it less than a time window would,
    as the pause is one unit, not most of the window). Time without units (a stall) counts
    fully. O(1) state, held by the stage's Meter: the records carry the rate and ETA it gives."""

    def __init__(self):
        self.units = self.seconds = self.done = 0.0

    def add(self, units: float, seconds: float) -> None:
        """`units` more done in `seconds` more."""
        done = self.done + units
        keep = (self.done / done) ** RECENT_POWER if done > 0 else 1.0
        self.units = self.units * keep + units
        self.seconds = self.seconds * keep + seconds
        self.done = done

    def rate(self) -> float | None:
        return self.units / self.seconds if self.seconds > 0 and self.units > 0 else None


def eta(done: float, total: float | None, rate: float | None) -> float | None:
    """Seconds left at `rate`; None without a total or a rate."""
    if total is None or not rate:
        return None
    return max(0.0, (total - done) / rate)


def interval_s() -> float:
    """Seconds between two reports of a stage (ACT_PROGRESS_SECONDS; at least 1)."""
    try:
        return max(1.0, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


class Meter:
    """The stage side: counts units, and says when a report is due (throttled; the final one always)."""

    def __init__(self, stage: str, total: float | None, done: float = 0, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        self.stage, self.total, self.done = stage, total, done
        self.unit = unit(stage)
        self.interval = interval_s() if interval is None else interval
        self.clock, self.wall = clock, wall
        self.at = clock()
        self.recent = RecentRate()  # a resumed attempt's `done` cost it no time: only what it adds counts
        self.last: float | None = None
        self.metrics: dict[str, float] = {}

    def update(self, done: float | None = None, metrics: dict | None = None, *, advance: float = 0,
               final: bool = False) -> Progress | None:
        """Record progress; returns the record when a report is due, else None."""
        before, self.done = self.done, (self.done if done is None else done) + advance
        self.observe(metrics or {})
        t = self.clock()
        self.recent.add(max(0.0, self.done - before), t - self.at)
        self.at = t
        if not final and self.last is not None and t - self.last < self.interval:
            return None
        self.last = t
        return self.record()

    def observe(self, metrics: dict) -> None:
        """Keep the latest values of the stage's key metrics (others are ignored)."""
        keys = live_metrics(self.stage)
        self.metrics.update({k: float(v) for k, v in metrics.items()
                             if k in keys and isinstance(v, (int, float)) and math.isfinite(v)})

    def record(self) -> Progress:
        total = self.total if self.total is None else max(self.total, self.done)
        rate = self.recent.rate()
        return Progress(done=self.done, total=total, percent=percent(self.done, total), rate=rate,
                        eta_seconds=eta(self.done, total, rate), unit=self.unit, metrics=dict(self.metrics), updated=self.wall())


# --- the MLflow channel --------------------------------------------------------------------------

def to_metrics(p: Progress) -> dict[str, float]:
    """The record as MLflow metrics of the stage's run (None fields left out)."""
    out = {PREFIX + k: float(v) for k, v in (("done", p.done), ("total", p.total), ("rate", p.rate),
                                               ("eta_seconds", p.eta_seconds), ("updated", p.updated))
           if v is not None}
    out.update({PREFIX + "metric." + k: v for k, v in p.metrics.items()})
    return out


def from_metrics(metrics: dict[str, float], stage: str, now: float | None = None) -> Progress | None:
    """The record from a run's latest metrics; None when the run reported none. The ETA counts
    down from when it was reported to `now`."""
    if PREFIX + "done" not in metrics:
        return None
    get = metrics.get
    eta, updated = get(PREFIX + "eta_seconds"), get(PREFIX + "updated")
    if eta is not None and updated is not None and now is not None:
        eta = max(0.0, eta - max(0.0, now - updated))
    done, total = get(PREFIX + "done"), get(PREFIX + "total")
    mark = PREFIX + "metric."
    return Progress(done=done, total=total, percent=percent(done, total), rate=get(PREFIX + "rate"),
                    eta_seconds=eta, unit=unit(stage), updated=updated,
                    metrics={k[len(mark):]: v for k, v in metrics.items() if k.startswith(mark)})


def combine(records: list[Progress]) -> Progress | None:
    """One record for a stage whose shards report apart: units and rates add up, the ETA is the
    slowest shard's, metrics are averaged over the shards reporting them."""
    if not records:
        return None
    if len(records) == 1:
        return records[0]
    done = sum(r.done for r in records)
    total = None if any(r.total is None for r in records) else sum(r.total for r in records)
    rates = [r.rate for r in records if r.rate is not None]
    etas = [r.eta_seconds for r in records if r.eta_seconds is not None]
    keys = dict.fromkeys(k for r in records for k in r.metrics)
    metrics = {k: sum(vals) / len(vals) for k in keys
               for vals in [[r.metrics[k] for r in records if k in r.metrics]]}
    updated = [r.updated for r in records if r.updated is not None]
    return Progress(done=done, total=total, percent=percent(done, total), rate=sum(rates) if rates else None,
                    eta_seconds=max(etas) if len(etas) == len(records) else None, unit=records[0].unit,
                    metrics=metrics, updated=max(updated) if updated else None)


# --- the log line channel (actjob run) ----------------------------------------------------------

def to_line(stage: str, p: Progress) -> str:
    return f"{LINE_MARK}{stage} {summary(p)} | {p.model_dump_json()}"


def from_line(line: str) -> tuple[str, Progress] | None:
    """(stage, record) from a log line written by to_line, else None."""
    at = line.find(LINE_MARK)
    if at < 0 or " | " not in line[at:]:
        return None
    head, _, body = line[at + len(LINE_MARK):].partition(" | ")
    try:
        return head.split(" ", 1)[0], Progress.model_validate(json.loads(body))
    except ValueError:
        return None


# --- how people read it --------------------------------------------------------------------------

def duration(seconds: float | None) -> str:
    """1h02m, 3m20s, 45s."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def bar(pct: float | None, width: int = 20) -> str:
    if pct is None:
        return "[" + "?" * width + "]"
    full = int(round(width * pct / 100))
    return "[" + "#" * full + "-" * (width - full) + "]"


def summary(p: Progress, width: int = 20, live: bool = True) -> str:
    """`[#####---------------] 12/40 steps 30.0% 2.1 steps/s ETA 13s reward=0.5`; without `live`
    (an attempt that ended) only the bar and the counts."""
    total = f"/{p.total:g}" if p.total is not None else ""
    parts = [bar(p.percent, width), f"{p.done:g}{total} {p.unit}"]
    if p.percent is not None:
        parts.append(f"{p.percent:.1f}%")
    if not live:
        return " ".join(parts)
    if p.rate is not None:
        parts.append(f"{p.rate:.3g} {p.unit}/s")
    if p.eta_seconds is not None:
        parts.append(f"ETA {duration(p.eta_seconds)}")
    parts += [f"{k}={v:.4g}" for k, v in p.metrics.items()]
    return " ".join(parts)
