"""The local executor behind `actjob run`: the planner's actions, carried out on this
machine. Each stage attempt is launched as `launch.plan` describes it for a cluster too:
one subprocess per shard, one after another (`torchrun` when the stage asks for several
processes), each with the config its pod would get; each shard's result comes back through
the file it writes as its termination log, and the shards' results merge as on a cluster.

The loop is drive.advance's, the lineage lineage.py's, as on a cluster; the files are
rundir.RunDir's. State lives in <workdir>/runs/<name>/state.json: run the same file again and
it goes on where it stopped (a stage that was killed restarts from its last checkpoint).

The run owns its processes (local_processes): one `actjob run` per run directory; each stage in a
process group of its own, stopped with it on SIGTERM/SIGINT/SIGHUP; a stage process a killed run
left behind is stopped by the next run before it starts anything. What the executor reads from
storage itself (the stages' tracking records) it reads with the spec's storage.s3 settings, as the
stages do.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from act_operator import drive, launch, lineage, pipeline, stages, termination, tracking, watch
from act_operator import local_processes as procs
from act_operator.api import ACTJob, ACTJobStatus, SpecError
from act_operator.pipeline import now
from act_operator.rundir import RunDir, shard_stem
from act_trainer import progress, stagedefs, store
from act_trainer.contract import TrainSettings
from act_trainer.errors import EXIT_PERMANENT


def key_metrics(stage: str, metrics: dict) -> str:
    """The metrics worth a glance (its definition's key_metrics); eval's are per split (dev/success_rate, ...)."""
    keys = stagedefs.get(stage).key_metrics
    shown = [k for k in metrics if k in keys or k.rsplit("/", 1)[-1] in keys]
    return ", ".join(f"{k}={metrics[k]:.4g}" for k in shown)


def root_problems(root: str) -> list[str]:
    """A relative file:// root means a place under the working directory here (a cluster refuses it
    outright: rules.py's storage.root-absolute); one that climbs out of it with `..` is refused."""
    if not root.startswith("file://") or root.startswith("file:///"):
        return []
    relative = os.path.normpath(root[len("file://"):])
    if relative == ".." or relative.startswith("../"):
        return [f"spec.storage.root: {root!r} climbs out of the working directory with '..' (a relative file:// "
                "root is resolved against it and must stay under it): use file://SUBDIR under it, or an "
                "absolute file:///path"]
    return []


def resolve_root(root: str, cwd: Path) -> str:
    """file:// roots relative to the working directory become absolute: stages run elsewhere. A root
    that climbs out of it is a SpecError naming spec.storage.root (root_problems)."""
    if problems := root_problems(root):
        raise SpecError(problems)
    if root.startswith("file://") and not root.startswith("file:///"):
        return "file://" + str((cwd / root[len("file://"):]).resolve())
    return root


def spec_hash(job: ACTJob) -> str:
    body = job.spec.model_dump_json(exclude={"suspend"})
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def stage_command(cfg, config_path: Path) -> list[str]:
    """The command that runs one stage config on this machine: one process, or a torchrun gang
    for nodes x processesPerNode (as `actjob run` launches it)."""
    nodes, procs = (cfg.nodes, cfg.processes_per_node) if isinstance(cfg, TrainSettings) else (1, 1)
    one = launch.Launch(cfg.stage, cfg.stage, nodes, procs, (cfg,))
    return one.command(str(config_path), python=sys.executable)


def resumable(run_dir: RunDir, job: ACTJob) -> dict | None:
    """The saved state a run of `job` (its storage root resolved) goes on from, or None: the same
    spec goes on where it stopped, a Succeeded one is not run again (as an applied ACTJob is not),
    a Failed one tries its failed stage again (pipeline.run_again), and a changed spec starts over.
    A run again is written back at once: whoever reads the state (ACTClient) must not take the old
    failure for the new run's outcome."""
    saved = run_dir.read_state()
    if not saved or saved.get("spec_hash") != spec_hash(job):
        return None
    if saved["status"]["phase"] == "Failed":
        status = pipeline.run_again(ACTJobStatus.model_validate(saved["status"]), now())
        saved["status"] = status.model_dump(mode="json", by_alias=True)
        run_dir.write_state(saved)
    return saved


class LocalExecutor:
    """drive.Executor on this machine: a stage attempt is a process per shard (see the module),
    what happened a console line; the status is saved to state.json before every action."""

    def __init__(self, job: ACTJob, workdir: Path, console: Console | None = None, fresh: bool = False):
        """Raises SpecError (a root that climbs out of the working directory) and local_processes.RunLocked
        (another `actjob run` of this run directory is running) before anything is written."""
        self.console = console or Console(stderr=True)
        self.cwd = Path.cwd()
        job = job.model_copy(deep=True)
        job.spec.storage.root = resolve_root(job.spec.storage.root, self.cwd)
        self.run_dir = RunDir(workdir, job.metadata.name).make()
        self.dir, self.state_file = self.run_dir.path, self.run_dir.state_file
        self.lock = procs.RunLock(self.run_dir.lock_file).acquire()  # released when run() returns
        try:
            self.processes = procs.StageProcesses(self.run_dir.processes_file)
            self.orphans = self._stop_orphans()
            self.tracking_uri = tracking.tracking_uri(job.spec.tracking.uri, self.run_dir.mlflow_store)
            self.job = self._restore(job, fresh)
        except BaseException:
            self.lock.release()
            raise
        self.observed: dict[str, pipeline.Observed] = {}
        self.durations: dict[str, float] = {}
        self._shown_run = self.job.status.mlflow.run_id  # the parent run, once said

    def _stop_orphans(self) -> dict[str, str]:
        """The stage processes an `actjob run` that was killed (SIGKILL: it could not stop them) left
        running: stopped before anything else, so that the next attempt is the only writer of the
        stage's checkpoints and outputs. Why each stage was interrupted, by stage."""
        why = {}
        for rec, took in self.processes.stop_orphans():
            why[rec["stage"]] = (f"interrupted: `actjob run` was killed while it ran; its process (pid {rec['pid']}) "
                                 "was stopped by the next `actjob run`")
            self.console.print(f"[yellow]{rec['what']} (pid {rec['pid']}, since {rec['since']}) was still running, left "
                               f"by an `actjob run` that was killed: stopped it ({took:.1f}s); the next attempt resumes "
                               "from its last checkpoint[/]", highlight=False)
        return why

    # --- state ---------------------------------------------------------------------------
    def _restore(self, job: ACTJob, fresh: bool) -> ACTJob:
        saved = None if fresh else resumable(self.run_dir, job)
        self.stopped = saved.get("stopped") if saved else None
        if saved:
            job.metadata.uid = saved["uid"]
            job.status = ACTJobStatus.model_validate(saved["status"])
            verb = "already succeeded" if job.status.phase == "Succeeded" else "resuming"
            again = f": {job.status.message}" if job.status.phase == "Pending" and job.status.message else ""
            self.console.print(f"[bold]{verb}[/] {job.metadata.name}{again} (uid {job.metadata.uid}; --fresh starts "
                               "over)", highlight=False)
            return job
        job.metadata.uid = str(uuid.uuid4())
        job.status = ACTJobStatus()
        self.run_dir.spec_file.unlink(missing_ok=True)  # another spec runs: saved anew with its state
        return job

    def _save(self) -> None:
        state = {"uid": self.job.metadata.uid, "name": self.job.metadata.name, "spec_hash": spec_hash(self.job),
                 "status": self.job.status.model_dump(mode="json", by_alias=True)}
        if self.stopped:  # the signal that stopped the last run: the interrupted stage's retry says it
            state["stopped"] = self.stopped
        self.run_dir.write_spec(self.job)
        self.run_dir.write_state(state)

    # --- drive.Executor ------------------------------------------------------------------
    def observe(self, job: ACTJob) -> dict[str, pipeline.Observed]:
        return self.observed  # each stage's outcome, as its processes ended (or as a stopped run left it)

    def save(self, job: ACTJob, waits: list[lineage.Wait]) -> None:
        if waits:  # MLflow did not answer: say so now (the stage may run for an hour)
            drive.explain(job, self, waits)
        if job.status.mlflow.run_id != self._shown_run:
            self._shown_run = job.status.mlflow.run_id
            self.console.print(f"  mlflow run {self._shown_run}")
        self._save()

    def tell(self, job: ACTJob, type_: str, reason: str, message: str) -> None:
        color = "yellow" if type_ == "Warning" else "dim"
        self.console.print(f"[{color}]{reason}: {message}[/]", highlight=False)

    # --- the loop ------------------------------------------------------------------------
    def run(self) -> ACTJob:
        """Every stage, as the planner says. A stop signal (SIGTERM, SIGINT, SIGHUP) stops the running
        stage's processes, records why in the state and raises local_processes.Stopped."""
        s3 = self.job.spec.storage.s3
        try:
            with procs.stopping(), store.configured(endpoint=s3.endpoint, region=s3.region):
                return self._run()
        except procs.Stopped as e:
            self._stopped(e)
            raise
        finally:
            self.lock.release()

    def _stopped(self, e: procs.Stopped) -> None:
        st = self.job.status
        running = [s for s, x in st.stages.items() if x.phase == "Running"]
        st.message = (f"stopped by {e.name}" + (f" while {', '.join(running)} ran (its processes were stopped)"
                                                if running else "")
                      + "; run the same file again to go on (a stopped stage resumes from its last checkpoint)")
        self.stopped = e.name
        self._save()
        self.console.print(f"[yellow]{st.message}[/]", highlight=False)

    def _run(self) -> ACTJob:
        job = self.job
        tracking.fail_fast()  # this process and its stages: an MLflow outage costs seconds, not minutes
        if job.status.phase == "Succeeded":
            if self.complete_lineage():  # a lineage left pending by an MLflow outage
                self._save()
            self.console.print(summary_table(job))
            return job
        self.console.print(f"[bold]ACTJob[/] {job.metadata.name}  uid={job.metadata.uid}\n"
                           f"  artifacts: {stages.job_root(job)}\n  mlflow:    {self.tracking_uri}")
        for note in job.spec.pod.local_env()[1]:  # a valueFrom cannot resolve here: said once, up front
            self.console.print(f"[yellow]{note}[/]", highlight=False)
        # a stage that was Running when we were stopped has no live process now (a killed run's was
        # stopped in __init__): what it reported, else lost
        for stage, st in job.status.stages.items():
            if st.phase == "Running":
                shards = launch.topology(job, stage)[2]
                why = self.orphans.get(stage) or (f"interrupted: `actjob run` was stopped by {self.stopped}"
                                                  if self.stopped else "interrupted (actjob run was stopped)")
                self.observed[stage] = self._read_results(st.job_name, shards) or pipeline.Observed("failed",
                                                                                                    reason=why)
        self.stopped = None
        while True:
            step = drive.advance(job, self)
            if not step.actions or job.status.phase in pipeline.TERMINAL:
                break
        self._finish()
        return job

    def _tracking_recorded(self, stage: str) -> None:
        """A stage that found MLflow down recorded its tracking in storage: say so (Waiting)."""
        uri = self.job.status.stages[stage].outputs.uri
        if stage == pipeline.PREFLIGHT or not uri:
            return
        from act_trainer.tracking import records

        offline = [r.get("offline") for r in records(uri)]
        if offline:
            drive.explain(self.job, self, [("MLflowUnavailable", f"MLflow at {self.tracking_uri} did not answer "
                                                                 f"{stage} ({offline[0]}); its tracking is recorded in "
                                                                 "storage and replayed once MLflow answers")])
            self._save()

    def complete_lineage(self) -> bool:
        """The lineage (lineage.complete), with every stage's child run replayed from the
        `_TRACKING.json` it wrote when MLflow did not answer. False, with the Waiting condition
        set, while MLflow does not answer."""
        down = lineage.complete(self.job, self.tracking_uri, replay_here=True)
        drive.explain(self.job, self, [down] if down else [])
        if down:
            self.console.print(f"[yellow]lineage pending ({down[1]}): run the same `actjob run` again once MLflow "
                               "answers; it completes the lineage (parent run, stage runs, registered model) and runs "
                               "no stage again[/]", highlight=False)
        return not down

    def perform(self, job: ACTJob, action) -> None:
        c = self.console
        if isinstance(action, pipeline.StartStage):
            self.observed[action.stage] = self._run_stage(action.stage, action.attempt)
        elif isinstance(action, pipeline.SkipStage):
            c.print(f"[dim]- {action.stage}: skipped ({action.reason})[/]")
        elif isinstance(action, pipeline.ReuseStage):
            c.print(f"[cyan]= {action.stage}: reusing {action.uri}[/]")
        elif isinstance(action, pipeline.CompleteStage):
            shown = key_metrics(action.stage, job.status.stages[action.stage].metrics)
            c.print(f"[green]✓ {action.stage}[/] {self.durations.get(action.stage, 0):.1f}s {shown}")
            self._tracking_recorded(action.stage)
        elif isinstance(action, pipeline.RetryStage):
            c.print(f"[yellow]! {action.stage} failed: {action.reason}; retrying after "
                    f"{(action.not_before - now()).total_seconds():.0f}s[/]")
        elif isinstance(action, pipeline.Wait):
            time.sleep(max(0.0, (action.until - now()).total_seconds()))
        elif isinstance(action, pipeline.FailStage):
            c.print(f"[red]✗ {action.stage}: {action.reason}[/]")
        elif isinstance(action, pipeline.FailPreflight):
            c.print(f"[red]✗ preflight found {len(action.problems)} problem(s); no stage started:[/]")
            for p in action.problems:
                c.print(f"  - {p}", highlight=False, markup=False, soft_wrap=True)

    def _run_stage(self, stage: str, attempt: int) -> pipeline.Observed:
        run = launch.plan(self.job, stage, attempt, tracking_uri=self.tracking_uri)
        started = time.monotonic()
        results = []
        for cfg in run.configs:  # one shard after another: one machine
            observed = self._run_shard(run, cfg, attempt)
            if observed.state != "succeeded" or not observed.result.get("manifest"):
                break  # a failed shard fails the attempt (exit 0 without a manifest too: the planner says so)
            results.append(observed.result)
        self.durations[stage] = time.monotonic() - started
        if len(results) < run.shards:
            return observed
        return pipeline.Observed("succeeded", result=run.merge(results))

    def _run_shard(self, run: launch.Launch, cfg, attempt: int) -> pipeline.Observed:
        stage, index = run.stage, cfg.shard.index
        stem, rd = shard_stem(run.name, index, run.shards), self.run_dir
        cfg = cfg.model_copy(update={"scratch": str(rd.scratch(stage))})
        config_path, log_path = rd.config_file(stem), rd.log_file(stem)
        config_path.write_text(cfg.model_dump_json(indent=2))
        result_path = rd.result_file(stem)
        result_path.unlink(missing_ok=True)
        # spec.pod.env's literal values, as a pod gets them (the executor's own variables win)
        env = {**os.environ, **self.job.spec.pod.local_env()[0], "ACT_TERMINATION_LOG": str(result_path),
               "HF_HUB_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
        env.pop(launch.INDEX_ENV, None)  # the shard is the config's, not an enclosing Job's
        cmd = run.command(str(config_path), python=sys.executable)
        shard = f" shard {index + 1}/{run.shards}" if run.shards > 1 else ""
        self.console.print(f"[bold blue]▶ {stage}[/] attempt {attempt}{shard}  log: {log_path}")
        with open(log_path, "w") as logf:
            try:
                proc = self.processes.start(stem, cmd, stage, f"{stage} attempt {attempt}{shard}", env=env,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
                code = self._follow(proc, logf, stage, attempt, shard)
            except BaseException:  # a stop signal (or a crash here): the stage must not outlive this run
                self.processes.stop_all(log=logf)
                raise
            self.processes.finish(stem)
        observed = self._read_result(stem)
        if code != 0:  # said as the cluster says it of a pod: the process, exit code or signal, its error
            # a signal's -N as a shell (and a container runtime) says it: 128 + N
            reason = termination.reason(code if code >= 0 else 128 - code, log_tail(log_path), who=f"process {proc.pid}",
                                        error=observed.reason if observed else None)
            return pipeline.Observed("failed", reason=f"{reason} (log: {log_path})",
                                     permanent=code == EXIT_PERMANENT,  # the exit-code contract
                                     result=observed.result if observed else {})
        return observed or pipeline.Observed("succeeded", result={})

    def _follow(self, proc: subprocess.Popen, logf, stage: str, attempt: int, shard: str) -> int:
        """The stage's output into its log and, shortened, onto the console; its exit code."""
        last_progress = time.monotonic()
        for line in proc.stdout:
            logf.write(line)
            if reported := progress.from_line(line):  # the stage's progress record: a bar, and the status
                self._progress(stage, attempt, reported[1], shard)
                continue
            if "MLflow does not answer" in line:  # act_trainer.tracking: the stage goes on, recording
                drive.explain(self.job, self, [("MLflowUnavailable", f"MLflow at {self.tracking_uri} does not "
                                                                     f"answer {stage}; it goes on and records its "
                                                                     "tracking in storage, replayed once MLflow "
                                                                     "answers")])
                self._save()
            tqdm_line = "it/s]" in line or "s/it]" in line
            if tqdm_line and time.monotonic() - last_progress < 2.0 and "100%" not in line:
                continue  # the log has every tqdm line; the terminal one every 2 s
            if tqdm_line or " INFO act_trainer" in line or "Error" in line:
                last_progress = time.monotonic() if tqdm_line else last_progress
                self.console.print(f"  [dim]{stage}[/] {line.rstrip()[-160:]}", highlight=False)
        return proc.wait()

    def _progress(self, stage: str, attempt: int, p: progress.Progress, shard: str) -> None:
        st = self.job.status.stages[stage]
        st.progress = watch.stage_progress(p, attempt)
        watch.headline(self.job.status)
        self._save()
        self.console.print(f"  [dim]{stage}{shard}[/] {escape(progress.summary(p))}", highlight=False)

    def _read_results(self, name: str | None, shards: int) -> pipeline.Observed | None:
        """What the shards of an attempt reported, merged; None while any has not reported."""
        if not name:
            return None
        results = []
        for i in range(shards):
            observed = self._read_result(shard_stem(name, i, shards))
            if observed is None or observed.state == "failed" or not observed.result.get("manifest"):
                return observed
            results.append(observed.result)
        return pipeline.Observed("succeeded", result=launch.merge_results(results))

    def _read_result(self, stem: str) -> pipeline.Observed | None:
        path = self.run_dir.result_file(stem)
        if not path.exists():
            return None
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError:
            return None
        if "error" in result:
            return pipeline.Observed("failed", reason=result["error"], permanent=bool(result.get("permanent")),
                                     result=result)
        return pipeline.Observed("succeeded", result=result)

    def _finish(self) -> None:
        job = self.job
        outcome = job.status.phase
        self.complete_lineage()
        self._save()
        self.console.print(summary_table(job, self.durations))
        color = "green" if outcome == "Succeeded" else "red"
        self.console.print(f"[bold {color}]{outcome}[/]: {job.status.message or ''}")
        if job.status.registered_model:
            self.console.print(f"registered model: {job.status.registered_model}  (mlflow {self.tracking_uri})")
        elif outcome == "Succeeded" and (why := tracking.unregistrable(self.tracking_uri, job.status.model_uri or "")):
            self.console.print(f"[yellow]{why}[/]", highlight=False)


def log_tail(path: Path, size: int = 4096) -> str:
    """The end of a stage's log: what termination.reason looks for its last error line in."""
    with open(path, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - size))
        return f.read().decode(errors="replace")


def summary_table(job: ACTJob, durations: dict[str, float] | None = None) -> Table:
    root = stages.job_root(job)
    table = Table(title=f"ACTJob {job.metadata.name}: {job.status.phase}", caption=f"artifacts under {root}")
    for col in ("stage", "status", "tries", "time", "progress", "key metrics", "artifacts", "mlflow run"):
        table.add_column(col, overflow="fold")
    for stage in pipeline.steps(job.status):
        st = job.status.stages[stage]
        secs = (durations or {}).get(stage)
        if secs is None and st.start_time and st.completion_time:
            secs = (st.completion_time - st.start_time).total_seconds()
        uri = st.outputs.uri or "-"
        table.add_row(stage, st.phase, str(st.attempts), f"{secs:.1f}s" if secs else "-", Text(progress_cell(st)),
                      key_metrics(stage, st.metrics) or "-", uri.removeprefix(root + "/"),
                      (st.mlflow_run_id or "-")[:12])
    return table


def progress_cell(st) -> str:
    """A stage's progress bar, `[###-------] 12/40 steps 30.0% 2.1 steps/s ETA 20s reward=0.5` while it
    runs; the bar and counts alone once the attempt ended."""
    return progress.summary(st.progress, width=10, live=st.phase == "Running") if st.progress else "-"
