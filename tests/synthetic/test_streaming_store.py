"""`write_prepared_streaming`: same artefacts as `write_prepared`, batch-wise validation."""

from __future__ import annotations

import json

import polars as pl
import pytest

from recalign.constants import ITEMS, SEQUENCES_FILE, STATS_FILE, USER_ID
from recalign.data.store import write_prepared, write_prepared_streaming
from recalign.errors import DataFormatError, RecalignError

ITEMS_TABLE = pl.DataFrame(
    {"item_id": [1, 2, 3, 4], "source_id": list("abcd"), "text": ["w", "x", "y", "z"]}
)


def sequences(users: range) -> pl.DataFrame:
    return pl.DataFrame(
        {
            USER_ID: list(users),
            ITEMS: [[1 + (u + j) % 3 for j in range(3 + u % 4)] for u in users],
            "ratings": [[float(1 + j % 5) for j in range(3 + u % 4)] for u in users],
        }
    )


def test_streaming_matches_in_memory(tmp_path):
    whole = sequences(range(1, 30))
    batches = [whole.slice(0, 10), whole.slice(10, 0), whole.slice(10, 19)]
    streamed = write_prepared_streaming(tmp_path / "s", "fixture", iter(batches), ITEMS_TABLE)
    direct = write_prepared(tmp_path / "d", "fixture", whole, ITEMS_TABLE)
    assert streamed.sequences.equals(direct.sequences)
    assert streamed.items.equals(direct.items)
    stats = json.loads((tmp_path / "s" / STATS_FILE).read_text())
    assert stats == json.loads((tmp_path / "d" / STATS_FILE).read_text())
    assert stats["items_interacted"] == 3 and stats["has_ratings"]
    assert streamed.manifest["stats"] == stats
    assert streamed.data_hash and streamed.manifest["name"] == "fixture"


def test_load_false_returns_nothing(tmp_path):
    out = write_prepared_streaming(tmp_path, "f", [sequences(range(1, 5))], ITEMS_TABLE, load=False)
    assert out is None
    assert (tmp_path / SEQUENCES_FILE).is_file()


@pytest.mark.parametrize(
    ("batches", "error", "message"),
    [
        ([sequences(range(5, 9)), sequences(range(1, 4))], DataFormatError, "increasing user-id"),
        ([sequences(range(1, 4)).reverse()], DataFormatError, "increasing user-id"),
        (
            [sequences(range(1, 4)), sequences(range(4, 6)).drop("ratings")],
            DataFormatError,
            "batch 2 does not match",
        ),
        (
            [pl.DataFrame({USER_ID: [1], ITEMS: [[1, 9, 2]]})],
            DataFormatError,
            "not in items",
        ),
        ([], RecalignError, "no sequences"),
    ],
)
def test_bad_batches_are_clear_errors(tmp_path, batches, error, message):
    with pytest.raises(error, match=message):
        write_prepared_streaming(tmp_path, "f", batches, ITEMS_TABLE)
    assert not (tmp_path / SEQUENCES_FILE).exists()  # nothing half-written is left in place
    assert not list(tmp_path.glob("*.tmp"))


def test_file_does_not_depend_on_batching(tmp_path, monkeypatch):
    import recalign.data.store as store

    monkeypatch.setattr(store, "STREAM_ROW_GROUP_USERS", 16)  # several row groups
    whole = sequences(range(1, 101))
    hashes = []
    for size in (7, 16, 100):
        batches = [whole.slice(i, size) for i in range(0, 100, size)]
        ds = write_prepared_streaming(tmp_path / str(size), "f", batches, ITEMS_TABLE)
        assert ds.sequences.equals(whole)
        hashes.append(ds.data_hash)
    assert len(set(hashes)) == 1

    import pyarrow.parquet as pq

    groups = pq.ParquetFile(tmp_path / "7" / SEQUENCES_FILE).metadata.num_row_groups
    assert groups == 7  # 6 x 16 users + 4
