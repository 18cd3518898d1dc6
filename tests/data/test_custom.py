from __future__ import annotations

import polars as pl
import pytest

from recalign.data.prepare import prepare_dataset
from recalign.data.readers.custom import CustomColumns
from recalign.errors import ConfigError, DataFormatError, MissingColumnError

LOG = pl.DataFrame(
    {
        "uid": ["bob", "bob", "ann", "bob", "ann", "ann", "cy"],
        "sku": ["p-9", "p-10", "p-10", "p-2", "p-2", "p-9", "p-2"],
        "ts": [5, 3, 1, 3, 2, 3, 1],
        "stars": [4.0, 5.0, 3.0, 2.0, 1.0, 5.0, 4.0],
    }
)
CATALOGUE = pl.DataFrame(
    {"sku": ["p-2", "p-9", "p-10"], "name": ["Mug", "Mug", ""], "brand": ["A", "B", "C"]}
)
COLUMNS = CustomColumns(user="uid", item="sku", timestamp="ts", rating="stars", title="name")


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_custom(tmp_path, suffix):
    log, cat = tmp_path / f"log.{suffix}", tmp_path / f"items.{suffix}"
    getattr(LOG, f"write_{suffix}")(log)
    getattr(CATALOGUE, f"write_{suffix}")(cat)
    ds = prepare_dataset("custom", tmp_path / "out", interactions=log, items=cat, columns=COLUMNS)
    # ids: dense by sorted source id (text order: p-10 < p-2 < p-9); users likewise
    assert ds.items["source_id"].to_list() == ["p-10", "p-2", "p-9"]
    assert ds.items["text"].to_list() == ["item p-10", "Mug (A)", "Mug (B)"]
    # ann (user 1): p-10@1, p-2@2, p-9@3; bob (user 2): p-10@3 and p-2@3 tie -> file order
    assert ds.sequences["items"].to_list() == [[1, 2, 3], [1, 2, 3]]
    assert ds.sequences["ratings"].to_list() == [[3.0, 1.0, 5.0], [5.0, 2.0, 4.0]]
    assert ds.manifest["report"]["users_excluded_short"] == 1  # cy


def test_custom_without_items_file_or_timestamps(tmp_path):
    log = tmp_path / "log.csv"
    LOG.write_csv(log)
    columns = CustomColumns(user="uid", item="sku")
    ds = prepare_dataset("custom", tmp_path / "out", interactions=log, columns=columns)
    assert not ds.has_timestamps and not ds.has_ratings
    assert ds.sequences["items"].to_list() == [[1, 2, 3], [3, 1, 2]]  # file order
    assert ds.manifest["report"]["items_without_metadata"] == 3


def test_custom_missing_column(tmp_path):
    log = tmp_path / "log.csv"
    LOG.write_csv(log)
    with pytest.raises(MissingColumnError, match="missing column 'user_id'") as info:
        prepare_dataset("custom", tmp_path / "out", interactions=log)
    assert info.value.field == "user_id"


def test_custom_bad_timestamp_names_line(tmp_path):
    log = tmp_path / "log.csv"
    LOG.with_columns(pl.col("ts").cast(pl.Utf8)).with_row_index().with_columns(
        pl.when(pl.col("index") == 3).then(pl.lit("soon")).otherwise(pl.col("ts")).alias("ts")
    ).drop("index").write_csv(log)
    with pytest.raises(DataFormatError, match="expected a number, found 'soon'") as info:
        prepare_dataset("custom", tmp_path / "out", interactions=log, columns=COLUMNS)
    assert (info.value.line, info.value.field) == (5, "ts")  # header is line 1


def test_custom_needs_interactions(tmp_path):
    with pytest.raises(ConfigError, match="--interactions"):
        prepare_dataset("custom", tmp_path / "out")


def test_custom_ragged_csv_names_line(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id\na,1\na,2,extra\na,3\n")
    with pytest.raises(DataFormatError, match="expected 2 fields") as info:
        prepare_dataset("custom", tmp_path / "out", interactions=log)
    assert info.value.line == 3
