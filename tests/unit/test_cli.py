"""The `actjob` command line: validate, render and crd, as a user runs them."""

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from act_trainer import gguf_models

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
ACTJOBS = [p for p in EXAMPLES if any(d and d.get("kind") == "ACTJob" for d in yaml.safe_load_all(p.read_text()))]


def actjob(*args):
    return subprocess.run([sys.executable, "-m", "act_operator.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


@pytest.mark.parametrize("path", ACTJOBS, ids=lambda p: p.name)
def test_examples_are_valid(path):
    proc = actjob("validate", str(path))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("path", ACTJOBS, ids=lambda p: p.name)
def test_render_prints_objects_valid_against_the_kubernetes_schemas(path):
    proc = actjob("render", str(path))
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    kinds = [d["kind"] for d in docs]
    assert kinds.count("Job") >= 1 and kinds.count("ConfigMap") == kinds.count("Job")
    for doc in docs:
        kubernetes_validate.validate(doc, "1.36.0", strict=True)
    # a GGUF model: the configs name the source, and the note says which checkpoint the stages start from
    gguf = gguf_models.is_gguf(yaml.safe_load(path.read_text())["spec"]["model"]["uri"])
    assert ("is a GGUF file: the preflight converts it once" in proc.stderr) == gguf, proc.stderr


def test_crd_command_prints_the_committed_crd():
    proc = actjob("crd")
    assert proc.returncode == 0
    assert proc.stdout == (ROOT / "crds" / "actjob.yaml").read_text(), "run `make crds`"


def test_invalid_file_prints_every_problem_and_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"apiVersion": "act-operator.io/v1alpha1", "kind": "ACTJob",
                                   "metadata": {"name": "bad"},
                                   "spec": {"model": {"uri": "hf://x"}, "environment": {"name": "nethack"}}}))
    proc = actjob("validate", str(bad))
    assert proc.returncode == 2
    assert "spec.model.uri" in proc.stderr and "spec.environment.name" in proc.stderr


def test_run_without_the_environments_extra_fails_before_any_stage(tmp_path, monkeypatch, capsys):
    """An ALFWorld ACTJob on a machine without the alfworld extra (as after `make quickstart`):
    exit 2 with the command that installs it, and nothing started (no run state, no MLflow run)."""
    import importlib.util

    from act_operator import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "alfworld" else real(name, *a))
    workdir = tmp_path / "work"
    code = cli.main(["run", str(ROOT / "examples" / "alfworld-qwen3-8b.yaml"), "--workdir", str(workdir)])
    err = capsys.readouterr().err
    assert code == 2
    assert "spec.environment.name: environment 'alfworld' is not installed" in err
    assert "pip install 'act-operator[alfworld]'" in err and "no stage started" in err
    assert not workdir.exists()


def test_actjob_run_needs_no_operator_extra():
    """`make quickstart` installs trainer + scienceworld only: `actjob run` must not import the
    cluster-side packages (kubernetes client, kopf, pydantic-settings, prometheus)."""
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('kubernetes', 'kopf', 'pydantic_settings', 'prometheus_client'):\n"
        "            raise ImportError('operator extra: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from act_operator import cli, local, preflight\n"
        "raise SystemExit(cli.main(['validate', 'examples/quickstart.yaml']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
