"""A stage's MLflow child run (act_trainer.tracking.stage_run) on the real MLflow server, with
S3 (and MLflow) credentials in the environment: the params hold every field of each stage's
config, and no credential appears in the run's params, tags, metrics or logged dicts."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import mlflow
import pytest
from pydantic import BaseModel

from act_trainer.config import parse_stage_config
from act_trainer.stagedefs import chain_names
from act_trainer.tracking import stage_run
from act_trainer.util import CREDENTIAL_ENV

pytestmark = pytest.mark.integration

MLFLOW_TOKEN = "mlflow-token-7f3a9c2e51d8"  # the server has no auth: the client sends it, nobody checks


def config_keys(model: BaseModel, prefix: str = "") -> set[str]:
    """The dotted name of every leaf field, read off the config model (nested models recurse)."""
    keys = set()
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            keys |= config_keys(value, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def stage_config(stage: str, root: str, tracking: dict, **extra):
    """A real config of `stage` with its required fields (the rest default)."""
    required = {
        "warmup": {"model": "tiny://qwen3-tiny", "env": {"name": "scienceworld", "tasks": ["boil"]},
                   "checkpoints": f"{root}/ckpt"},
        "collect": {"model": "tiny://qwen3-tiny", "env": {"name": "scienceworld", "tasks": ["boil"]}},
        "judge": {"model": "tiny://qwen3-tiny", "pairs": f"{root}/pairs", "checkpoints": f"{root}/ckpt"},
        "policy": {"model": f"{root}/models/judge", "method": "il", "expert": f"{root}/pairs/expert.jsonl"},
        "eval": {"model": f"{root}/models/policy", "env": {"name": "scienceworld"}, "pairs": f"{root}/pairs"},
    }[stage]
    return parse_stage_config({"stage": stage, "job": {"name": "itest", "uid": "uid-1"},
                               "output": f"{root}/{stage}", "tracking": tracking,
                               "storage": {"region": "us-east-1"}, **required, **extra})


def run_contents(client, uri: str, run_id: str, tmp: Path) -> str:
    """Everything the run holds, as text: params, tags, metric names and every logged file."""
    run = client.get_run(run_id)
    parts = [json.dumps(run.data.params), json.dumps(run.data.tags), json.dumps(sorted(run.data.metrics))]
    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(tmp),
                                                     tracking_uri=uri))
    parts += [p.read_text() for p in sorted(local.rglob("*")) if p.is_file()]
    return "\n".join(parts)


@pytest.fixture
def parent(mlflow_server, s3, monkeypatch):
    """A parent run, as the executor opens it, with S3 and MLflow credentials in the environment."""
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", MLFLOW_TOKEN)
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("itest-tracking")
    exp_id = exp.experiment_id if exp else client.create_experiment("itest-tracking")
    run = client.create_run(exp_id, run_name="itest")
    yield client, run.info.run_id
    client.set_terminated(run.info.run_id)


@pytest.mark.parametrize("stage", chain_names())
def test_child_run_params_hold_every_config_field_and_no_credential(stage, parent, s3, s3_root, mlflow_server,
                                                                    tmp_path):
    client, parent_id = parent
    cfg = stage_config(stage, s3_root, {"uri": mlflow_server, "experiment": "itest-tracking",
                                        "parent_run_id": parent_id})
    with stage_run(cfg) as run:
        assert run.active
        # what a stage logs besides its params: metrics, output tags, a report
        run.log_metrics({"pairs_train": 3, "accuracy": 0.5, "flag": True, "note": "text"})
        run.set_tags({"act.manifest": f"{cfg.output}/_MANIFEST.json", "act.digest": "sha256:" + "0" * 64})
        run.log_dict({"sampled": 4, "kept": {"unparseable": 1}}, "filter_report.json")
    got = client.get_run(run.run_id)
    assert got.data.tags["mlflow.parentRunId"] == parent_id and got.data.tags["act.stage"] == stage
    assert got.data.metrics == {"pairs_train": 3.0, "accuracy": 0.5, "flag": 1.0}  # text is left out

    params = got.data.params
    expected = config_keys(cfg)

    def covered(key: str, keys) -> bool:  # a dict-valued field is logged as its own leaves
        return key in keys or any(k.startswith(key + ".") for k in keys)

    missing = sorted(k for k in expected if not covered(k, params))
    assert not missing, f"config fields missing from the {stage} run's params: {missing}"
    assert all(covered(k, expected) for k in params), sorted(set(params) - expected)
    for key in expected & set(params):
        assert params[key] == str(functools.reduce(getattr, key.split("."), cfg)), key
    if stage in ("collect", "eval"):  # dropped by the old name filter (it contains "token")
        assert [k for k in params if k.rpartition(".")[2] == "max_new_tokens"]
    assert params["tracking.parent_run_id"] == parent_id

    assert os.environ["AWS_SECRET_ACCESS_KEY"] == s3.secret_key  # the credentials are there ...
    contents = run_contents(client, mlflow_server, run.run_id, tmp_path)
    for secret in (s3.access_key, s3.secret_key, MLFLOW_TOKEN):
        assert secret not in contents  # ... and nowhere in the run


def test_a_credential_inside_a_config_value_is_scrubbed(parent, s3, s3_root, mlflow_server, tmp_path):
    """Configs carry no credentials by design; were one pasted into a value (a URL with a
    password), the param keeps the rest of the value and shows *** instead."""
    client, parent_id = parent
    cfg = stage_config("eval", s3_root, {"uri": mlflow_server, "experiment": "itest-tracking",
                                         "parent_run_id": parent_id})
    cfg.env.url = f"http://act:{s3.secret_key}@webshop.example:3000"
    cfg.model = f"{s3_root}/{s3.access_key}/policy"
    with stage_run(cfg) as run:
        run.set_tags({"act.source": cfg.env.url})
    params = client.get_run(run.run_id).data.params
    assert params["env.url"] == "http://act:***@webshop.example:3000"
    assert params["model"] == f"{s3_root}/***/policy"
    contents = run_contents(client, mlflow_server, run.run_id, tmp_path)
    assert s3.secret_key not in contents and s3.access_key not in contents
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_TOKEN"} <= set(CREDENTIAL_ENV)
