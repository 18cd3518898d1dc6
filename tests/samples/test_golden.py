"""Golden snapshots of rendered samples for a fixed seed.

A template or task change that alters any prompt fails here. When the change is
intended, regenerate the snapshot and review its diff:

    RECALIGN_REGEN_GOLDEN=1 pytest tests/samples/test_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl

from recalign.samples import generate_samples

from .conftest import RATINGS, SEQUENCES, make_dataset

GOLDEN = Path(__file__).parent / "golden" / "samples_seed0.json"
COLUMNS = [
    "task",
    "template",
    "user_id",
    "input",
    "target",
    "target_item",
    "candidates",
    "history_bounds",
]


def snapshot(tmp_path: Path) -> dict:
    dataset = make_dataset(tmp_path / "d", SEQUENCES[:3], 40, RATINGS[:3])
    result = {}
    for family in ("seq2seq", "causal"):
        out = tmp_path / family
        generate_samples(
            dataset,
            out,
            seed=0,
            family=family,
            config={"tasks": {"ranking": {"num_candidates": 5}}},
        )
        for split in ("train", "valid", "test"):
            frame = pl.read_parquet(out / f"{split}.parquet").select(COLUMNS)
            if family == "causal":  # only MLM depends on the family
                frame = frame.filter(pl.col("task") == "mlm")
            result[f"{family}/{split}"] = frame.to_dicts()
    return result


def test_rendered_samples_match_the_golden_snapshot(tmp_path):
    current = snapshot(tmp_path)
    if os.environ.get("RECALIGN_REGEN_GOLDEN"):
        GOLDEN.write_text(json.dumps(current, indent=1, ensure_ascii=False) + "\n")
    expected = json.loads(GOLDEN.read_text())
    assert current.keys() == expected.keys()
    for key in expected:
        assert current[key] == expected[key], key
