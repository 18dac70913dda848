"""MLflow from inside a stage: one child run under the ACTJob's parent run.

Only the main process of a stage logs. Without a tracking URI every call is a no-op,
so stages run the same with and without MLflow. The run's params are every field of the
stage config (act_trainer.util.mlflow_params: flattened, credentials scrubbed, cut to
MLflow's limit).
"""

from __future__ import annotations

import contextlib
import os

from act_trainer.config import StageBase
from act_trainer.util import mlflow_params, numeric_metrics, scrub


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


class StageRun:
    """What a stage logs. `active` is False when tracking is off or on non-main ranks."""

    def __init__(self, cfg: StageBase):
        self.cfg = cfg
        self.active = bool(cfg.tracking.uri) and is_main_process()
        self.run_id: str | None = None

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        if self.active:
            import mlflow

            mlflow.log_metrics(numeric_metrics(metrics), step=step)

    def log_dataset(self, uri: str, name: str, digest: str, context: str, rows: list[dict] | None = None) -> None:
        """Record a dataset input with its digest (the manifest's), so lineage can be followed."""
        if not self.active:
            return
        import mlflow
        import pandas as pd
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.http_dataset_source import HTTPDatasetSource

        try:
            source = resolve_dataset_source(uri)
        except Exception:  # a URI MLflow has no resolver for (e.g. a plain name): keep it as text
            source = HTTPDatasetSource(uri)
        df = pd.DataFrame(rows[:1000] if rows else [{"uri": uri}])
        ds = mlflow.data.from_pandas(df, source=source, name=name, digest=digest.removeprefix("sha256:")[:36])
        mlflow.log_input(ds, context=context)

    def set_tags(self, tags: dict) -> None:
        if self.active:
            import mlflow

            mlflow.set_tags({k: scrub(str(v)) for k, v in tags.items()})

    def log_dict(self, data: dict, name: str) -> None:
        if self.active:
            import mlflow

            mlflow.log_dict(data, name)


@contextlib.contextmanager
def stage_run(cfg: StageBase):
    run = StageRun(cfg)
    if not run.active:
        yield run
        return
    import mlflow

    mlflow.set_tracking_uri(cfg.tracking.uri)
    parent = cfg.tracking.parent_run_id
    if parent:
        experiment_id = mlflow.MlflowClient().get_run(parent).info.experiment_id
    else:
        experiment_id = mlflow.set_experiment(cfg.tracking.experiment).experiment_id
    tags = {k: scrub(v) for k, v in {"act.stage": cfg.stage, "act.actjob": cfg.job.name,
                                     "act.actjob.uid": cfg.job.uid, "act.output": cfg.output}.items()}
    with mlflow.start_run(experiment_id=experiment_id, run_name=cfg.stage, parent_run_id=parent, tags=tags) as r:
        run.run_id = r.info.run_id
        # Every field of the config, tracking included: credentials never enter a config (they come
        # from the environment), and mlflow_params scrubs any that would.
        mlflow.log_params(mlflow_params(cfg.model_dump(mode="json")))
        yield run
