"""kill -9 and SIGTERM at seeded random points, then the operator's next step (slow).

The full run (32 trials over prepare, samples, train and run) is
`python bench/fault_injection.py`; its figures are in bench/RESULTS.md.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "fault_injection.py"


def _bench():
    spec = importlib.util.spec_from_file_location("fault_injection", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_no_kill_leaves_an_artefact_that_lies(tmp_path):
    result = _bench().inject(8, seed=11, only=["prepare", "samples", "train"], work=tmp_path)
    bad = [r for r in result["records"] if r["silent_after_kill"] or r["silent_after_rerun"]]
    assert result["silent_corruptions"] == 0, bad
    failed = [r for r in result["records"] if r["loud_failure"]]
    assert result["loud_failures"] == 0, failed
    assert result["trials"] == 8
