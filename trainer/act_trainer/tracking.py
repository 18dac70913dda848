"""MLflow from inside a stage: one child run under the ACTJob's parent run.

Only the main process of a stage logs. Without a tracking URI every call is a no-op,
so stages run the same with and without MLflow. The run's params are every field of the
stage config (act_trainer.util.mlflow_params: flattened, credentials scrubbed, cut to
MLflow's limit).

MLflow being down never fails a stage. Everything the stage logs is also kept in memory
(params, tags, metrics with their steps and times, dataset inputs, dicts, figures, and the traces
of eval episodes MLflow did not take); when MLflow did not answer (at the start or at any call)
the stage stops calling it and, once it succeeded, writes that record to ``<output>/_TRACKING.json``. The executor replays it later with
:func:`replay` into a child run under the parent run, idempotently: a replayed run carries the
record's URI as ``act.replay_of`` and is marked ``act.replay=complete`` last, so a replay that
was interrupted is redone and a finished one is never repeated.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time

from act_trainer import progress
from act_trainer.config import ReplayConfig, StageBase
from act_trainer.manifest import amend_termination_log
from act_trainer.util import mlflow_params, numeric_metrics, scrub

log = logging.getLogger("act_trainer.tracking")
progress_log = logging.getLogger("act_trainer.progress")

TRACKING_FILE = "_TRACKING.json"
NO_PARENT = ("no parent run: the executor could not open the ACTJob's MLflow parent run before this stage "
             "started (MLflow did not answer)")
MAX_DATASET_ROWS = 1000  # rows of a dataset input MLflow profiles (the digest identifies the data)
RECORDED_DATASET_ROWS = 50  # rows kept in the offline record for the replayed input's schema


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def fail_fast(timeout_s: int = 15, retries: int = 2) -> None:
    """MLflow's client retries a call that gets no answer for minutes; a stage (or an executor)
    that goes on without MLflow should know in seconds. Leaves values someone set alone."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout_s))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(retries))


class StageRun:
    """What a stage logs. `active` is False when tracking is off or on non-main ranks; `offline`
    says why MLflow is not called any more (it did not answer), while `record` keeps everything."""

    def __init__(self, cfg: StageBase):
        self.cfg = cfg
        self.active = bool(cfg.tracking.uri) and is_main_process()
        self.run_id: str | None = None
        self.offline: str | None = None
        self.record: dict = {"params": {}, "tags": {}, "metrics": [], "inputs": [], "dicts": {}, "figures": {}}

    def _call(self, what: str, fn) -> None:
        """Call MLflow unless it already failed; the first failure switches the stage to the record."""
        if not self.active or self.offline:
            return
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - whatever the client raises, training goes on
            self.offline = f"{what}: {type(e).__name__}: {str(e)[:300]}"
            log.warning("MLflow does not answer (%s); the stage goes on and records its tracking in %s",
                        self.offline, TRACKING_FILE)

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        if not self.active:
            return
        values = numeric_metrics(metrics)
        ts = int(time.time() * 1000)
        self.record["metrics"] += [{"key": k, "value": v, "step": step or 0, "timestamp": ts}
                                   for k, v in values.items()]

        def call():
            import mlflow

            mlflow.log_metrics(values, step=step)

        self._call("log_metrics", call)

    def report(self, p: progress.Progress) -> None:
        """A progress record (main process only): a log line, and the run's `act.progress.*`
        metrics while MLflow answers. Not part of the offline record: it is only of use live."""
        if not is_main_process():
            return
        progress_log.info(progress.to_line(self.cfg.stage, p))
        if not self.active:
            return
        values = progress.to_metrics(p)

        def call():
            import mlflow

            mlflow.log_metrics(values, step=int(p.done))

        self._call("log_metrics", call)

    def log_dataset(self, uri: str, name: str, digest: str, context: str, rows: list[dict] | None = None) -> None:
        """Record a dataset input with its digest (the manifest's), so lineage can be followed."""
        if not self.active:
            return
        self.record["inputs"].append({"uri": uri, "name": name, "digest": digest, "context": context,
                                      "rows": json.loads(json.dumps((rows or [])[:RECORDED_DATASET_ROWS],
                                                                    default=str))})

        def call():
            import mlflow

            mlflow.log_input(dataset(uri, name, digest, rows), context=context)

        self._call("log_input", call)

    def set_tags(self, tags: dict) -> None:
        if not self.active:
            return
        clean = {k: scrub(str(v)) for k, v in tags.items()}
        self.record["tags"].update(clean)

        def call():
            import mlflow

            mlflow.set_tags(clean)

        self._call("set_tags", call)

    def log_figure(self, figure, name: str) -> None:
        """A matplotlib figure as the PNG artifact `name`, drawn once: the same bytes are kept in
        the record (base64) for a replay."""
        if not self.active:
            return
        import base64
        import io

        png = io.BytesIO()
        figure.savefig(png, format="png", dpi=100)
        b64 = self.record["figures"][name] = base64.b64encode(png.getvalue()).decode()

        def call():
            from mlflow import MlflowClient

            _log_png(MlflowClient(self.cfg.tracking.uri), self.run_id, name, b64)

        self._call("log_figure", call)

    def log_traces(self, episodes: list[dict], judgements: list[dict]) -> list[str] | None:
        """Eval transcripts as MLflow traces linked to this run (act_trainer.transcripts); their ids,
        or None when MLflow is off or does not answer: then the record keeps them for the replay."""
        if not self.active:
            return None
        ids: list[str] = []

        def call():
            from mlflow import MlflowClient

            from act_trainer import transcripts

            client = MlflowClient(self.cfg.tracking.uri)
            ids.extend(transcripts.log_traces(client, client.get_run(self.run_id).info.experiment_id, self.run_id,
                                              episodes, judgements))

        self._call("log_traces", call)
        if self.offline:  # only traces MLflow did not get: a replay makes no second copy
            self.record["traces"] = json.loads(json.dumps({"episodes": episodes, "judgements": judgements}))
            return None
        return ids

    def log_dict(self, data: dict, name: str) -> None:
        if not self.active:
            return
        self.record["dicts"][name] = json.loads(json.dumps(data, default=str))

        def call():
            import mlflow

            mlflow.log_dict(data, name)

        self._call("log_dict", call)


def dataset(uri: str, name: str, digest: str, rows: list[dict] | None):
    """An MLflow dataset for a stage input: a sample of its rows, its source URI and digest."""
    import mlflow
    import pandas as pd
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    try:
        source = resolve_dataset_source(uri)
    except Exception:  # a URI MLflow has no resolver for (e.g. a plain name): keep it as text
        source = HTTPDatasetSource(uri)
    df = pd.DataFrame(rows[:MAX_DATASET_ROWS] if rows else [{"uri": uri}])
    return mlflow.data.from_pandas(df, source=source, name=name, digest=digest.removeprefix("sha256:")[:36])


def _start(run: StageRun, cfg: StageBase, tags: dict, params: dict):
    import mlflow

    mlflow.set_tracking_uri(cfg.tracking.uri)
    parent = cfg.tracking.parent_run_id
    if parent:
        experiment_id = mlflow.MlflowClient().get_run(parent).info.experiment_id
    else:
        experiment_id = mlflow.set_experiment(cfg.tracking.experiment).experiment_id
    active = mlflow.start_run(experiment_id=experiment_id, run_name=cfg.stage, parent_run_id=parent, tags=tags)
    run.run_id = active.info.run_id
    mlflow.log_params(params)


RUNS: list[StageRun] = []  # this process's stage runs: its log is attached to the last one when it exits


@contextlib.contextmanager
def stage_run(cfg: StageBase):
    run = StageRun(cfg)
    RUNS.append(run)
    if not run.active:
        yield run
        return
    import mlflow

    fail_fast()
    # uid, stage and attempt: how the operator finds a running attempt's run (its progress); the
    # namespace: whose run it is on an MLflow that several namespaces share (as on the parent run)
    tags = {k: scrub(v) for k, v in {"act.stage": cfg.stage, "act.actjob": cfg.job.name,
                                     "act.actjob.uid": cfg.job.uid, "act.namespace": cfg.job.namespace,
                                     "act.attempt": str(cfg.attempt), "act.output": cfg.output}.items()}
    if cfg.shard.count > 1:
        tags["act.shard"] = str(cfg.shard.index)
    # Every field of the config, tracking included: credentials never enter a config (they come
    # from the environment), and mlflow_params scrubs any that would.
    params = mlflow_params(cfg.model_dump(mode="json"))
    run.record.update(params=params, tags=dict(tags), run_name=cfg.stage, experiment=cfg.tracking.experiment,
                      parent_run_id=cfg.tracking.parent_run_id)
    if cfg.tracking.parent_run_id:
        run._call("start_run", lambda: _start(run, cfg, tags, params))
    else:  # a stage never opens a top-level run: the replay attaches this record under the parent
        run.offline = NO_PARENT
        log.warning("%s; the stage records its tracking in %s", NO_PARENT, TRACKING_FILE)
    try:
        yield run
    except BaseException:
        if run.run_id and not run.offline:
            with contextlib.suppress(Exception):
                mlflow.end_run(status="FAILED")
        raise
    if run.run_id and not run.offline:
        run._call("end_run", mlflow.end_run)
    if run.offline:
        if run.run_id:  # the partial run: off this process's run stack (the replay deletes it)
            with contextlib.suppress(Exception):
                mlflow.end_run(status="FAILED")
        write_record(run)


def write_record(run: StageRun) -> str:
    """`<output>/_TRACKING.json`: what MLflow would have, for the executor to replay."""
    from act_trainer import store

    uri = store.join(run.cfg.output, TRACKING_FILE)
    body = {**run.record, "offline": run.offline, "run_id": run.run_id, "source": uri,
            "stage": run.cfg.stage, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    store.write_bytes(uri, json.dumps(body, indent=1).encode())
    log.info("tracking recorded in %s (MLflow: %s)", uri, run.offline)
    # the stage's result says so, for the executor to replay the record once MLflow answers
    amend_termination_log({"tracking_offline": run.offline[:300]})
    return uri


# --- replay by the executor ------------------------------------------------------------------

def replay(tracking_uri: str, record: dict, parent_run_id: str | None, experiment_id: str) -> str:
    """The record's child run in MLflow, created once: found again by `act.replay_of` when it was
    replayed before (and completed), redone when an earlier replay was cut short. A partial run the
    stage opened before MLflow went away is deleted, so that the stage has one run. Returns its id."""
    from mlflow import MlflowClient
    from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag

    client = MlflowClient(tracking_uri)
    source = record["source"]
    for found in client.search_runs([experiment_id], filter_string=f"tags.`act.replay_of` = '{source}'"):
        if found.data.tags.get("act.replay") == "complete":
            return found.info.run_id
        _delete_run(client, experiment_id, found.info.run_id)  # an interrupted replay: do it again, whole
    if record.get("run_id"):
        with contextlib.suppress(Exception):
            _delete_run(client, experiment_id, record["run_id"])
    tags = {**record.get("tags", {}), "act.replay_of": source}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run_id = client.create_run(experiment_id, run_name=record.get("run_name") or record.get("stage"),
                               tags=tags).info.run_id
    params = [Param(k, str(v)) for k, v in record.get("params", {}).items()]
    metrics = [Metric(m["key"], float(m["value"]), int(m["timestamp"]), int(m["step"]))
               for m in record.get("metrics", [])]
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=params[i:i + 100])
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])
    for inp in record.get("inputs", []):
        ds = dataset(inp["uri"], inp["name"], inp["digest"], inp.get("rows"))
        client.log_inputs(run_id, [DatasetInput(ds._to_mlflow_entity(),
                                                tags=[InputTag("mlflow.data.context", inp["context"])])])
    for name, data in record.get("dicts", {}).items():
        client.log_dict(run_id, data, name)
    for name, png in record.get("figures", {}).items():
        _log_png(client, run_id, name, png)
    if traces := record.get("traces"):
        from act_trainer import transcripts

        ids = transcripts.log_traces(client, experiment_id, run_id, traces["episodes"], traces["judgements"])
        client.log_batch(run_id, tags=[RunTag("act.traces", ",".join(ids))])
    client.log_batch(run_id, tags=[RunTag("act.replay", "complete")])
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _delete_run(client, experiment_id: str, run_id: str) -> None:
    """A run and the traces linked to it (a trace outlives its run otherwise)."""
    if traced := [t.info.trace_id for t in client.search_traces(locations=[experiment_id], run_id=run_id,
                                                                include_spans=False)]:
        client.delete_traces(experiment_id, trace_ids=traced)
    client.delete_run(run_id)


def _log_png(client, run_id: str, name: str, b64: str) -> None:
    """A recorded figure, as the artifact `name` of the run (the bytes the stage drew)."""
    import base64
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(name).name
        path.write_bytes(base64.b64decode(b64))
        client.log_artifact(run_id, str(path), artifact_path=str(Path(name).parent) if "/" in name else None)


def records(output_uri: str) -> list[dict]:
    """The tracking records a stage left under its output (one per shard), oldest layout first."""
    from act_trainer import store

    found = [u for u in store.list_uris(output_uri) if u.endswith("/" + TRACKING_FILE)]
    return [json.loads(store.read_bytes(u)) for u in sorted(found)]


def replay_all(cfg: ReplayConfig) -> dict[str, list[str]]:
    """`act-trainer replay`: every record under each source, replayed under the parent run (in the
    parent's experiment); the replayed run ids by stage. Idempotent, as `replay` is."""
    from mlflow import MlflowClient

    from act_trainer import store

    fail_fast()
    store.configure(endpoint=cfg.storage.endpoint, region=cfg.storage.region)
    parent = cfg.tracking.parent_run_id
    experiment_id = MlflowClient(cfg.tracking.uri).get_run(parent).info.experiment_id
    out = {}
    for stage, uri in sorted(cfg.sources.items()):
        out[stage] = [replay(cfg.tracking.uri, rec, parent, experiment_id) for rec in records(uri)]
        log.info("replay: %s: %d run(s) under %s", stage, len(out[stage]), parent)
    return out
