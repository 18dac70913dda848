"""The one drive loop (drive.advance) and the one lineage (lineage.py) that the operator's
executor (handlers.ClusterExecutor) and `actjob run`'s (local.LocalExecutor) share: the
planner's actions applied and carried out in order, the parent run opened before the first
stage's config names it, MLflow not answering explained and holding no stage back."""

import io

import pytest
from rich.console import Console

from act_operator import drive, handlers, lineage, pipeline, tracking
from act_operator.api import API_VERSION, MlflowStatus, parse_actjob
from act_operator.local import LocalExecutor


def make_job(name="demo", **spec):
    return parse_actjob({"apiVersion": API_VERSION, "kind": "ACTJob",
                         "metadata": {"name": name, "namespace": "team", "uid": f"uid-{name}"},
                         "spec": {"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"},
                                  "storage": {"root": "file:///tmp/act"}, **spec}})


class Recorder:
    """A drive.Executor that records what the loop asks of it."""

    def __init__(self, observed=None, uri="http://mlflow:5000"):
        self.tracking_uri, self.observed = uri, observed or {}
        self.calls = []

    def observe(self, job):
        return self.observed

    def perform(self, job, action):
        self.calls.append(("perform", type(action).__name__, job.status.mlflow.run_id))
        return 7.0 if isinstance(action, pipeline.Wait) else None

    def save(self, job, waits):
        self.calls.append(("save", job.status.phase, tuple(w[0] for w in waits)))

    def tell(self, job, type_, reason, message):
        self.calls.append(("tell", type_, reason))


class Calls(list):
    down = False  # every MLflow call fails


@pytest.fixture
def mlflow(monkeypatch):
    """tracking's MLflow calls, faked: what they were asked (`down`: every call fails)."""
    calls = Calls()

    def call(name, result=None):
        def fn(*args):
            if calls.down:
                raise ConnectionError("refused")
            calls.append((name, *args[1:]) if name != "start_parent" else (name,))
            return result
        return fn

    monkeypatch.setattr(tracking, "start_parent", call("start_parent", MlflowStatus(experiment_id="1", run_id="p1")))
    monkeypatch.setattr(tracking, "register_model", call("register_model", "act-demo/1"))
    monkeypatch.setattr(tracking, "finish_parent", call("finish_parent"))
    return calls


def test_both_executors_implement_the_protocol(tmp_path):
    job = make_job()
    assert isinstance(handlers.ClusterExecutor(job, {}), drive.Executor)
    assert isinstance(LocalExecutor(job, tmp_path, console=Console(file=io.StringIO())), drive.Executor)


def test_a_pass_applies_each_action_then_carries_it_out_with_the_parent_run_open_before_a_stage(mlflow):
    job = make_job()
    job.status.phase = job.status.stages["preflight"].phase = "Running"
    ex = Recorder({"preflight": pipeline.Observed("succeeded", result={"metrics": {"seconds": 2.0}})})
    expected = [type(a).__name__ for a in pipeline.plan(job, ex.observed, pipeline.now())]
    step = drive.advance(job, ex)
    assert [type(a).__name__ for a in step.actions] == expected and expected[0] == "CompleteStage"
    assert expected[-1] == "StartStage" and step.started == {step.actions[-1].stage}
    performed = [c for c in ex.calls if c[0] == "perform"]
    assert [c[1] for c in performed] == expected
    # the preflight passed with the first action: the parent run is open before anything is carried out
    assert all(run_id == "p1" for _, _, run_id in performed) and mlflow == [("start_parent",)]
    # each status is saved (Running) before its action is carried out, nothing waits
    assert [c[0] for c in ex.calls] == ["save", "perform"] * len(expected)
    assert {c[1:] for c in ex.calls if c[0] == "save"} == {("Running", ())}
    assert step.mlflow is None and step.wait is None and job.status.stages["preflight"].phase == "Succeeded"


def test_mlflow_down_holds_no_stage_back_and_says_why(mlflow):
    mlflow.down = True
    job = make_job()
    job.status.stages["preflight"].phase = "Running"
    ex = Recorder({"preflight": pipeline.Observed("succeeded", result={})})
    step = drive.advance(job, ex)
    assert step.actions[-1] == pipeline.StartStage(step.actions[-1].stage, 1)  # the next stage starts anyway
    assert step.mlflow[0] == "MLflowUnavailable" and "http://mlflow:5000" in step.mlflow[1]
    assert "lineage is completed once it answers" in step.mlflow[1]
    assert {c[2] for c in ex.calls if c[0] == "save"} == {("MLflowUnavailable",)}
    assert job.status.mlflow.run_id is None

    drive.explain(job, ex, [step.mlflow])
    assert ex.calls[-1] == ("tell", "Warning", "MLflowUnavailable")
    drive.explain(job, ex, [step.mlflow])  # unchanged: told once
    assert ex.calls[-1] == ("tell", "Warning", "MLflowUnavailable") and len([c for c in ex.calls if c[0] == "tell"]) == 1
    drive.explain(job, ex, [])
    assert ex.calls[-1] == ("tell", "Normal", "WaitOver")


def test_a_wait_is_passed_on_and_a_finished_job_is_not_saved_by_the_loop(mlflow):
    job = make_job()
    job.status.stages["preflight"].phase = "Running"
    ex = Recorder({"preflight": pipeline.Observed("failed", result={"problems": ["no GPU"]})})
    step = drive.advance(job, ex)
    assert [type(a).__name__ for a in step.actions] == ["FailPreflight"] and job.status.phase == "Failed"
    assert ex.calls == [("perform", "FailPreflight", None)]  # saved with its lineage, by the executor
    assert mlflow == []  # nothing ran: no parent run

    job = make_job()
    st = job.status.stages["preflight"]
    st.phase, st.attempts, st.next_attempt_at = "BackingOff", 1, pipeline.now() + pipeline.backoff(1)
    assert drive.advance(job, Recorder()).wait == 7.0


def test_the_lineage_completes_once_and_after_an_outage(mlflow):
    job = make_job()
    job.status.stages["preflight"].phase = job.status.stages["policy"].phase = "Succeeded"
    job.status.phase = "Succeeded"
    job.status.stages["eval"].metrics = {"dev/success_rate": 0.5}
    mlflow.down = True
    down = lineage.complete(job, "http://mlflow:5000")
    assert down[0] == "MLflowUnavailable" and not job.status.registered_model and mlflow == []
    mlflow.down = False
    assert lineage.complete(job, "http://mlflow:5000") is None
    assert job.status.registered_model == "act-demo/1" and job.status.mlflow.run_id == "p1"
    assert [c[0] for c in mlflow] == ["start_parent", "register_model", "finish_parent"]
    assert mlflow[-1] == ("finish_parent", "p1", "Succeeded", {"dev/success_rate": 0.5})
    assert lineage.complete(job, None) is None and len(mlflow) == 3  # no MLflow: nothing to complete


def test_the_tracking_uri_is_the_specs_else_the_executors_default(tmp_path):
    from act_operator.settings import OperatorSettings

    assert OperatorSettings(mlflow_tracking_uri="http://op:5000").tracking_uri(None) == "http://op:5000"
    assert OperatorSettings(mlflow_tracking_uri="http://op:5000").tracking_uri("http://mine") == "http://mine"
    assert OperatorSettings().tracking_uri(None) is None
    quiet = Console(file=io.StringIO())
    ex = LocalExecutor(make_job(), tmp_path, console=quiet)
    assert ex.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'runs' / 'demo' / 'mlflow.db'}"
    # another work directory: the first executor holds its run's lock (one `actjob run` per run)
    ex = LocalExecutor(make_job(tracking={"uri": "http://mine"}), tmp_path / "other", console=quiet)
    assert ex.tracking_uri == "http://mine"


@pytest.mark.parametrize("trained, registered", [
    ((), False),  # an ACTExperiment's collect-only child: its "model" is the base model it sampled from
    (("warmup",), True),  # a warm-up alone trains pi0: a model of its own
    (("policy",), True),
])
def test_only_a_run_that_trained_a_model_registers_one(mlflow, trained, registered):
    job = make_job(stages={"judge": {"reuse": "s3://b/other/models/judge"}})  # a reused judge is not trained here
    for stage in ("preflight", "collect", *trained):
        job.status.stages[stage].phase = "Succeeded"
    job.status.stages["judge"].phase = "Reused"
    job.status.phase = "Succeeded"
    assert lineage.complete(job, "http://mlflow:5000") is None
    assert (job.status.registered_model == "act-demo/1") is registered
    assert [c[0] for c in mlflow] == ["start_parent", *(["register_model"] if registered else []), "finish_parent"]
