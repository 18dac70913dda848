"""No import cycle between the project's modules (act_operator and act_trainer).

The graph is read from the source with `ast`, not by importing it: every `import` and
`from ... import` statement counts, at module level and inside functions alike. A lazy import
(a heavy dependency loaded where it is used) is fine, but it is still a dependency: a cycle closed
by a function-level import only fails later, at the first call, in whichever order the modules
happened to load, so it counts here too.

Left out, on purpose:
- imports under `if TYPE_CHECKING:`: they never run, so they cannot form a runtime cycle (they
  are how a type annotation names a module that imports this one);
- dynamic imports (`importlib.import_module("act_trainer.stages." + name)`, the environment
  registry's "module:Class" strings): their target is data, not an import statement;
- a package's factory loading one of its own implementations inside a function
  (`engines.make_engine` importing `engines.hf` when it builds an HFEngine): the implementations
  import the package's shared helpers (`render`, `gpu_available`), and that is the package's
  layering, not a cycle: Python runs a package's `__init__` to the end before any of its
  submodules, so the factory's import always finds the package whole. It is the env registry's
  "module:Class" pattern written as a statement. Only this shape is exempt: the import sits in a
  function of the package's `__init__` and names a module inside that package; the same import at
  module level, or from any other module, counts.

An edge goes to the module a statement loads: `from a.b import c` goes to `a.b.c` when that is
a module, else to `a.b`. Importing `a.b.c` also runs the package `a.b`'s `__init__`, but an edge
to every parent package would report a cycle for each package that re-exports its submodules
(`envs/__init__` importing `envs.base`, which an adapter imports through the package): Python
handles that order (the submodule runs first, from the package's own import), so parent
packages count only when a statement names them.
"""

from __future__ import annotations

import ast
import graphlib
import itertools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"act_operator": ROOT / "operator" / "act_operator", "act_trainer": ROOT / "trainer" / "act_trainer"}


def module_files() -> dict[str, Path]:
    """Every project module by its dotted name (a package by its own name, for its __init__)."""
    mods = {}
    for pkg, base in PACKAGES.items():
        for path in base.rglob("*.py"):
            parts = [pkg, *path.relative_to(base).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def _type_checking_only(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_statements(tree: ast.AST):
    """(statement, whether it sits in a function) for every import statement that runs, at any
    depth, with `if TYPE_CHECKING:` bodies left out (their `else:` still runs)."""
    stack = [(tree, False)]
    while stack:
        node, in_function = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
        if isinstance(node, ast.If) and _type_checking_only(node.test):
            stack.extend((n, in_function) for n in node.orelse)
            continue
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        stack.extend((n, inside) for n in ast.iter_child_nodes(node))


def imported_modules(name: str, path: Path, mods: dict[str, Path]) -> dict[str, int]:
    """The project modules `name` imports: target -> line of the first statement that does."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: dict[str, int] = {}
    for node, in_function in import_statements(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:  # relative: from the package, `level - 1` packages up
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in mods else source
                       for alias in node.names]
        for target in targets:
            while target and target not in mods:  # `import a.b.c` where c is not ours: its nearest module
                target = target.rpartition(".")[0]
            if is_package and in_function and target.startswith(name + "."):
                continue  # the package's factory loading its own implementation (module docstring)
            if target and target != name:
                found.setdefault(target, node.lineno)
    return found


def import_graph() -> tuple[dict[str, dict[str, int]], dict[str, Path]]:
    mods = module_files()
    return {name: imported_modules(name, path, mods) for name, path in mods.items()}, mods


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle as [a, b, ..., a] (graphlib reports it), or None."""
    try:
        tuple(graphlib.TopologicalSorter({m: set(deps) for m, deps in graph.items()}).static_order())
    except graphlib.CycleError as e:
        return list(e.args[1])
    return None


def describe(cycle: list[str], graph: dict[str, dict[str, int]], mods: dict[str, Path]) -> str:
    """Each edge of the cycle with the file and line of its import statement."""
    return "\n".join(f"  {a} imports {b} ({mods[a].relative_to(ROOT)}:{graph[a][b]})"
                     for a, b in itertools.pairwise(cycle))


def all_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Every independent cycle, one by one: report one, cut its first edge, look again."""
    graph = {m: dict(deps) for m, deps in graph.items()}
    found = []
    while (cycle := find_cycle(graph)) and len(found) < 50:
        # graphlib may list a cycle against the edges' direction (a node, then one it is imported by)
        cycle = cycle[::-1] if cycle[1] not in graph[cycle[0]] else cycle
        found.append(cycle)
        del graph[cycle[0]][cycle[1]]
    return found


def test_no_import_cycle_between_project_modules():
    graph, mods = import_graph()
    cycles = all_cycles(graph)
    assert not cycles, "import cycle(s) between project modules:\n" + "\n\n".join(
        describe(c, graph, mods) for c in cycles)


def reachable(graph: dict[str, dict[str, int]], start: str) -> dict[str, list[str]]:
    """Every module `start` imports, directly or through others: module -> the import path to it."""
    paths, todo = {start: [start]}, [start]
    while todo:
        module = todo.pop()
        for dep in graph[module]:
            if dep not in paths:
                paths[dep] = paths[module] + [dep]
                todo.append(dep)
    del paths[start]
    return paths


def test_no_stage_program_imports_another():
    """A stage's program (its registry entrypoint) reaches what stages share through shared modules
    (stages.training, stages.action_training, stages.expert, data, ...), never through another
    stage's program: so a stage can change or go without touching the others. A method's module that
    runs in its stage's place (stages.early_experience, for the judge) is not a stage program."""
    from act_trainer import stagedefs

    graph, _ = import_graph()
    programs = {d.entrypoint.partition(":")[0] for d in stagedefs.chain()}
    assert {"act_trainer.stages.judge", "act_trainer.stages.warmup"} <= programs
    crossings = {" -> ".join(path) for p in programs for q, path in reachable(graph, p).items() if q in programs}
    assert not crossings, "stage programs importing each other:\n" + "\n".join(sorted(crossings))


# --- the graph itself: what it must see for the test above to mean anything -------------------------

def test_the_graph_covers_both_packages_and_sees_lazy_and_relative_imports(tmp_path):
    graph, mods = import_graph()
    assert {"act_operator.handlers", "act_trainer.stages.judge", "act_trainer.envs"} <= set(mods)
    # a module-level import, and a lazy one inside a function (cli loads models where it builds a tiny one)
    assert "act_trainer.config" in graph["act_trainer.cli"]
    assert "act_trainer.models" in graph["act_trainer.cli"]

    pkg = {"p": tmp_path / "p" / "__init__.py", "p.a": tmp_path / "p" / "a.py", "p.b": tmp_path / "p" / "b.py",
           "p.sub": tmp_path / "p" / "sub" / "__init__.py", "p.sub.c": tmp_path / "p" / "sub" / "c.py"}
    for path in pkg.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    # a package's __init__: its module-level import counts, its factory's lazy one of its own module does not
    pkg["p"].write_text("from p import b\ndef make():\n    from p import a\n")
    pkg["p.a"].write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p import b\n"
                          "def f():\n    from .sub import c\n")
    pkg["p.b"].write_text("import p.sub.c\n")
    pkg["p.sub"].write_text("from .. import a\n")
    pkg["p.sub.c"].write_text("import os\nfrom p.b import nothing_module\n")
    toy = {m: imported_modules(m, path, pkg) for m, path in pkg.items()}
    assert toy == {"p": {"p.b": 1}, "p.a": {"p.sub.c": 5}, "p.b": {"p.sub.c": 1}, "p.sub": {"p.a": 1}, "p.sub.c": {"p.b": 2}}


@pytest.mark.parametrize("graph, cycle", [
    ({"a": {"b": 1}, "b": {"a": 3}}, ["a", "b", "a"]),
    ({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 7}, "d": {"a": 1}}, ["a", "b", "c", "a"]),
    ({"a": {"b": 1}, "b": {"c": 1}, "c": {}}, None),
])
def test_a_cycle_is_found_and_named_edge_by_edge(graph, cycle):
    mods = {m: ROOT / f"{m}.py" for m in graph}
    cycles = all_cycles(graph)
    if cycle is None:
        assert cycles == []
        return
    assert len(cycles) == 1 and set(cycles[0]) == set(cycle) and cycles[0][0] == cycles[0][-1]
    text = describe(cycles[0], graph, mods)
    for a, deps in graph.items():
        for b, line in deps.items():
            if a in cycle and b in cycle:
                assert f"{a} imports {b} ({a}.py:{line})" in text
