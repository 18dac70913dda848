"""ACTJob files for tests: the quickstart example with some spec fields changed."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def quickstart_file(tmp_path: Path, **spec_updates) -> Path:
    """examples/quickstart.yaml with `spec_updates` ({"stages.collect.shards": 3, ...}) applied,
    written to tmp_path/actjob.yaml."""
    doc = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    for dotted, value in spec_updates.items():
        node = doc["spec"]
        *path, last = dotted.split(".")
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    path = tmp_path / "actjob.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path
