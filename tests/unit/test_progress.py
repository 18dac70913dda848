"""Live progress: the record's math, its two channels (MLflow metrics, log line), shards, the
status headline, and where logs go. Pure."""

import pytest

from act_operator import launch, watch
from act_operator import logs as L
from act_operator.api import API_VERSION, ACTJobStatus, parse_actjob
from act_operator.local import progress_cell
from act_trainer import progress as P


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def meter(total=40, done=0, interval=10.0):
    clock = Clock()
    return P.Meter("judge", total, done=done, interval=interval, clock=clock, wall=lambda: 1_700_000_000.0), clock


def test_rate_and_eta_count_only_the_work_of_this_attempt():
    m, clock = meter(total=40, done=10)  # resumed at step 10: those cost this attempt no time
    clock.t += 5
    p = m.update(20)
    assert (p.done, p.total, p.percent) == (20, 40, 50.0)
    assert p.rate == pytest.approx(2.0) and p.eta_seconds == pytest.approx(10.0)
    assert p.unit == "steps" and p.updated == 1_700_000_000.0


def test_nothing_measured_yet_has_no_rate_nor_eta():
    m, _ = meter()
    p = m.update(0)
    assert (p.percent, p.rate, p.eta_seconds) == (0.0, None, None)
    assert P.eta(5, None, 0.5) is None and P.eta(5, 10, None) is None  # no total or no rate: no ETA


@pytest.mark.parametrize("then", [0.25, 4.0], ids=["4x-faster", "4x-slower"])
def test_the_eta_follows_a_rate_that_changed(then):
    """Steps of 1 s, then 4x faster or slower from 25%: at 50% the ETA the operator reads (the
    MLflow record, counted down) and `actjob run` prints (the log line) is within 30% of the
    time really left. An average since the start was +169% and -38% here."""
    clock = Clock()
    m = P.Meter("judge", 200, interval=10, clock=clock, wall=lambda: 1_700_000_000.0 + clock.t)
    at, latest = {}, None
    for step in range(1, 201):
        clock.t += 1.0 if step <= 50 else then
        at[step] = clock.t
        if (p := m.update(step)) and step <= 100:
            latest = p
    real = at[200] - at[100]
    read = P.from_metrics(P.to_metrics(latest), "judge", now=1_700_000_000.0 + at[100])
    assert abs(read.eta_seconds / real - 1) <= 0.30, (read.eta_seconds, real)
    _, printed = P.from_line(P.to_line("judge", latest))
    assert printed.rate == latest.rate and printed.eta_seconds == latest.eta_seconds
    assert abs(latest.rate * then - 1) <= 0.30  # the rate shown is the recent one too


def test_a_stall_slows_the_rate_and_a_resumed_attempts_steps_cost_nothing():
    m, clock = meter(total=40, done=30)
    clock.t += 10
    assert m.update(35).rate == pytest.approx(0.5)
    clock.t += 10  # no step for 10 s: the recent rate falls (work seen lately: 5 steps in 20 s)
    assert m.update(35, final=True).rate == pytest.approx(0.25)


def test_reports_are_throttled_but_the_final_one_always_comes():
    m, clock = meter(interval=10)
    assert m.update(1) is not None  # the first report comes at once
    clock.t += 3
    assert m.update(2) is None
    assert m.update(3, final=True).done == 3
    clock.t += 9.9
    assert m.update(4) is None
    clock.t += 0.2
    assert m.update(5).done == 5


def test_only_the_stages_key_metrics_are_kept_latest_first():
    m, _ = meter()
    m.observe({"reward": 0.25, "loss": 1.5, "learning_rate": 1e-4, "malformed_rate": float("nan")})
    m.observe({"reward": 0.5})
    assert m.update(1).metrics == {"reward": 0.5, "loss": 1.5}


def test_done_never_exceeds_total_in_percent():
    m, _ = meter(total=4)
    p = m.update(6)  # e.g. a total known only roughly
    assert p.total == 6 and p.percent == 100.0


def test_mlflow_metrics_round_trip_and_the_eta_counts_down_from_the_report():
    m, clock = meter(total=40)
    clock.t += 10
    m.observe({"reward": 0.75})
    p = m.update(10)
    metrics = P.to_metrics(p)
    assert metrics["act.progress.done"] == 10 and metrics["act.progress.metric.reward"] == 0.75
    back = P.from_metrics({**metrics, "reward": 0.1, "loss": 3.0}, "judge", now=p.updated + 12)
    assert (back.done, back.total, back.percent, back.rate) == (10, 40, 25.0, 1.0)
    assert back.eta_seconds == pytest.approx(30 - 12) and back.metrics == {"reward": 0.75}
    assert P.from_metrics({"reward": 0.1}, "judge") is None  # a run that never reported


def test_log_line_round_trip():
    m, clock = meter(total=8)
    clock.t += 2
    p = m.update(4)
    line = "2026-11-30 10:00:00,000 INFO act_trainer.progress: " + P.to_line("judge", p) + "\n"
    assert "[##########----------] 4/8 steps 50.0% 2 steps/s ETA 2s" in line
    stage, back = P.from_line(line)
    assert stage == "judge" and back == p
    assert P.from_line("an ordinary line | with a bar") is None
    assert P.from_line("act-progress judge x | {not json") is None


def test_shards_add_up_and_the_slowest_decides_the_eta():
    a = P.Progress(done=3, total=10, rate=1.0, eta_seconds=7, unit="states", metrics={"kept": 2}, updated=5)
    b = P.Progress(done=5, total=10, rate=2.0, eta_seconds=2.5, unit="states", metrics={"kept": 4}, updated=6)
    c = P.combine([a, b])
    assert (c.done, c.total, c.percent, c.rate, c.eta_seconds, c.updated) == (8, 20, 40.0, 3.0, 7, 6)
    assert c.metrics == {"kept": 3.0}
    assert P.combine([]) is None and P.combine([a]) is a
    assert P.combine([a, b.model_copy(update={"total": None})]).total is None


@pytest.mark.parametrize("seconds,text", [(None, "?"), (0.4, "0s"), (45, "45s"), (200, "3m20s"), (3720, "1h02m")])
def test_durations(seconds, text):
    assert P.duration(seconds) == text


def test_bar():
    assert P.bar(0, 4) == "[----]" and P.bar(50, 4) == "[##--]" and P.bar(100, 4) == "[####]"
    assert P.bar(None, 3) == "[???]"


def running(stage="judge", attempts=1, progress_attempt=1, **fields):
    status = ACTJobStatus()
    st = status.stages[stage]
    st.phase, st.attempts = "Running", attempts
    p = P.Progress(**{"done": 12, "total": 40, "percent": 30.0, "rate": 2.0, "eta_seconds": 14, **fields})
    st.progress = watch.stage_progress(p, progress_attempt)
    return status


def test_headline_shows_the_running_attempts_progress():
    status = running()
    watch.headline(status)
    assert (status.progress, status.eta) == ("30%", "14s")
    assert "[###-------] 12/40 steps 30.0% 2 steps/s ETA 14s" == progress_cell(status.stages["judge"])


def test_headline_ignores_an_earlier_attempts_progress_and_clears_when_nothing_runs():
    status = running(attempts=2, progress_attempt=1)
    watch.headline(status)
    assert (status.progress, status.eta) == (None, None)
    status = running()
    watch.headline(status)
    status.stages["judge"].phase = "Succeeded"
    watch.headline(status)
    judge = status.stages["judge"]
    assert (status.progress, status.eta) == (None, None)
    assert (judge.progress.done, judge.progress.percent) == (40, 100.0)
    assert progress_cell(judge) == "[##########] 40/40 steps 100.0%"


def test_progress_in_the_status_is_camel_case_with_a_time():
    status = running(updated=1_700_000_000.0)
    body = status.model_dump(mode="json", by_alias=True)["stages"]["judge"]["progress"]
    assert body["etaSeconds"] == 14 and body["attempt"] == 1 and body["updated"].startswith("2023-11-14T22:13:20")
    assert ACTJobStatus.model_validate(status.model_dump(mode="json", by_alias=True)) == status


def test_the_mlflow_search_names_uid_stage_and_attempt():
    assert watch.search_filter("u-1", "eval", 3) == (
        "tags.`act.actjob.uid` = 'u-1' and tags.`act.stage` = 'eval' and tags.`act.attempt` = '3'")


def make_job():
    return parse_actjob({"apiVersion": API_VERSION, "kind": "ACTJob",
                         "metadata": {"name": "demo", "namespace": "team", "uid": "uid-1"},
                         "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                                  "storage": {"root": "s3://bucket/act"}}})


def test_each_attempts_config_names_its_attempt_and_where_its_logs_go():
    job = make_job()
    run = launch.plan(job, "collect", 3)
    assert run.configs[0].attempt == 3
    assert run.configs[0].logs == "s3://bucket/act/team/demo/uid-1/logs/collect/attempt-3"


def test_which_logs_actjob_logs_shows():
    status = ACTJobStatus()
    status.stages["preflight"].attempts = 1
    status.stages["collect"].attempts = 2
    assert L.chosen(status, None, None) == [("preflight", 1), ("collect", 2)]
    assert L.chosen(status, "collect", 1) == [("collect", 1)]
    with pytest.raises(L.NoLogs, match="--attempt: collect has attempts 1 to 2; there is no attempt 3"):
        L.chosen(status, "collect", 3)
    with pytest.raises(L.NoLogs, match="STAGE: 'train' is not a stage"):
        L.chosen(status, "train", None)
    with pytest.raises(L.NoLogs, match="no stage has run yet"):
        L.chosen(ACTJobStatus(), None, None)
    with pytest.raises(L.NoLogs, match="judge has not run yet"):
        L.chosen(status, "judge", None)
