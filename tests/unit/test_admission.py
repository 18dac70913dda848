"""Static mistakes (tests/static_mistakes.py) are refused by `actjob validate` and `actjob run` before
anything runs, each problem naming the field and the allowed values; the API server refuses the
same table in tests/integration/test_crd_kubelite.py. Also: the table of static facts is the
environment packages' own, where they are installed."""

from __future__ import annotations

import importlib.util

import pytest
import yaml
from static_mistakes import CASES, CLUSTER_ONLY, VALID, spec

from act_operator import api, cli
from act_trainer import contract

IDS = [c[0] for c in CASES]


def write(tmp_path, overrides: dict):
    path = tmp_path / "actjob.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": api.API_VERSION, "kind": api.KIND,
                                    "metadata": {"name": "mistake"}, "spec": spec(overrides)}))
    return path


@pytest.mark.parametrize("what,overrides,expected", CASES, ids=IDS)
def test_pydantic_refuses(what, overrides, expected):
    with pytest.raises(api.SpecError) as info:
        api.parse_spec(spec(overrides))
    text = str(info.value)
    for s in expected:
        assert s in text, f"{what}: {s!r} not in {text!r}"
    assert all(p.startswith("spec.") for p in info.value.problems)


@pytest.mark.parametrize("what,overrides,expected", CASES, ids=IDS)
def test_actjob_validate_and_run_refuse(tmp_path, capsys, what, overrides, expected):
    path = write(tmp_path, overrides)
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    for s in expected:
        assert s in err.replace("\n", " ") or s in err, f"{what}: {s!r} not in {err!r}"
    workdir = tmp_path / "work"
    assert cli.main(["run", str(path), "--workdir", str(workdir)]) == 2
    assert "invalid ACTJob" in capsys.readouterr().err
    assert not workdir.exists()  # nothing ran, nothing was written


@pytest.mark.parametrize("what,overrides", VALID + [c[:2] for c in CLUSTER_ONLY], ids=lambda v: str(v)[:40])
def test_valid_and_cluster_only_cases_pass_pydantic(what, overrides):
    api.parse_spec(spec(overrides))  # `actjob run` resolves a relative file:// root; no root: its default


def test_problems_name_the_field_once():
    with pytest.raises(api.SpecError) as info:
        api.parse_spec(spec({"environment": {"name": "alfworld", "tasks": ["x"], "game": "twc",
                                             "expert": {"split": "dev"}}}))
    assert [p.split(":")[0] for p in info.value.problems] == \
        ["spec.environment.tasks", "spec.environment.game", "spec.environment.expert.split"]


def test_secret_names_are_refused_one_by_one():
    for name in api.SECRET_ENV_NAMES:
        with pytest.raises(api.SpecError) as info:
            api.parse_spec(spec({"pod": {"env": {name: "x", "NCCL_DEBUG": "INFO"}}}))
        assert info.value.problems == [f"spec.pod.env: {api.SECRET_ENV_MESSAGE} (refused names: "
                                       f"{', '.join(api.SECRET_ENV_NAMES)})"], name
    api.parse_spec(spec({"pod": {"env": {"NCCL_DEBUG": "INFO", "AWS_REGION": "eu-west-1"}}}))


def from_secret(name: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": "creds", "key": name.lower()}}}


def test_the_kubernetes_list_form_takes_credentials_only_from_a_secret():
    refused = [f"spec.pod.env: {api.SECRET_ENV_MESSAGE} (refused names: {', '.join(api.SECRET_ENV_NAMES)})"]
    for name in api.SECRET_ENV_NAMES:
        for entry in ({"name": name, "value": "x"}, {"name": name},  # a literal (empty too)
                      {"name": name, "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}):  # plaintext
            with pytest.raises(api.SpecError) as info:
                api.parse_spec(spec({"pod": {"env": [{"name": "NCCL_DEBUG", "value": "INFO"}, entry]}}))
            assert info.value.problems == refused, entry
    env = [from_secret(n) for n in api.SECRET_ENV_NAMES] + [
        {"name": "NCCL_DEBUG", "value": "INFO"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    pod = api.parse_spec(spec({"pod": {"env": env}})).pod
    assert pod.model_dump(by_alias=True, exclude_none=True)["env"] == env  # kept as written


@pytest.mark.parametrize("env, problem", [
    ([{"name": "X", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
     "spec.pod.env[0].valueFrom: set value or valueFrom, not both"),
    ([{"name": "X", "valueFrom": {}}], "spec.pod.env[0].valueFrom: valueFrom takes exactly one of secretKeyRef, "
                                        "configMapKeyRef, fieldRef, resourceFieldRef"),
    ([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"},
                                  "configMapKeyRef": {"name": "c", "key": "k"}}}],
     "spec.pod.env[0].valueFrom: valueFrom takes exactly one of"),
    ([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s"}}}], "spec.pod.env[0].valueFrom.secretKeyRef.key: "
                                                                    "Field required"),
    ([{"name": "X", "value": "1"}, {"name": "X", "value": "2"}], "spec.pod.env: X set more than once"),
    ([{"name": "1X=", "value": "1"}], "spec.pod.env[0].name: String should match pattern"),
    ([{"name": "X", "valu": "1"}], "spec.pod.env[0].valu: unknown field"),
    ({"NCCL_DEBUG": 1}, 'spec.pod.env: NCCL_DEBUG: a value must be a string; quote it (e.g. NCCL_DEBUG: "1")'),
])
def test_an_ill_formed_env_entry_is_named(env, problem):
    with pytest.raises(api.SpecError) as info:
        api.parse_spec(spec({"pod": {"env": env}}))
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith(problem), info.value.problems


def test_the_map_form_is_the_list_form_sorted_by_name():
    as_map = api.parse_spec(spec({"pod": {"env": {"NCCL_SOCKET_IFNAME": "eth0", "NCCL_DEBUG": "INFO"}}}))
    as_list = api.parse_spec(spec({"pod": {"env": [{"name": "NCCL_DEBUG", "value": "INFO"},
                                                   {"name": "NCCL_SOCKET_IFNAME", "value": "eth0"}]}}))
    assert as_map == as_list


def test_actjob_run_takes_the_literal_values_and_names_what_resolves_on_a_cluster_only(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "from-the-shell")
    monkeypatch.delenv("RUN_MODE", raising=False)
    pod = api.parse_spec(spec({"pod": {"env": [
        {"name": "NCCL_DEBUG", "value": "INFO"}, {"name": "EMPTY"}, from_secret("HF_TOKEN"),
        {"name": "RUN_MODE", "valueFrom": {"configMapKeyRef": {"name": "knobs", "key": "mode"}}}]}})).pod
    values, notes = pod.local_env()
    assert values == {"NCCL_DEBUG": "INFO", "EMPTY": ""}
    assert notes == ["spec.pod.env HF_TOKEN: valueFrom.secretKeyRef resolves on a cluster only; `actjob run` "
                     "passes HF_TOKEN from its own environment",
                     "spec.pod.env RUN_MODE: valueFrom.configMapKeyRef resolves on a cluster only; `actjob run` "
                     "passes RUN_MODE from its own environment (unset here)"]


@pytest.mark.skipif(importlib.util.find_spec("scienceworld") is None, reason="scienceworld not installed")
def test_scienceworld_facts_are_the_packages():
    from scienceworld.constants import ID2TASK

    f = contract.ENV_FACTS["scienceworld"]
    assert dict(zip(f.task_ids, f.tasks, strict=True)) == ID2TASK


@pytest.mark.skipif(importlib.util.find_spec("textworld_express") is None, reason="textworld-express not installed")
def test_textworld_express_facts_are_the_packages():
    import textworld_express

    assert list(contract.ENV_FACTS["textworld-express"].games) == list(textworld_express.GAME_NAMES)


def test_adapters_read_their_facts_from_the_contract():
    from act_trainer.envs import alfworld_data, jvm, webshop

    assert alfworld_data.SPLITS == contract.ENV_FACTS["alfworld"].splits
    assert alfworld_data.TASK_TYPES == contract.ENV_FACTS["alfworld"].tasks
    assert jvm.SPLITS == contract.ENV_FACTS["scienceworld"].splits == contract.ENV_FACTS["textworld-express"].splits
    assert webshop.SPLITS == contract.ENV_FACTS["webshop"].splits
