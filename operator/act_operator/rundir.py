"""The local layout of one run: `<workdir>/runs/<name>/`, as `actjob run` (local.LocalExecutor)
writes it and ACTClient's local backend, `actjob logs`, `actjob compare` and a local
ACTExperiment read it. The one place that spells its file names:

    state.json          uid, name, spec hash and status (rewritten whole as the run goes on)
    spec.json           the spec that ran (actjob compare reads it beside the status)
    mlflow.db           the MLflow store when the ACTJob names no tracking URI
    experiment.json     an ACTExperiment's children and table (a local experiment's directory)
    actjob.yaml         the ACTJob ACTClient.train was given; actjob-run.log, its `actjob run` output
    run.lock            held by the one `actjob run` of this run (it says which: pid, command, since)
    processes.json      the stage processes alive now (pid, start time): a killed run's are stopped by the next
    <job>.json .log .result     a stage attempt's config, log and result (one set per shard)
    scratch/<stage>/    a stage's scratch space
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from act_operator.api import ACTJob, ACTJobStatus

RUNS = "runs"


def write_json(path: Path, state: dict) -> None:
    """Replace `path` whole (a reader never sees half a state)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def shard_stem(name: str, index: int, shards: int) -> str:
    """The file names of one shard's config, log and result under the run directory."""
    return name if shards == 1 else f"{name}.shard-{index:05d}"


class RunDir:
    STATE, SPEC, MLFLOW_DB, EXPERIMENT = "state.json", "spec.json", "mlflow.db", "experiment.json"
    SUBMITTED, RUN_LOG = "actjob.yaml", "actjob-run.log"
    LOCK, PROCESSES = "run.lock", "processes.json"

    def __init__(self, workdir: Path | str, name: str):
        self._place(Path(workdir) / RUNS / name)

    @classmethod
    def at(cls, path: Path | str) -> RunDir:
        """The run whose directory (or state.json) is `path` (`actjob compare .act/runs/NAME`), wherever it is."""
        path = Path(path)
        run = cls.__new__(cls)
        run._place(path.parent if path.name == cls.STATE else path)
        return run

    def _place(self, path: Path) -> None:
        self.path = path.resolve()
        self.name = self.path.name
        self.state_file, self.spec_file = self.path / self.STATE, self.path / self.SPEC
        self.experiment_file = self.path / self.EXPERIMENT
        self.submitted_file, self.run_log = self.path / self.SUBMITTED, self.path / self.RUN_LOG
        self.lock_file, self.processes_file = self.path / self.LOCK, self.path / self.PROCESSES

    @staticmethod
    def names(workdir: Path | str) -> list[str]:
        """The runs under `workdir`, by name."""
        runs = Path(workdir).resolve() / RUNS
        return sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []

    def __str__(self) -> str:
        return str(self.path)

    def make(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    # --- files ---------------------------------------------------------------------------
    @property
    def mlflow_store(self) -> str:
        """The local MLflow store: the tracking URI of a run whose ACTJob names none."""
        return f"sqlite:///{self.path / self.MLFLOW_DB}"

    def config_file(self, stem: str) -> Path:
        return self.path / f"{stem}.json"

    def log_file(self, stem: str) -> Path:
        return self.path / f"{stem}.log"

    def result_file(self, stem: str) -> Path:
        return self.path / f"{stem}.result"

    def scratch(self, stage: str) -> Path:
        return self.path / "scratch" / stage

    def attempt_logs(self, job_name: str) -> list[Path]:
        """The log files of one stage attempt (one per shard)."""
        return sorted(self.path.glob(f"{job_name}.log")) + sorted(self.path.glob(f"{job_name}.shard-*.log"))

    # --- state ---------------------------------------------------------------------------
    def read_state(self) -> dict | None:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else None

    def read_status(self) -> ACTJobStatus | None:
        state = self.read_state()
        return ACTJobStatus.model_validate(state["status"]) if state else None

    def write_state(self, state: dict) -> None:
        write_json(self.state_file, state)

    def write_spec(self, job: ACTJob) -> None:
        """What ran, beside how it went (actjob compare reads both); written once per run."""
        if not self.spec_file.exists():
            self.spec_file.write_text(job.spec.model_dump_json(by_alias=True, indent=2))

    def load_job(self) -> ACTJob | None:
        """The ACTJob as it ran here (spec and status), or None before the run saved both."""
        if not (self.state_file.exists() and self.spec_file.exists()):
            return None
        state = json.loads(self.state_file.read_text())
        return ACTJob.model_validate({"metadata": {"name": state.get("name", self.name), "uid": state.get("uid")},
                                      "spec": json.loads(self.spec_file.read_text()), "status": state["status"]})

    def start_over(self) -> None:
        """Drop the state of an earlier run (another spec, or --fresh): a new run writes its own."""
        for stale in (self.state_file, self.spec_file):
            stale.unlink(missing_ok=True)

    def forget(self) -> None:
        """Everything but the MLflow store, which stays as an MLflow server's runs stay."""
        for p in self.path.iterdir():
            if p.name != self.MLFLOW_DB:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
