"""How the package hangs together: what may import what, and what is defined once.

The import graph is read from the source with `ast` — every `import`, module level or
inside a function (a lazy import is still a dependency) — so a cycle, or a stage that
reaches into the CLI, is found whether or not it would fail at import time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "recalign"


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the module imported (the deepest that exists)
    names: tuple[str, ...]  # what `from target import ...` takes
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _existing(name: str) -> str | None:
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


@cache
def imports() -> tuple[Import, ...]:
    found = []
    for name, path in modules().items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _existing(alias.name)
                    if target:
                        found.append(Import(name, target, (), node.lineno))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, `level - 1` packages up
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([base] if base else [])])
                if not base.startswith("recalign"):
                    continue
                for alias in node.names:
                    # `from pkg import submodule` imports the submodule
                    sub = f"{base}.{alias.name}"
                    target = sub if sub in modules() else _existing(base)
                    if target:
                        found.append(Import(name, target, (alias.name,), node.lineno))
    return tuple(i for i in found if i.source != i.target)


def _cycle() -> list[str] | None:
    """One cycle of the import graph (a path that ends where it starts), or None."""
    graph: dict[str, set[str]] = {name: set() for name in modules()}
    for edge in imports():
        graph[edge.source].add(edge.target)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_every_module_imports_in_a_fresh_interpreter():
    """Import-time cycles and broken imports show up as an ImportError here."""
    names = sorted(modules())
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    done = subprocess.run(
        [sys.executable, "-c", code, *names],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_every_import_names_a_module_that_exists():
    """A lazy import of a module that moved fails only when its function runs: the
    graph finds it now."""
    missing = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                targets = [node.module]
            missing += [
                f"{name}:{node.lineno} imports {target}"
                for target in targets
                if target.split(".")[0] == "recalign"
                and target not in modules()
                and not (SRC / target.replace(".", "/")).is_dir()  # a namespace package
            ]
    assert missing == []


def test_the_graph_sees_lazy_imports():
    """The graph is only worth its test if it reads the imports inside functions too."""
    edges = {(i.source, i.target) for i in imports()}
    # `pipeline.stages` imports the thread settings inside its stage functions only.
    assert ("recalign.pipeline.stages", "recalign.threads") in edges
    assert len(modules()) > 100


def test_no_import_cycle():
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_a_cycle_would_be_found(monkeypatch):
    """The cycle finder itself: two modules that import each other."""
    fake = (
        Import("recalign.samples.templates", "recalign.samples.tasks", ("TASKS",), 1),
        Import("recalign.samples.tasks", "recalign.samples.templates", ("Template",), 1),
    )
    monkeypatch.setattr(sys.modules[__name__], "imports", lambda: fake)
    assert _cycle() == [
        "recalign.samples.tasks",
        "recalign.samples.templates",
        "recalign.samples.tasks",
    ]


def _outside(package: str, edge: Import) -> bool:
    return not (edge.source == package or edge.source.startswith(package + "."))


def test_only_the_cli_imports_the_cli():
    """The stages are a library; the CLI is a layer over them (and `python -m recalign`)."""
    offenders = [
        f"{edge.source}:{edge.line} imports {edge.target}"
        for edge in imports()
        if (edge.target == "recalign.cli" or edge.target.startswith("recalign.cli."))
        and _outside("recalign.cli", edge)
        and edge.source != "recalign.__main__"
    ]
    assert offenders == []


# Models do not import training: tests/artifacts/test_layering.py.


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_private_names_stay_in_their_module():
    """A `_name` used by another module is part of its interface: make it public (with a
    docstring) or move the code. A `_module` is private to its package."""
    offenders = []
    for edge in imports():
        for name in edge.names:
            if _private(name) and f"{edge.target}.{name}" not in modules():
                offenders.append(f"{edge.source}:{edge.line} imports {edge.target}.{name}")
        private_module = next((part for part in edge.target.split(".") if _private(part)), None)
        if private_module:
            owner = edge.target[: edge.target.index(private_module) - 1]
            if not edge.source.startswith(owner + "."):
                offenders.append(f"{edge.source}:{edge.line} imports {edge.target}")
    assert offenders == []


def _int_defaults_named(field: str) -> list[tuple[str, str, int]]:
    """(module, enclosing class or function, value) of every integer literal given as
    the default of a parameter or class field called `field`."""
    found = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        for owner in ast.walk(tree):
            if isinstance(owner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = owner.args
                positional = [*args.posonlyargs, *args.args]
                with_default = positional[len(positional) - len(args.defaults) :]
                pairs = list(zip(with_default, args.defaults, strict=True))
                pairs += [
                    (a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d
                ]
                for arg, value in pairs:
                    if arg.arg == field:
                        found += [(name, owner.name, v) for v in _int_literals(value)]
            elif isinstance(owner, ast.ClassDef):
                for stmt in owner.body:
                    target = getattr(stmt, "target", None)
                    if isinstance(target, ast.Name) and target.id == field and stmt.value:
                        found += [(name, owner.name, v) for v in _int_literals(stmt.value)]
    return found


def _int_literals(node: ast.AST) -> list[int]:
    """An int literal, or the first argument of `Field(...)` when it is one."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return [node.value]
    if isinstance(node, ast.Call) and node.args:
        return _int_literals(node.args[0])
    return []


def test_the_max_history_default_is_defined_once():
    """Items of history a prompt shows: `DEFAULT_MAX_HISTORY`, nowhere else a number."""
    assert _int_defaults_named("max_history") == [
        ("recalign.serving.limits", "ServeLimits", 100)  # a request limit, not the default
    ]
    constants = [
        (name, node.value.value)
        for name, path in modules().items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "DEFAULT_MAX_HISTORY" for t in node.targets)
        and isinstance(node.value, ast.Constant)
    ]
    assert constants == [("recalign.samples.mixture", 20)]


def test_the_protocol_list_is_defined_once():
    """Only `recalign.ranking` lists the protocols; a table keyed by protocol covers them all."""
    from recalign.ranking import PROTOCOL_NAMES

    protocols = set(PROTOCOL_NAMES)
    lists, tables = [], []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
                items = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                # Tasks share three names with protocols; "sampled" is a protocol's only.
                if "sampled" in items and len(items & protocols) >= 2:
                    lists.append(f"{name}:{node.lineno}")
            elif isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if "sampled" in keys and keys & protocols != protocols:
                    tables.append(f"{name}:{node.lineno}")
    assert [x for x in lists if not x.startswith("recalign.ranking:")] == []
    assert tables == []
