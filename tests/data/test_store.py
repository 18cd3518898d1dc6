"""The prepared directory read lazily: validation by scanning, batches of row ranges."""

from __future__ import annotations

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recalign.constants import SEQUENCES_FILE
from recalign.data.store import load_prepared, write_prepared
from recalign.errors import DataFormatError
from tests.factories import reseal

USERS = 57


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared directory whose sequences file has many small row groups."""
    out = tmp_path_factory.mktemp("prepared")
    sequences = pl.DataFrame(
        {
            "user_id": list(range(1, USERS + 1)),
            "items": [[1 + (u + j) % 9 for j in range(3 + u % 4)] for u in range(USERS)],
        }
    )
    items = pl.DataFrame(
        {
            "item_id": list(range(1, 10)),
            "source_id": [f"s{i}" for i in range(1, 10)],
            "text": [f"item {i}" for i in range(1, 10)],
        }
    )
    write_prepared(out, "rowgroups", sequences, items)
    # Re-write the file with row groups of 8 users, as a large streamed file would have.
    pq.write_table(pq.read_table(out / SEQUENCES_FILE), out / SEQUENCES_FILE, row_group_size=8)
    reseal(out)
    assert pq.ParquetFile(out / SEQUENCES_FILE).metadata.num_row_groups == 8
    return out, sequences


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.integers(0, USERS),
    length=st.integers(0, USERS),
    size=st.integers(1, 20),
)
def test_batches_are_the_row_range_in_exact_sizes(prepared, start, length, size):
    out, sequences = prepared
    stop = min(USERS, start + length)
    batches = list(load_prepared(out).sequence_batches(start, stop, size, ["user_id", "items"]))
    assert all(b.height == size for b in batches[:-1])
    assert not batches or 0 < batches[-1].height <= size
    got = pl.concat(batches) if batches else sequences.clear()
    assert got.equals(sequences.slice(start, stop - start))


def test_sequences_stay_on_disk_until_used(prepared):
    out, sequences = prepared
    dataset = load_prepared(out)
    assert "sequences" not in dataset.__dict__  # validated by a scan, not read whole
    assert dataset.scan_sequences().select(pl.len()).collect().item() == USERS
    assert dataset.sequences.equals(sequences)
    # Once in memory, batches come from memory and agree with the file.
    assert pl.concat(list(dataset.sequence_batches(5, 40, 7))).equals(sequences.slice(5, 35))


def test_scan_validation_names_unknown_items(prepared, tmp_path):
    out, sequences = prepared
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("items.parquet", "manifest.json"):
        (bad / name).write_bytes((out / name).read_bytes())
    sequences.with_columns(pl.col("items").list.concat(pl.lit([42]))).write_parquet(
        bad / SEQUENCES_FILE
    )
    reseal(bad)
    with pytest.raises(
        DataFormatError, match=r"1 item id\(s\) in sequences are not in items, e.g. \[42\]"
    ):
        load_prepared(bad)
