"""Published counts and text quirks on the real files (skipped when they are absent)."""

from __future__ import annotations

import polars as pl
import pytest

from recalign.data.prepare import prepare_dataset
from recalign.data.text import clean_column

pytestmark = pytest.mark.data


@pytest.mark.parametrize(
    ("name", "folder", "users", "items", "interactions"),
    [
        ("amazon2014-beauty", "amazon2014/beauty", 22363, 12101, 198502),
        ("amazon2014-toys", "amazon2014/toys", 19412, 11924, 167597),
        ("movielens-100k", "movielens-100k", 943, 1682, 100000),
    ],
)
def test_published_counts(real_data_dir, tmp_path, name, folder, users, items, interactions):
    ds = prepare_dataset(name, tmp_path / name, real_data_dir / folder)
    stats = ds.stats()
    assert (stats["users"], stats["items"], stats["interactions"]) == (users, items, interactions)
    assert ds.manifest["report"]["users_excluded_short"] == 0
    texts = ds.items["text"]
    assert texts.n_unique() == texts.len()


def test_beauty_text_quirks(real_data_dir, tmp_path):
    source = real_data_dir / "amazon2014/beauty"
    ds = prepare_dataset("amazon2014-beauty", tmp_path / "b", source)
    items = ds.items
    assert (items["text_source"] != "title").sum() == 7
    assert items.filter(pl.col("text_source") != "title")["text_source"].unique().to_list() == [
        "short_text"
    ]
    titles = clean_column(items["title"])
    titled = titles.filter(titles != "")
    assert titled.filter(titled.is_duplicated()).n_unique() == 28  # 28 duplicated titles
    assert items.filter(pl.col("disambiguated")).height >= 28
    assert items["text"].n_unique() == items.height
    assert items["text"].str.split(" ").list.len().max() <= 24 + 4  # budget + disambiguator
    # Source item ids are kept (S3-Rec files): item 1 is the first row of items.tsv.
    assert items.sort("item_id").row(0, named=True)["source_id"] == "B004756YJA"


def test_toys_uses_short_text(real_data_dir, tmp_path):
    ds = prepare_dataset("amazon2014-toys", tmp_path / "t", real_data_dir / "amazon2014/toys")
    assert ds.items["text_source"].unique().to_list() == ["short_text"]
    assert ds.stats()["text_fallbacks"] == 11924


def test_movielens_order_is_stable_by_timestamp(real_data_dir, tmp_path):
    source = real_data_dir / "movielens-100k"
    ds = prepare_dataset("movielens-100k", tmp_path / "m", source)
    raw = pl.read_csv(source / "ml-100k.inter", separator="\t").with_row_index("order")
    raw.columns = ["order", "user", "item", "rating", "timestamp"]
    expected = (
        raw.sort(["timestamp", "order"])  # stable: ties keep file order, never item id
        .group_by("user", maintain_order=True)
        .agg("item", "timestamp")
        .sort("user")
    )
    assert ds.sequences["items"].to_list() == expected["item"].to_list()
    assert ds.sequences["timestamps"].to_list() == expected["timestamp"].to_list()
    # 22 titles occur more than once (45 items: 23 repeats); all texts end up unique
    titles = ds.items["title"]
    assert titles.filter(titles.is_duplicated()).n_unique() == 22
    assert titles.is_duplicated().sum() - 22 == 23
    assert ds.items.filter(pl.col("disambiguated")).height == 45
    assert ds.items["text"].n_unique() == 1682
    # ties exist in this file, so the test above really checks the tie order
    ties = raw.group_by(["user", "timestamp"]).len().filter(pl.col("len") > 1)
    assert ties.height > 0
