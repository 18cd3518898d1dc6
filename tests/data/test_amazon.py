from __future__ import annotations

import gzip

import polars as pl
import pytest

from recalign.data.prepare import prepare_dataset
from recalign.errors import DataFormatError
from tests.factories import review, write_raw_amazon, write_s3rec

ITEMS = [
    (1, "A1", "Red &amp; Gold  Lipstick", "red lipstick", "Acme|Makeup|Lips"),
    (2, "A2", "", "blue shampoo", "Hair Care|Shampoos"),
    (3, "A3", "Comb", "comb", "Acme|Hair Care|Tools"),
    (4, "A4", "Comb", "wide comb", "Mason|Hair Care|Tools"),
    (5, "A5", "Nail Polish", "nail polish", "Makeup|Nails"),
]


def test_s3rec_layout(tmp_path):
    source = write_s3rec(tmp_path / "src", {1: [1, 2, 3, 4], 2: [5, 3, 1], 3: [2, 4]}, ITEMS)
    ds = prepare_dataset("amazon2014-beauty", tmp_path / "out", source)
    assert ds.sequences["items"].to_list() == [[1, 2, 3, 4], [5, 3, 1]]
    assert ds.sequences["user_id"].to_list() == [1, 2]
    assert not ds.has_ratings and not ds.has_timestamps
    # user 3 had 2 interactions: excluded and counted, never silently
    assert ds.manifest["report"]["users_excluded_short"] == 1
    assert ds.manifest["report"]["interactions_excluded_short"] == 2
    items = ds.items.sort("item_id")
    assert items["item_id"].to_list() == [1, 2, 3, 4, 5]  # source ids kept
    assert items["source_id"].to_list() == ["A1", "A2", "A3", "A4", "A5"]
    assert items["text"].to_list() == [
        "Red & Gold Lipstick",
        "blue shampoo",
        "Comb (Acme)",
        "Comb (Mason)",
        "Nail Polish",
    ]
    assert items["text_source"].to_list() == ["title", "short_text", "title", "title", "title"]
    # a first name that is also a category elsewhere is not a brand
    assert items["brand"].to_list() == ["Acme", None, "Acme", "Mason", None]
    assert items["categories"].to_list()[1] == ["Hair Care", "Shampoos"]
    assert ds.split.test["target_item"].to_list() == [4, 1]


@pytest.mark.parametrize(
    ("line", "message"),
    [("7 1 x 3", "expected an integer, found 'x'"), ("u9 1 2 3", "expected an integer")],
)
def test_s3rec_malformed_line_names_file_and_line(tmp_path, line, message):
    source = write_s3rec(tmp_path / "src", {1: [1, 2, 3], 2: [3, 4, 5]}, ITEMS)
    with open(source / "sequences.txt", "a") as handle:
        handle.write(line + "\n")
    with pytest.raises(DataFormatError, match=message) as info:
        prepare_dataset("amazon2014-beauty", tmp_path / "out", source)
    assert info.value.line == 3
    assert info.value.path.name == "sequences.txt"


def test_s3rec_items_wrong_field_count(tmp_path):
    source = write_s3rec(tmp_path / "src", {1: [1, 2, 3]}, ITEMS)
    with open(source / "items.tsv", "a") as handle:
        handle.write("6\tA6\tonly three\n")
    with pytest.raises(
        DataFormatError, match="expected 5 '\\\\t'-separated fields, found 3"
    ) as info:
        prepare_dataset("amazon2014-beauty", tmp_path / "out", source)
    assert info.value.line == 7 and info.value.path.name == "items.tsv"


def test_s3rec_unknown_item(tmp_path):
    source = write_s3rec(tmp_path / "src", {1: [1, 2, 99]}, ITEMS)
    with pytest.raises(DataFormatError, match=r"no row in the items file.*99"):
        prepare_dataset("amazon2014-beauty", tmp_path / "out", source)


def _raw_fixture(tmp_path):
    """u1..u5 review a1..a5 (a 5-core); u6 and a6 fall out in two k-core passes."""
    reviews = []
    for u in range(1, 6):
        for a in range(1, 6):
            # u1 reviews a3 and a1 at the same second: file order must win (a3 first)
            time = 1000 + a if not (u == 1 and a in (1, 3)) else 999
            reviews.append(review(f"U{u}", f"B{a}", time, rating=float(a)))
    reviews[0], reviews[2] = reviews[2], reviews[0]  # u1: a3 before a1 in the file
    # u6 has 5 reviews but 4 on a6 (only u6 has a6): a6 goes, then u6 has 1 left
    reviews += [review("U6", "B6", 2000 + i) for i in range(4)] + [review("U6", "B1", 3000)]
    meta = [
        {"asin": f"B{a}", "title": f"Product &amp; {a}", "brand": "Acme",
         "categories": [["Beauty", "Makeup"], ["Beauty", "Lips"]], "price": 9.5}
        for a in (1, 2, 3, 4, 6)
    ]  # fmt: skip
    meta.append({"asin": "ZZZ", "title": "never reviewed", "related": {"also_bought": ["B1"]}})
    return write_raw_amazon(tmp_path / "raw", reviews, meta)


def test_raw_amazon(tmp_path):
    source = _raw_fixture(tmp_path)
    ds = prepare_dataset("amazon2014-beauty", tmp_path / "out", source)
    report = ds.manifest["report"]
    assert report["kcore"]["k"] == 5 and report["kcore"]["passes"] == 3
    assert ds.sequences.height == 5 and ds.items.height == 5
    assert ds.has_ratings and ds.has_timestamps
    first = ds.sequences.row(0, named=True)
    items = ds.items.sort("item_id")
    assert items["source_id"].to_list() == ["B1", "B2", "B3", "B4", "B5"]  # sorted ASIN
    # U1: B3 and B1 tie at t=999 and keep file order (B3 first), then B2, B4, B5
    assert first["items"] == [3, 1, 2, 4, 5]
    assert first["timestamps"] == [999, 999, 1002, 1004, 1005]
    assert first["ratings"] == [3.0, 1.0, 2.0, 4.0, 5.0]
    assert items["text"].to_list()[:2] == ["Product & 1", "Product & 2"]
    assert items["categories"][0].to_list() == ["Beauty", "Makeup", "Lips"]
    # B5 has no meta line: falls back to its id, and the report says so
    assert items["text"].to_list()[4] == "item B5"
    assert items["text_source"].to_list()[4] == "id"


def test_raw_amazon_bad_json_line(tmp_path):
    source = _raw_fixture(tmp_path)
    path = source / "reviews_Beauty_5.json.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    lines[6] = '{"reviewerID": "U2", "asin": "B2", "overall": 5.0, "unixReviewTime": '
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(DataFormatError, match="invalid JSON") as info:
        prepare_dataset("amazon2014-beauty", tmp_path / "out", source)
    assert info.value.line == 7 and info.value.path.name == path.name


def test_raw_amazon_missing_field(tmp_path):
    source = _raw_fixture(tmp_path)
    path = source / "reviews_Beauty_5.json.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    lines[3] = '{"reviewerID": "U1", "asin": "B4", "overall": 5.0}'
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(DataFormatError, match="missing field 'unixReviewTime'") as info:
        prepare_dataset("amazon2014-beauty", tmp_path / "out", source)
    assert info.value.line == 4


def test_raw_amazon_bad_meta_line(tmp_path):
    source = _raw_fixture(tmp_path)
    path = source / "meta_Beauty.json.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    lines[1] = "{'asin': 'B2', 'title': 'broken"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(DataFormatError, match="Python-literal") as info:
        prepare_dataset("amazon2014-beauty", tmp_path / "out", source)
    assert info.value.line == 2


def test_unknown_layout(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match=r"sequences.txt \+ items.tsv"):
        prepare_dataset("amazon2014-toys", tmp_path / "out", tmp_path / "empty")


def test_sequences_parquet_types(tmp_path):
    source = write_s3rec(tmp_path / "src", {1: [1, 2, 3, 4]}, ITEMS)
    prepare_dataset("amazon2014-beauty", tmp_path / "out", source)
    schema = pl.read_parquet_schema(tmp_path / "out" / "sequences.parquet")
    assert schema["items"] == pl.List(pl.Int64) and schema["user_id"] == pl.Int64


def test_s3rec_items_header_names_missing_column(tmp_path):
    source = write_s3rec(tmp_path / "src", {1: [1, 2, 3]}, ITEMS)
    lines = (source / "items.tsv").read_text().splitlines()
    lines[0] = lines[0].replace("item_id", "id")
    (source / "items.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="missing column 'item_id'") as info:
        prepare_dataset("amazon2014-beauty", tmp_path / "out", source)
    assert info.value.field == "item_id" and info.value.line == 1
