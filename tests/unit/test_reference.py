"""The field reference docs/reference/*.md: in sync with the models, every field and rule of the CRD
on it, and the generator's rendering of a small schema exactly as written here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from act_operator import reference
from act_operator.crd import crd, experiment_crd

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"
KINDS = {"ACTJob": crd, "ACTExperiment": experiment_crd}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_page_is_up_to_date(kind):
    page = REFERENCE / reference.PAGES[kind][2]
    assert page.exists() and page.read_text() == reference.render(kind), \
        f"{page} is out of date with the models in act_operator/api.py: run `make docs`"


def _objects(node: dict, path: str, stops: dict):
    """(path, node) of every object with fields, as the page names them."""
    if "properties" in node:
        yield path, node
    for suffix, sub in reference._children(node):
        if path + suffix not in stops:
            yield from _objects(sub, path + suffix, stops)


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_field_description_and_rule_is_on_the_page(kind):
    text = reference.render(kind)
    sections = _sections(text)
    root = KINDS[kind]()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    stops = reference.PAGES[kind][3]
    seen = 0
    for key in ("metadata", "spec", "status"):
        for path, node in _objects(root["properties"][key], key, stops):
            assert path in sections, f"{kind}: no section for {path}"
            body = sections[path]
            for field, sub in node["properties"].items():
                row = next((line for line in body.splitlines() if line.startswith(f"| `{field}` |")), None)
                assert row, f"{kind}: {path}.{field} has no row"
                assert reference._cell(sub.get("description", "")) in row, f"{kind}: {path}.{field} lacks its description"
                if "default" in sub and not reference._has_fields(sub):
                    assert reference._value(sub["default"]) in row, f"{kind}: {path}.{field} lacks its default"
                seen += 1
            for rule in node.get("x-kubernetes-validations", []):
                if rule["rule"] != "self == oldSelf":
                    assert reference._cell(rule["message"]) in body, f"{kind}: {path} lacks the rule {rule['message']!r}"
    assert seen > (100 if kind == "ACTJob" else 10)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_links_within_the_page_resolve(kind):
    text = reference.render(kind)
    anchors = {reference._anchor(h) for h in re.findall(r"^## (.+)$", text, flags=re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert links and set(links) <= anchors, set(links) - anchors


def test_render_of_a_small_schema():
    node = {
        "type": "object", "description": "The top.\n  Two lines.", "required": ["count"],
        "x-kubernetes-validations": [{"rule": "self.a", "message": "a needs b", "fieldPath": ".inner"}],
        "properties": {
            "count": {"type": "integer", "minimum": 1, "maximum": 5.0, "description": "How many | a pipe, <n> of `a<b`."},
            "ratio": {"type": "number", "minimum": 0.0, "exclusiveMinimum": True, "default": 0.5, "nullable": True},
            "root": {"type": "string", "description": "Where.",
                     "x-kubernetes-validations": [{"rule": "self != ''", "message": "root: not empty"}]},
            "fixed": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "no"}]},
            "inner": {"type": "object", "description": "Inner part.", "default": {"mode": "x"},
                      "properties": {"mode": {"type": "string", "enum": ["x", "y"], "default": "x"}}},
            "items": {"type": "array", "maxItems": 3, "items": {"type": "object", "properties": {
                "k": {"type": "string", "pattern": "^[a-z]+$"}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    lines = reference._section("top", node, {}, {"top.root": "file://here"})
    assert lines == [
        "## top", "", "The top. Two lines.", "",
        "| field | type | default | description |", "|---|---|---|---|",
        "| `count` | integer | required | How many \\| a pipe, &lt;n> of `a<b`. (1 ≤ x ≤ 5) |",
        "| `ratio` | number | `0.5` | > 0; optional |",
        "| `root` | string | `\"file://here\"` in `actjob run`; none on a cluster | Where. |",
        "| `fixed` | string |  | immutable |",
        "| `inner` | [object](#topinner) | its fields' defaults | Inner part. |",
        "| `items` | list of [object](#topitems) |  | at most 3 items |",
        "| `labels` | map of string |  |  |",
        "",
        "Admission rules:", "",
        "- a needs b (`inner`)",
        "- `root`: root: not empty",
        "",
        "## top.inner", "", "Inner part.", "",
        "| field | type | default | description |", "|---|---|---|---|",
        "| `mode` | string | `\"x\"` | one of `\"x\"`, `\"y\"` |",
        "",
        "## top.items[]", "",
        "| field | type | default | description |", "|---|---|---|---|",
        "| `k` | string |  | matches `^[a-z]+$` |",
        "",
    ]


def test_main_writes_both_pages(tmp_path, capsys):
    reference.main(["--write", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["actexperiment.md", "actjob.md"]
    assert (tmp_path / "actjob.md").read_text() == reference.render("ACTJob")
    reference.main(["ACTExperiment"])
    assert capsys.readouterr().out == reference.render("ACTExperiment")
