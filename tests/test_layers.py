"""The package layers: every import (top-level or inside a function) goes down this order, and no
module imports itself back through others. Adding an upward import fails here, naming it."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "connectomics"
# bottom first; a package may import only the ones before it
LAYERS = ["errors", "geometry", "weights", "_ext", "storage", "utils", "data", "config", "checkpoint", "model",
          "losses", "inference", "evaluation", "postprocess", "measure", "viewer", "blockwise", "engine", "fixtures"]


def _modules():
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def _edges():
    modules = _modules()
    return modules, {m: {x for x in _imports(p) if x in modules and x != m} for m, p in modules.items()}


def _package(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_layer():
    assert {_package(m) for m in _modules()} - {""} == set(LAYERS)


def test_no_import_runs_up_the_layers():
    _, edges = _edges()
    upward = sorted(f"{m} imports {x}" for m, targets in edges.items() for x in targets
                    if _package(m) and _package(x) and _package(x) != _package(m)
                    and LAYERS.index(_package(x)) > LAYERS.index(_package(m)))
    assert not upward, "\n".join(upward)


def test_no_import_cycle_between_modules():
    """Strongly connected components of the module graph (package __init__ files excluded: a
    package's __init__ re-exports its modules, which is not a dependency of theirs on it)."""
    modules, edges = _edges()
    packages = {m for m, p in modules.items() if p.name == "__init__.py"}
    graph = {m: {x for x in t if x not in packages} for m, t in edges.items() if m not in packages}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


@pytest.mark.parametrize("module", ["connectomics.geometry", "connectomics.errors"])
def test_leaves_import_nothing_of_the_package(module):
    modules, edges = _edges()
    assert not edges[module]


def test_modules_and_functions_stay_small():
    """STYLE: no module over 400 lines, no function over 60 (scripts included)."""
    paths = list(ROOT.rglob("*.py")) + list((ROOT.parent / "scripts").glob("*.py"))
    long_modules = [f"{p.name}: {n}" for p in paths if (n := len(p.read_text().splitlines())) > 400]
    long_functions = [f"{p.name}:{node.name} {node.end_lineno - node.lineno + 1}" for p in paths
                      for node in ast.walk(ast.parse(p.read_text()))
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.end_lineno - node.lineno + 1 > 60]
    assert not long_modules and not long_functions, long_modules + long_functions
