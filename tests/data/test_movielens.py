from __future__ import annotations

import pytest

from recalign.data.prepare import prepare_dataset
from recalign.errors import DataFormatError, MissingColumnError
from tests.factories import write_ml1m, write_ml100k, write_recbole

# user 1: items 3 and 1 share a timestamp; file order (3 then 1) must be kept — an
# item-id sort would put 1 first. User 3 has two ratings: excluded and reported.
RATINGS = [
    (1, 2, 4, 200),
    (1, 3, 5, 100),
    (2, 1, 3, 50),
    (1, 1, 2, 100),
    (2, 2, 1, 60),
    (2, 3, 2, 40),
    (3, 1, 5, 10),
    (3, 2, 5, 11),
    (1, 4, 3, 300),
]


def _check(ds):
    assert ds.sequences["user_id"].to_list() == [1, 2]
    first, second = ds.sequences.iter_rows(named=True)
    assert first["items"] == [3, 1, 2, 4]
    assert first["timestamps"] == [100, 100, 200, 300]
    assert first["ratings"] == [5.0, 2.0, 4.0, 3.0]
    assert second["items"] == [3, 1, 2]
    assert ds.manifest["report"]["users_excluded_short"] == 1
    assert ds.items["item_id"].to_list() == [1, 2, 3, 4]  # 1..n ids kept


def test_grouplens_100k(tmp_path):
    movies = [(1, "Hamlet (1996)"), (2, "Hamlet (1948)"), (3, "Café Society (1995)"), (4, "Solo")]
    source = write_ml100k(tmp_path / "ml", RATINGS, movies)
    ds = prepare_dataset("movielens-100k", tmp_path / "out", source)
    _check(ds)
    assert ds.items["text"].to_list() == ["Hamlet (1996)", "Hamlet (1948)", "Café Society", "Solo"]
    assert ds.items["release_year"].to_list() == ["1996", "1948", "1995", None]
    assert ds.items["categories"][0].to_list() == ["Drama"]


def test_grouplens_1m_latin1_double_colon(tmp_path):
    movies = [(1, "Señor (1990)", "Drama|War"), (2, "B (1991)", "Comedy"), (3, "C (1992)", "X"),
              (4, "D (1993)", "Y")]  # fmt: skip
    source = write_ml1m(tmp_path / "ml", RATINGS, movies)
    ds = prepare_dataset("movielens-1m", tmp_path / "out", source)
    _check(ds)
    assert ds.items["text"].to_list()[0] == "Señor"
    assert ds.items["categories"][0].to_list() == ["Drama", "War"]


def test_recbole_atomic(tmp_path):
    movies = [(1, "Chasing Amy", "1997", "Drama Romance"), (2, "Chasing Amy", "1997", "Drama"),
              (3, "Cape Fear", "1991", "Thriller"), (4, "Cape Fear", "1962", "Thriller")]  # fmt: skip
    source = write_recbole(tmp_path / "ml", RATINGS, movies)
    ds = prepare_dataset("movielens-100k", tmp_path / "out", source)
    _check(ds)
    assert ds.items["text"].to_list() == [
        "Chasing Amy (1997)",
        "Chasing Amy (1997) (2)",
        "Cape Fear (1991)",
        "Cape Fear (1962)",
    ]
    assert ds.items["disambiguated"].to_list() == [True, True, True, True]


def test_sparse_ids_are_remapped_densely(tmp_path):
    ratings = [(10, 500, 5, 1), (10, 20, 5, 2), (10, 7, 5, 3), (42, 7, 1, 1), (42, 500, 1, 2),
               (42, 20, 1, 3)]  # fmt: skip
    movies = [(7, "Seven (1995)"), (20, "Twenty (1990)"), (500, "Five Hundred (2009)")]
    ds = prepare_dataset(
        "movielens-100k", tmp_path / "out", write_ml100k(tmp_path / "ml", ratings, movies)
    )
    assert ds.items["source_id"].to_list() == ["7", "20", "500"]  # numeric order, not text
    assert ds.sequences["items"].to_list() == [[3, 2, 1], [1, 3, 2]]
    assert ds.sequences["user_id"].to_list() == [1, 2]


def test_udata_non_integer_id(tmp_path):
    source = write_ml100k(tmp_path / "ml", RATINGS, [(1, "A (1990)")])
    text = (source / "u.data").read_text().splitlines()
    text[4] = "2\tabc\t1\t60"
    (source / "u.data").write_text("\n".join(text) + "\n")
    with pytest.raises(DataFormatError, match="expected an integer, found 'abc'") as info:
        prepare_dataset("movielens-100k", tmp_path / "out", source)
    assert (info.value.path.name, info.value.line, info.value.field) == ("u.data", 5, "item")


def test_udata_wrong_field_count(tmp_path):
    source = write_ml100k(tmp_path / "ml", RATINGS, [(1, "A (1990)")])
    with open(source / "u.data", "a") as handle:
        handle.write("1\t2\t3\n")
    with pytest.raises(DataFormatError, match="expected 4") as info:
        prepare_dataset("movielens-100k", tmp_path / "out", source)
    assert info.value.line == len(RATINGS) + 1


def test_ratings_dat_bad_rating(tmp_path):
    source = write_ml1m(tmp_path / "ml", RATINGS, [(1, "A (1990)", "X")])
    lines = (source / "ratings.dat").read_text().splitlines()
    lines[1] = "1::3::five::100"
    (source / "ratings.dat").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="expected a number, found 'five'") as info:
        prepare_dataset("movielens-1m", tmp_path / "out", source)
    assert (info.value.line, info.value.field) == (2, "rating")


def test_recbole_missing_column(tmp_path):
    source = write_recbole(tmp_path / "ml", RATINGS, [(1, "A", "1990", "X")])
    lines = (source / "ml.inter").read_text().splitlines()
    lines[0] = lines[0].replace("item_id:token", "movie:token")
    (source / "ml.inter").write_text("\n".join(lines) + "\n")
    with pytest.raises(MissingColumnError, match="missing column 'item_id'"):
        prepare_dataset("movielens-100k", tmp_path / "out", source)


def test_recbole_bad_header(tmp_path):
    source = write_recbole(tmp_path / "ml", RATINGS, [(1, "A", "1990", "X")])
    lines = (source / "ml.inter").read_text().splitlines()
    lines[0] = lines[0].replace("rating:float", "rating")
    (source / "ml.inter").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="header field 3 'rating'"):
        prepare_dataset("movielens-100k", tmp_path / "out", source)
