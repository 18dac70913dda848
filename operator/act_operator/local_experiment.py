"""An ACTExperiment on this machine: its children one after another, each an ordinary local
ACTJob run (local.LocalExecutor), in the order experiment.plan releases them; then Table 1.

Runs resume as ACTJobs do: a child that already succeeded with the same spec is not run again,
so running the same experiment file again after an interruption goes on where it stopped.
Everything lands under `<workdir>/runs/<child>/` as for any ACTJob, and the experiment's own
state (children, table) in `<workdir>/runs/<experiment>/experiment.json`, which
`actjob compare <workdir>/runs/<experiment>` reads.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from act_operator import experiment as E
from act_operator import tracking
from act_operator.api import ACTJob
from act_operator.local import LocalExecutor
from act_operator.rundir import RunDir, write_json


class LocalExperiment:
    def __init__(self, exp: E.ACTExperiment, workdir: Path, console: Console | None = None, fresh: bool = False):
        self.exp, self.workdir, self.fresh = exp, workdir, fresh
        self.console = console or Console(stderr=True)
        self.run_dir = RunDir(workdir, exp.metadata.name).make()
        self.dir = self.run_dir.path
        self.tracking_uri = tracking.tracking_uri(exp.spec.template.tracking.uri, self.run_dir.mlflow_store)
        self.observed: dict[str, E.Observed] = {}

    def run(self, table: bool = True) -> E.ExperimentStatus:
        """Every child in turn, then Table 1 (printed unless `table` is false: a caller with its own)."""
        exp, name = self.exp, self.exp.metadata.name
        run_id = self._start_run()
        while actions := [a for a in E.plan(name, exp.spec, self.observed) if isinstance(a, E.CreateChild)]:
            for a in actions:  # a cluster runs a wave at once; one machine runs it in turn
                self.console.rule(f"[bold]{name}[/]: {a.name}  (arm {a.labels['act-operator.io/arm']}, "
                                  f"seed {a.labels.get('act-operator.io/seed', '-')})")
                job = ACTJob.model_validate({"metadata": {"name": a.name, "labels": a.labels, "annotations": (
                    {tracking.PARENT_RUN_ANNOTATION: run_id} if run_id else {})}, "spec": self._spec(a.spec)})
                done = LocalExecutor(job, self.workdir, self.console, fresh=self.fresh).run()
                self.observed[a.key] = E.observe(done)
                self._save(E.status(name, exp.spec, self.observed, run_id))
        st = E.status(name, exp.spec, self.observed, run_id)
        self._save(st)
        if run_id:
            try:
                tracking.finish_experiment(self.tracking_uri, run_id, st)
            except Exception as e:  # noqa: BLE001 - the table is in experiment.json either way
                self.console.print(f"[yellow]MLflow: the experiment's run was not closed ({e})[/]")
        if table:
            self.console.print(arms_table(name, exp.spec, st))
        return st

    def _spec(self, spec: dict) -> dict:
        # one MLflow store for the experiment: the children's runs nest under its run
        return {**spec, "tracking": {**spec.get("tracking", {}), "uri": self.tracking_uri}}

    def _start_run(self) -> str | None:
        exp = self.exp
        try:
            return tracking.start_experiment(self.tracking_uri, exp)
        except Exception as e:  # noqa: BLE001 - an outage holds no arm back; each child says so too
            self.console.print(f"[yellow]MLflow at {self.tracking_uri} does not answer ({e}); the children run "
                               "without the experiment's run[/]")
            return None

    def _save(self, st: E.ExperimentStatus) -> None:
        state = {"name": self.exp.metadata.name, "spec": self.exp.spec.model_dump(mode="json", by_alias=True),
                 "status": st.model_dump(mode="json", by_alias=True)}
        write_json(self.run_dir.experiment_file, state)


def arms_table(name: str, spec: E.ExperimentSpec, st: E.ExperimentStatus, metrics: list[str] | None = None):
    """Table 1: one row per arm, mean ± std over seeds (%), the paper's numbers beside them."""
    from act_operator.report import agg_table

    agg = {r.label: {m: (r.mean[m], r.std[m], r.seeds) for m in r.mean} for r in st.arms}
    return agg_table(agg, spec.template.environment.name, metrics,
                     title=f"ACTExperiment {name}: {st.phase} (mean ± std over seeds, %)",
                     caption=f"best arm by {spec.best_metric()}: {st.best_arm or '-'}"
                             + (f"\n{st.message}" if st.message else ""))


def load_experiment_state(path: Path) -> tuple[str, E.ExperimentSpec, E.ExperimentStatus] | None:
    """A local experiment's saved state (`actjob compare <workdir>/runs/<experiment>`), if `path` is one."""
    f = path / RunDir.EXPERIMENT if path.is_dir() else path
    if f.name != RunDir.EXPERIMENT or not f.exists():
        return None
    state = json.loads(f.read_text())
    return (state["name"], E.ExperimentSpec.model_validate(state["spec"]),
            E.ExperimentStatus.model_validate(state["status"]))
