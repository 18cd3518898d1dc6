"""Loading models does not depend on training: what both need lives in recalign.artifacts."""

from __future__ import annotations

import ast
from pathlib import Path

import recalign

MODELS = Path(recalign.__file__).parent / "models"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):  # function-level imports too
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_nothing_under_models_imports_training():
    offending = {
        path.name: sorted(n for n in _imports(path) if n.startswith("recalign.training"))
        for path in sorted(MODELS.rglob("*.py"))
    }
    assert {k: v for k, v in offending.items() if v} == {}
    assert _imports(MODELS / "loading.py") & {
        "recalign.artifacts",
        "recalign.artifacts.checkpoints",
    }
