"""The preflight (`act-trainer preflight`), the first step of every ACTJob: I/O mistakes fail
`actjob run` in seconds, every problem listed, no stage started; good inputs pass."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from actjob_files import quickstart_file as actjob_file

from act_trainer import data, store
from act_trainer.config import PreflightConfig
from act_trainer.preflight import TERMINATION_LIMIT, failure, problems

pytestmark = pytest.mark.integration

TRAJ = {"env": "scienceworld", "task": "boil", "goal": "Boil water.",
        "steps": [{"observation": "You are in the kitchen.", "action": "look around"}]}


def run(job_file: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "act_operator.cli", "run", str(job_file), "--workdir",
                           str(tmp_path / "work")], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - t0


def dead_url() -> str:
    from services import free_ports

    return f"http://127.0.0.1:{free_ports(1)[0]}"  # nothing listens there


def test_io_mistakes_fail_actjob_run_in_seconds_with_every_problem_and_no_stage(s3, tmp_path):
    (tmp_path / "notes.txt").write_text("these are not trajectories\n")
    job_file = actjob_file(tmp_path, **{
        "model.uri": str(tmp_path / "no-such-model"),
        "stages.collect.reuse": f"s3://{s3.bucket}/nothing-here/pairs",
        "environment.expert": {"uri": str(tmp_path / "notes.txt")},
        "storage.root": "s3://no-such-bucket-act/act",
        "tracking.uri": dead_url(),
    })
    proc, seconds = run(job_file, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-4000:]
    assert seconds < 30, seconds
    assert "preflight found 5 problem(s); no stage started" in out
    state = json.loads((tmp_path / "work" / "runs" / "quickstart" / "state.json").read_text())
    status = state["status"]
    problems_ = status["stages"]["preflight"]["message"]
    for field, says in [("spec.model.uri", "nothing at"), ("spec.stages.collect.reuse", "nothing at"),
                        ("spec.environment.expert.uri", "is not an expert trajectories file"),
                        ("spec.storage.root", "bucket 'no-such-bucket-act' does not exist"),
                        ("spec.tracking.uri", "does not answer")]:
        assert f"{field}: " in problems_ and says in problems_, (field, problems_)
        assert field in out
    assert status["phase"] == "Failed"
    valid = next(c for c in status["conditions"] if c["type"] == "Valid")
    assert (valid["status"], valid["reason"]) == ("False", "PreflightFailed")
    assert all(status["stages"][s]["attempts"] == 0 for s in ("collect", "judge", "policy", "eval"))
    assert not list((tmp_path / "work" / "runs" / "quickstart").glob("quickstart-collect-*"))
    print(f"actjob run failed its preflight in {seconds:.1f}s")


def test_more_mistakes_are_named_with_their_fix(s3, tmp_path):
    """A model directory without tokenizer or weights, reused pairs without a manifest, an
    expert file of another environment, an ALFWorld without game files."""
    model = tmp_path / "half-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen3"}))
    pairs = f"s3://{s3.bucket}/half-done/pairs"
    store.write_bytes(f"{pairs}/train.parquet", data.write_parquet([{"a": 1}]))  # no _MANIFEST.json
    expert = tmp_path / "alf.jsonl"
    expert.write_bytes(data.dumps_jsonl([dict(TRAJ, env="alfworld")]))
    cfg = PreflightConfig(job={"name": "x", "uid": "u"}, output=(tmp_path / "storage").as_uri(), model=str(model),
                          pairs=pairs, judge="tiny://qwen3-huge", expert=str(expert),
                          env={"name": "scienceworld"}, packages={"stages.collect.engine": "no_such_module_xyz"},
                          trl={"judge": {"config": "GRPOConfig", "options": {"warmup_stpes": 3, "beta": 0.1}}})
    found = problems(cfg)
    text = "\n".join(found)
    assert "spec.model.uri: " in text and "has no tokenizer" in text and "has no weights" in text
    assert "spec.stages.collect.reuse: " in text and "has no _MANIFEST.json" in text
    assert "spec.stages.judge.reuse: unknown tiny preset 'qwen3-huge'" in text
    assert "spec.environment.expert.uri: " in text and "trajectories of alfworld, not of environment scienceworld" \
        in text
    assert "spec.stages.collect.engine: asks for no_such_module_xyz" in text
    assert "spec.stages.judge.trl.warmup_stpes: not a field of TRL " in text and "did you mean warmup_steps?" in text
    assert "spec.stages.judge.trl.beta: set by spec.stages.judge.beta; use that" in text
    assert not any(p.startswith("spec.storage.root") for p in found)  # a file:// root that can be made is fine

    alf = cfg.model_copy(update={"env": cfg.env.model_copy(update={"name": "alfworld",
                                                                  "data_dir": str(tmp_path / "no-games")})})
    alf_problems = "\n".join(problems(alf))
    assert "spec.environment." in alf_problems  # not installed, or no game files: named either way


def test_good_inputs_pass_on_s3_and_mlflow(s3, s3_root, mlflow_server, tmp_path):
    from act_trainer.models import resolve_model

    model_uri = f"{s3_root}/models/base"
    store.upload(resolve_model("tiny://qwen3-tiny"), model_uri)
    expert = f"{s3_root}/expert.jsonl"
    store.write_bytes(expert, data.dumps_jsonl([TRAJ]))
    cfg = PreflightConfig(job={"name": "x", "uid": "u"}, output=f"{s3_root}/job", model=model_uri,
                          judge=model_uri, expert=expert, env={"name": "scienceworld"},
                          tracking={"uri": mlflow_server, "experiment": "preflight-itest"})
    assert problems(cfg) == []


def test_the_termination_message_keeps_within_what_kubernetes_keeps():
    many = [f"spec.field{i}: " + "x" * 900 for i in range(20)]
    body = failure(many)
    assert len(json.dumps(body).encode()) <= TERMINATION_LIMIT
    assert body["problems"][0].startswith("spec.field0: ") and body["problems"][-1].startswith("... and ")
    assert body["error"] == "preflight found 20 problem(s)" and body["permanent"] is True
