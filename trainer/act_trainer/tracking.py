"""MLflow from inside a stage: one child run under the ACTJob's parent run.

Only the main process of a stage logs. Without a tracking URI every call is a no-op,
so stages run the same with and without MLflow.
"""

from __future__ import annotations

import contextlib
import os

from act_trainer.config import StageBase

SECRET_HINTS = ("secret", "password", "token", "key")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif not any(h in k.lower() for h in SECRET_HINTS):
            out[key] = v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
    return out


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

            clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            mlflow.log_metrics(clean, step=step)

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

            mlflow.set_tags({k: str(v) for k, v in tags.items()})

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
    tags = {"act.stage": cfg.stage, "act.actjob": cfg.job.name, "act.actjob.uid": cfg.job.uid,
            "act.output": cfg.output}
    with mlflow.start_run(experiment_id=experiment_id, run_name=cfg.stage, parent_run_id=parent, tags=tags) as r:
        run.run_id = r.info.run_id
        mlflow.log_params(_flatten(cfg.model_dump(mode="json", exclude={"tracking"})))
        yield run
