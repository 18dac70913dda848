"""Watching an ACTJob on the one-machine cluster: a real judge pod reports its progress to
MLflow, the operator reads it into the ACTJob status while the stage runs (read back here,
moving); every attempt's log is in storage and still shown by `actjob logs` once the stage Jobs
are deleted, a failed attempt's included."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import services

from act_operator.manifests import ACTJOB_LABEL
from cluster.chart import TRAINER, ChartOperator
from cluster.kubectl import kubectl, wait_for
from cluster.test_cluster_operator import actjob, jobs_of, s3_secret, status_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NODE_IMAGES = (TRAINER,)  # stage pods run the trainer-cpu image (the operator pod its own)
REPORT_S = 2  # how often the stage reports (ACT_PROGRESS_SECONDS in spec.pod.env)
READ_S = 2  # how often the operator reads (the chart's progressIntervalSeconds)


def actjob_logs(*args: str, env: dict) -> str:
    r = subprocess.run([sys.executable, "-m", "act_operator.cli", "logs", *args], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, (r.stdout, r.stderr)
    return r.stdout


def test_progress_moves_in_the_status_and_logs_outlive_the_jobs(kube_api, node, ns, tmp_path):
    with services.seaweedfs(workdir=tmp_path / "s3", host=node.host_address) as s3, \
            services.mlflow_server(workdir=tmp_path / "mlflow", host=node.host_address) as mlflow, \
            ChartOperator(node, ns, f"progressIntervalSeconds={READ_S}") as op:
        s3_secret(ns, s3)
        pod_env = f'  pod: {{env: [{{name: ACT_PROGRESS_SECONDS, value: "{REPORT_S}"}}]}}\n'
        kubectl("apply", "-n", ns, "-f", "-",
                stdin=actjob("watched", s3.endpoint, s3.bucket, mlflow, judge_steps=40, judge_only=True) + pod_env)
        # collect fails at run time (the expert cannot finish an episode in 1 step): exit 2, one attempt
        kubectl("apply", "-n", ns, "-f", "-", stdin=actjob("doomed", s3.endpoint, s3.bucket, mlflow,
                                                            expert_max_length=1, collect_retries=0))
        seen: list[tuple[float, dict]] = []  # (when, status.stages.judge.progress) while judge ran
        columns = []

        def finished():
            st = status_of(ns, "watched")
            judge = st.get("stages", {}).get("judge", {})
            if judge.get("phase") == "Running" and judge.get("progress"):
                seen.append((time.monotonic(), judge["progress"]))
                if st.get("progress") and judge["progress"]["percent"] >= 25 and not columns:
                    columns.append(kubectl("get", "actjobs", "-n", ns))  # NAME STAGE PHASE PROGRESS ETA ... AGE
            return st if st.get("phase") in ("Succeeded", "Failed") else None

        try:
            status = wait_for(finished, timeout=900, interval=0.5)
            kubectl("wait", "-n", ns, "--for=condition=Failed", "actjob/doomed", "--timeout=600s", timeout=610)
        finally:
            print(kubectl("get", "actjobs,jobs,pods", "-n", ns, check=False))
            print(op.log(3000))
        assert status["phase"] == "Succeeded", status

        # progress moved while the judge ran, read back from the ACTJob status
        dones = [p["done"] for _, p in seen]
        distinct = sorted(set(dones))
        assert len(distinct) >= 2, dones
        assert dones == sorted(dones) and all(p["total"] == 40 and p["unit"] == "steps" for _, p in seen), seen
        last = seen[-1][1]
        assert last["attempt"] == 1 and last["rate"] > 0 and last["etaSeconds"] >= 0 and "reward" in last["metrics"]
        assert last["percent"] == pytest.approx(100 * last["done"] / 40, abs=0.1)
        changes = [t for i, (t, p) in enumerate(seen) if i and p["updated"] != seen[i - 1][1]["updated"]]
        gaps = [b - a for a, b in zip(changes, changes[1:], strict=False)]
        print(f"progress: {len(seen)} reads while judge ran, {len(distinct)} distinct done values {distinct}, "
              f"{len(changes)} updates, median gap {sorted(gaps)[len(gaps) // 2] if gaps else None:.1f}s")
        print("\n".join(columns))
        row = next(line.split() for line in columns[-1].splitlines() if line.startswith("watched "))
        name, stage, phase, pct, eta = row[:5]
        assert (name, stage, phase) == ("watched", "judge", "Running") and pct.endswith("%"), columns
        # what it cost: one MLflow search per running stage per tick of the operator's progress timer
        ticks = op.log(10**8).count(f"[{ns}/watched] Timer 'progress_timer' succeeded")
        print(f"operator: {ticks} progress reads of watched (one MLflow search_runs each; every {READ_S}s while "
              f"preflight, collect or judge ran)")
        # once it succeeded: the bar full, the printer columns empty again
        assert status["stages"]["judge"]["progress"]["percent"] == 100 and not status.get("progress")

        # the logs outlive the Jobs: delete every stage Job, then read them with the user's credentials
        kubectl("delete", "jobs", "-n", ns, "-l", ACTJOB_LABEL, "--wait=false")
        wait_for(lambda: not jobs_of(ns, "watched") and not jobs_of(ns, "doomed"), timeout=60)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
        judge_log = actjob_logs("watched", "judge", "-n", ns, env=env)
        assert "==> judge attempt 1: s3://" in judge_log and "-rank0.log <==" in judge_log, judge_log[:500]
        assert "act-progress judge" in judge_log and "judge trained 40 steps" in judge_log, judge_log[-2000:]
        everything = actjob_logs("watched", "-n", ns, env=env)  # every stage that ran, latest attempt each
        assert all(f"==> {s} attempt 1: " in everything for s in ("preflight", "collect", "judge"))
        failed = actjob_logs("doomed", "collect", "--attempt", "1", "-n", ns, env=env)
        assert "produced no successful episode" in failed and "failed, permanent" in failed, failed[-2000:]

        # ... and each is attached to its MLflow child run
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=mlflow)
        run_id = status["stages"]["judge"]["mlflowRunId"]
        uploaded = [line.removesuffix(" <==").rsplit("/", 1)[1] for line in judge_log.splitlines()
                    if line.startswith("==> judge attempt 1: ")]
        assert [a.path for a in client.list_artifacts(run_id, "logs")] == [f"logs/{n}" for n in uploaded]
