"""What every stage does around its own work: checks before touching data, a scratch
directory, the MLflow child run, and publishing outputs with the manifest last."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from pathlib import Path

from act_trainer import manifest, store
from act_trainer.config import StageBase
from act_trainer.tracking import StageRun, is_main_process, stage_run

log = logging.getLogger("act_trainer")


class Stage:
    def __init__(self, cfg: StageBase, run: StageRun, scratch: Path):
        self.cfg, self.run, self.scratch = cfg, run, scratch
        self.out = scratch / "out"
        shutil.rmtree(self.out, ignore_errors=True)  # a retry must not publish a failed attempt's files
        self.out.mkdir(parents=True)
        self.started = time.monotonic()

    def publish(self, metrics: dict, extra: dict | None = None) -> dict:
        metrics = {**metrics, "seconds": round(time.monotonic() - self.started, 3)}
        if not is_main_process():
            return {}
        result = manifest.publish(self.out, self.cfg.output, stage=self.cfg.stage, metrics=metrics, extra=extra,
                                  run_id=self.run.run_id)
        self.run.log_metrics(metrics)
        self.run.set_tags({"act.manifest": store.join(self.cfg.output, manifest.MANIFEST),
                           "act.digest": result["digest"]})
        log.info("%s: published %d files to %s (%s)", self.cfg.stage, len(result["files"]), self.cfg.output,
                 result["digest"])
        return result


def configure_storage(cfg: StageBase) -> None:
    store.configure(endpoint=cfg.storage.endpoint, region=cfg.storage.region)


@contextlib.contextmanager
def stage(cfg: StageBase):
    """Configure storage and check the output is writable before any work, then run."""
    if cfg.shard.count > 1:  # shards publish side by side; the operator merges their results
        cfg.output = store.join(cfg.output, f"shard-{cfg.shard.index:05d}")
    store.configure(endpoint=cfg.storage.endpoint, region=cfg.storage.region)
    store.check_writable(cfg.output)
    with contextlib.ExitStack() as stack:
        scratch = Path(cfg.scratch) if cfg.scratch else Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix=f"act-{cfg.stage}-")))
        run = stack.enter_context(stage_run(cfg))
        yield Stage(cfg, run, scratch)
