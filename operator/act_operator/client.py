"""A Python API for ACTJobs, for people who would rather not write YAML. Its verbs follow the
Kubeflow Trainer SDK's TrainerClient (train, get_job, list_jobs, wait_for_job_status, delete_job):

    from act_operator import ACTClient, ACTJob, LocalBackendConfig

    job = ACTJob(metadata={"name": "demo"},
                 spec={"model": {"uri": "tiny://qwen3-tiny"}, "environment": {"name": "scienceworld"}})
    client = ACTClient()                                   # the cluster of the current kubeconfig
    client = ACTClient(LocalBackendConfig(workdir=".act"))  # or this machine, as `actjob run`
    name = client.train(job)
    job = client.wait_for_job_status(name)                 # Succeeded, else an error naming why
    client.get_job_metrics(name)["eval"], client.get_model_uri(name)

On a cluster the ACTJob is created through kube.py (the one module that calls the Kubernetes
API; no torch needed) and the operator runs it. Locally, `train` starts `actjob run` on the
ACTJob in the background (the same executor, state in `<workdir>/runs/<name>/`), and the other
verbs read that state.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from act_operator.api import ACTJob, JobPhase, SpecError, parse_actjob
from act_operator.rundir import RunDir

TERMINAL = {"Succeeded", "Failed"}


@dataclass
class KubernetesBackendConfig:
    """The cluster: ACTJobs in `namespace`, through the kubeconfig (`config_file`, `context`), or
    the in-cluster service account when there is no kubeconfig."""

    namespace: str = "default"
    config_file: str | None = None
    context: str | None = None


@dataclass
class LocalBackendConfig:
    """This machine: `actjob run` in the background, its state under `workdir` (as `--workdir`)."""

    workdir: str = ".act"


class ACTJobNotFound(LookupError):
    pass


class ACTClient:
    def __init__(self, backend_config: KubernetesBackendConfig | LocalBackendConfig | None = None):
        config = backend_config or KubernetesBackendConfig()
        self.backend = _Local(config) if isinstance(config, LocalBackendConfig) else _Kubernetes(config)

    def train(self, job: ACTJob | dict) -> str:
        """Submit the ACTJob (validated first: a SpecError lists each bad field); returns its name."""
        if not isinstance(job, ACTJob):
            job = parse_actjob(job)
        return self.backend.create(job)

    def get_job(self, name: str) -> ACTJob:
        """The ACTJob with its status; ACTJobNotFound when there is none of that name."""
        return self.backend.get(name)

    def list_jobs(self) -> list[ACTJob]:
        return self.backend.list()

    def delete_job(self, name: str) -> None:
        self.backend.delete(name)

    def wait_for_job_status(self, name: str, status: Iterable[str] = ("Succeeded",), timeout: float = 3600,
                            polling_interval: float = 2.0,
                            callbacks: Iterable[Callable[[ACTJob], None]] = ()) -> ACTJob:
        """Poll until the ACTJob's phase is one of `status` (Pending, Running, Suspended, Succeeded,
        Failed); each callback gets every polled ACTJob. A job that ends in a phase not asked for
        raises RuntimeError with its message; TimeoutError after `timeout` seconds."""
        wanted = set(status)
        unknown = wanted - set(get_args(JobPhase))
        if unknown:
            raise ValueError(f"status: {sorted(unknown)} are not ACTJob phases; choose from Pending, Running, "
                             "Suspended, Succeeded, Failed")
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_job(name)
            for cb in callbacks:
                cb(job)
            phase = job.status.phase
            if phase in wanted:
                return job
            if phase in TERMINAL:
                raise RuntimeError(f"ACTJob {name} is {phase}: {job.status.message or ''}")
            self.backend.check_alive(name)
            if time.monotonic() > deadline:
                raise TimeoutError(f"ACTJob {name} is still {phase} after {timeout:.0f}s (waiting for "
                                   f"{sorted(wanted)})")
            time.sleep(polling_interval)

    def get_job_metrics(self, name: str) -> dict[str, dict[str, float]]:
        """stage -> the metrics it reported (eval's per split: dev/success_rate, ...)."""
        return {stage: dict(st.metrics) for stage, st in self.get_job(name).status.stages.items() if st.metrics}

    def get_model_uri(self, name: str) -> str | None:
        """`models:/<name>/<version>` once the model is registered (load it with
        mlflow.transformers.load_model at `get_tracking_uri`), else the model's storage URI."""
        st = self.get_job(name).status
        return f"models:/{st.registered_model}" if st.registered_model else st.model_uri

    def get_tracking_uri(self, name: str) -> str | None:
        """The MLflow tracking URI of the ACTJob's runs and registered model."""
        return self.backend.tracking_uri(self.get_job(name))


class _Kubernetes:
    def __init__(self, config: KubernetesBackendConfig):
        from kubernetes import config as kconfig

        from act_operator import kube

        self.namespace = config.namespace
        try:
            kconfig.load_kube_config(config_file=config.config_file, context=config.context)
        except kconfig.ConfigException:
            if config.config_file or config.context:  # asked for: its error is the one to see
                raise
            kconfig.load_incluster_config()
        kube.reset_clients()
        self.kube = kube

    def create(self, job: ACTJob) -> str:
        body = job.model_dump(mode="json", by_alias=True, exclude={"status"}, exclude_none=True)
        # the name and what a user may set (labels, annotations), in the client's namespace
        meta = job.metadata.model_dump(mode="json", by_alias=True, exclude_none=True,
                                       include={"name", "labels", "annotations"})
        body["metadata"] = {**meta, "namespace": self.namespace}
        self.kube.create_actjob(self.namespace, body)
        return job.metadata.name

    def get(self, name: str) -> ACTJob:
        body = self.kube.read_actjob(self.namespace, name)
        if body is None:
            raise ACTJobNotFound(f"ACTJob {self.namespace}/{name} not found")
        return parse_actjob(body)

    def list(self) -> list[ACTJob]:
        return [parse_actjob(b) for b in self.kube.list_actjobs(self.namespace)]

    def delete(self, name: str) -> None:
        if not self.kube.delete_actjob(self.namespace, name):
            raise ACTJobNotFound(f"ACTJob {self.namespace}/{name} not found")

    def check_alive(self, name: str) -> None:
        pass  # the operator runs it

    def tracking_uri(self, job: ACTJob) -> str | None:
        return job.spec.tracking.uri


class _Local:
    def __init__(self, config: LocalBackendConfig):
        self.workdir = Path(config.workdir).resolve()
        self.procs: dict[str, subprocess.Popen] = {}

    def _dir(self, name: str) -> RunDir:
        return RunDir(self.workdir, name)

    def create(self, job: ACTJob) -> str:
        import yaml

        from act_operator.local import resolve_root, resumable
        from act_operator.local_processes import RunLock, RunLocked

        name = job.metadata.name
        if name in self.procs and self.procs[name].poll() is None:
            raise RuntimeError(f"ACTJob {name} is already running here")
        resolved = job.model_copy(deep=True)  # a root that climbs out of the working directory: SpecError
        resolved.spec.storage.root = resolve_root(job.spec.storage.root, Path.cwd())
        run_dir = self._dir(name).make()
        try:  # another process's `actjob run` of it (it would refuse the one started here): say so now
            RunLock(run_dir.lock_file).acquire().release()
        except RunLocked as e:
            raise RuntimeError(f"ACTJob {name}: {e}") from None
        # a state `actjob run` will not go on from (another spec) must not be read as this job's before
        # the run replaces it; a failed run of this spec is set to run again here (resumable), before
        # the run starts: a wait must not read the old failure as the new run's outcome
        if not resumable(run_dir, resolved):
            run_dir.start_over()
        path = run_dir.submitted_file  # the ACTJob `train` was given, beside the executor's state
        path.write_text(yaml.safe_dump(job.model_dump(mode="json", by_alias=True, exclude={"status"},
                                                      exclude_none=True), sort_keys=False))
        # the same program as `actjob run` (a run of the same spec resumes, as there), in its own
        # session so that delete_job stops it with its stages
        with open(run_dir.run_log, "w") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "act_operator.cli", "run", str(path), "--workdir", str(self.workdir)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return name

    def get(self, name: str) -> ACTJob:
        run_dir = self._dir(name)
        if job := run_dir.load_job():
            return job
        if run_dir.submitted_file.exists():  # submitted, no state yet: Pending
            import yaml

            return parse_actjob(yaml.safe_load(run_dir.submitted_file.read_text()))
        raise ACTJobNotFound(f"ACTJob {name} not found under {run_dir.path.parent}")

    def list(self) -> list[ACTJob]:
        jobs = []
        for name in RunDir.names(self.workdir):
            try:
                jobs.append(self.get(name))
            except (ACTJobNotFound, SpecError):
                continue  # a directory that is not a run
        return jobs

    def delete(self, name: str) -> None:
        """Stop the run if it is ours and running, and forget its state; artifacts in storage and
        the MLflow store (mlflow.db) stay, as they do when an ACTJob is deleted from a cluster."""
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the session it was started in: it and its stages
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        run_dir = self._dir(name)
        if not run_dir.path.is_dir():
            raise ACTJobNotFound(f"ACTJob {name} not found under {run_dir.path.parent}")
        run_dir.forget()

    def check_alive(self, name: str) -> None:
        """A run that stopped before its ACTJob ended (refused, crashed) says why."""
        proc = self.procs.get(name)
        if proc is None or proc.poll() is None:
            return
        job = self.get(name)
        if job.status.phase not in TERMINAL:
            tail = self._dir(name).run_log.read_text()[-2000:]
            raise RuntimeError(f"actjob run of {name} exited with code {proc.returncode} while the ACTJob was "
                               f"{job.status.phase}:\n{tail}")

    def tracking_uri(self, job: ACTJob) -> str:
        from act_operator.tracking import tracking_uri

        return tracking_uri(job.spec.tracking.uri, self._dir(job.metadata.name).mlflow_store)
