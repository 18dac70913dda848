"""Where a credential value turns up: for the tests that check that credentials reach a run only by
reference (a Secret, the environment) and are never written to what the run leaves behind.

Each place is (what, bytes): a file, an object in storage, a status, an event, MLflow's params and
tags. A value is looked for as written and base64-encoded (a Secret's data, a basic-auth header).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from pathlib import Path


def files_under(*roots: Path) -> Iterator[tuple[str, bytes]]:
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if path.is_file():
                yield str(path), path.read_bytes()


def found(secrets: dict[str, str], places: Iterable[tuple[str, bytes]]) -> list[str]:
    """'<secret's name> in <place>' for every secret value in every place; [] when none is anywhere."""
    forms = {name: {value.encode(), base64.b64encode(value.encode())} for name, value in secrets.items()}
    assert all(len(v) >= 8 for v in secrets.values()), "a short value would match by chance"
    out, seen = [], 0
    for where, data in places:
        seen += 1
        out += [f"{name} in {where}" for name, encoded in forms.items() if any(e in data for e in encoded)]
    assert seen, "no place was searched"
    return out
