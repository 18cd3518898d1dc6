"""Bounded inputs: no single bad row can take the machine or poison a result.

Oversized item texts are cut (characters as well as words) and counted; NaN, infinite,
negative or out-of-scale ratings and undecodable bytes stop `prepare` with the file and
line; exact duplicate rows are dropped and reported.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from recalign.cli.data import app
from recalign.data.prepare import parse_rating_scale, prepare_dataset
from recalign.data.readers.custom import CustomColumns
from recalign.data.text import DEFAULT_MAX_CHARS, build_item_texts, clean_text, cut_text
from recalign.errors import ConfigError, DataFormatError
from tests.factories import review, write_ml100k, write_raw_amazon, write_recbole, write_s3rec

runner = CliRunner()
TEN_MB = 10_000_000
REPO = Path(__file__).resolve().parents[2]


# --- item texts: a character budget as well as a word budget -------------------------


def test_char_budget_cuts_at_a_word_boundary():
    assert cut_text("aaa bbb ccc", max_words=24, max_chars=7) == ("aaa bbb", "chars")
    assert cut_text("aaa bbb ccc", max_words=24, max_chars=8) == ("aaa bbb", "chars")
    assert cut_text("aaa bbb ccc", max_words=24, max_chars=6) == ("aaa", "chars")
    assert cut_text("aaa bbb ccc", max_words=24, max_chars=11) == ("aaa bbb ccc", None)
    assert cut_text("a b c d", max_words=2, max_chars=100) == ("a b", "words")
    # the character budget is applied after the word budget and wins the label
    assert cut_text("aaaa bbbb cccc", max_words=2, max_chars=6) == ("aaaa", "chars")
    # whitespace and entities are cleaned before counting
    assert clean_text("  Tom &amp;amp;\t Jerry  ", max_chars=11) == "Tom & Jerry"


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab &amp;;\t\n"), max_size=120),
    st.integers(1, 30),
    st.integers(1, 40),
)
def test_budgets_hold_and_cuts_keep_whole_leading_words(value, max_words, max_chars):
    text, cut = cut_text(value, max_words, max_chars)
    full = clean_text(value, max_words=0, max_chars=0)  # no budgets
    assert len(text) <= max_chars and len(text.split()) <= max_words
    assert full.startswith(text) and bool(text) == bool(full)
    assert (cut is None) == (text == full)
    if text != full and full[len(text)] != " ":
        # cut inside a word only when the first word alone exceeds the budget
        assert " " not in text and len(text) == max_chars


def test_one_giant_word_is_cut_inside_the_word():
    text, cut = cut_text("x" * TEN_MB)
    assert (len(text), cut) == (DEFAULT_MAX_CHARS, "chars")
    # a short first word then a giant one: the cut falls after the short word
    assert clean_text("Lipstick " + "y" * TEN_MB) == "Lipstick"


def test_default_budget_keeps_real_length_titles_whole():
    # 24 words of 12 letters (311 characters with spaces) is beyond any real title the
    # project has seen (Beauty: 222 after the word budget); 20 such words fit.
    twenty = " ".join(["abcdefghijkl"] * 20)
    assert clean_text(twenty) == twenty


def test_budgets_must_be_positive():
    items = pl.DataFrame({"item_id": [1], "source_id": ["s"], "title": ["t"]})
    with pytest.raises(ValueError, match="max_chars"):
        build_item_texts(items, max_chars=0)


def test_disambiguator_values_are_bounded_too():
    items = pl.DataFrame(
        {
            "item_id": [1, 2],
            "source_id": ["a", "b"],
            "title": ["Comb", "Comb"],
            "brand": ["z" * TEN_MB, "Acme"],
        }
    )
    texts = build_item_texts(items)["text"].to_list()
    assert texts[1] == "Comb (Acme)"
    assert len(texts[0]) < 100


def test_a_giant_source_id_fallback_is_bounded():
    items = pl.DataFrame({"item_id": [1, 2], "source_id": ["k" * TEN_MB, "k" * TEN_MB + "2"]})
    out = build_item_texts(items)
    assert out["text"].str.len_chars().max() <= DEFAULT_MAX_CHARS + len(" (2)")
    assert out["text"].n_unique() == 2 and out["text_cut"].to_list() == ["chars", "chars"]


def _movies_with_giant_titles(n: int = 6) -> list[tuple[int, str]]:
    movies = [(i, f"Movie {i} (1995)") for i in range(1, n + 1)]
    movies[0] = (1, "x" * TEN_MB)  # one 10 MB word, no spaces
    movies[1] = (2, " ".join(["y" * (TEN_MB // 20)] * 20))  # 20 words of 500 KB
    return movies


def test_ten_mb_title_is_cut_stored_bounded_and_reported(tmp_path, caplog):
    ratings = [(u, i, 4, 100 * u + i) for u in (1, 2) for i in (1, 2, 3)]
    source = write_ml100k(tmp_path / "ml", ratings, _movies_with_giant_titles())
    with caplog.at_level("WARNING"):
        ds = prepare_dataset("movielens-100k", tmp_path / "out", source)
    assert "2 item text(s) longer than 300 characters were cut" in caplog.text
    stored = pl.read_parquet(tmp_path / "out" / "items.parquet")
    assert stored["text"].str.len_chars().max() <= DEFAULT_MAX_CHARS
    assert stored["text"][0] == "x" * DEFAULT_MAX_CHARS
    assert stored["text"][1] == "y" * DEFAULT_MAX_CHARS  # its first word is 500 KB
    assert stored["text_cut"].to_list()[:3] == ["chars", "chars", None]
    report = ds.manifest["report"]
    assert report["items_text_cut_chars"] == 2
    assert report["text_budget"] == {"max_words": 24, "max_chars": DEFAULT_MAX_CHARS}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["options"]["max_chars"] == DEFAULT_MAX_CHARS


def test_max_chars_option_on_the_command_line(tmp_path):
    ratings = [(u, i, 4, 100 * u + i) for u in (1, 2) for i in (1, 2, 3)]
    movies = [(1, "Alpha Beta Gamma"), (2, "Delta"), (3, "Epsilon Zeta")]
    source = write_ml100k(tmp_path / "ml", ratings, movies)
    out = tmp_path / "out"
    args = ["prepare", "movielens-100k", "--source", str(source), "--out", str(out)]
    result = runner.invoke(app, [*args, "--max-chars", "10"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "item texts cut: 0 to 24 words, 2 to 10 characters" in result.output
    texts = pl.read_parquet(out / "items.parquet")["text"].to_list()
    assert texts == ["Alpha Beta", "Delta", "Epsilon"]
    bad = runner.invoke(app, [*args, "--max-chars", "0"])
    assert isinstance(bad.exception, ConfigError)


@pytest.mark.slow
def test_samples_from_a_ten_mb_title_stay_under_one_gb(tmp_path):
    """The operator's case: 40 users, a 10 MB title; `samples generate` once reached
    8.1 GB RSS. Each command runs in a fresh interpreter whose only child it is, so
    RUSAGE_CHILDREN's peak is that command's own."""
    ratings = [
        (u, 1 if k == 0 else 2 if k == 1 else (u * 7 + k) % 58 + 3, k % 5 + 1, 1000 + k)
        for u in range(1, 41)
        for k in range(8)
    ]
    movies = [(i, f"Movie {i} (1995)") for i in range(1, 61)]
    movies[:2] = _movies_with_giant_titles()[:2]
    source = write_ml100k(tmp_path / "ml", ratings, movies)
    data, samples = tmp_path / "data", tmp_path / "samples"

    def peak_mb(*args: str) -> float:
        measure = (
            "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "RECALIGN_THREADS": "2"}
        done = subprocess.run(
            [sys.executable, "-c", measure, sys.executable, "-m", "recalign", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return int(done.stdout.strip().splitlines()[-1]) / 1024  # Linux: kilobytes

    prepare_mb = peak_mb(
        "data", "prepare", "movielens-100k", "--source", str(source), "--out", str(data)
    )
    generate_mb = peak_mb("samples", "generate", str(data), "--out", str(samples))
    assert generate_mb < 1024, f"samples generate peaked at {generate_mb:.0f} MB"
    assert prepare_mb < 1024, f"prepare peaked at {prepare_mb:.0f} MB"
    inputs = pl.read_parquet(samples / "train.parquet")["input"]
    assert inputs.str.len_chars().max() < 100_000
    assert not inputs.str.contains("x" * (DEFAULT_MAX_CHARS + 1)).any()


# --- ratings: finite and within the scale ---------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "6"])
def test_movielens_bad_rating_names_file_and_line(tmp_path, value):
    ratings = [(1, 1, 4, 10), (1, 2, 4, 11), (1, 3, value, 12), (2, 1, 3, 13)]
    source = write_ml100k(tmp_path / "ml", ratings, [(1, "A"), (2, "B"), (3, "C")])
    with pytest.raises(DataFormatError, match=r"finite number in \[1, 5\]") as info:
        prepare_dataset("movielens-100k", tmp_path / "out", source)
    error = info.value
    assert (error.path.name, error.line, error.field) == ("u.data", 3, "rating")
    assert "u.data, line 3" in str(error)


@pytest.mark.parametrize("value", ["nan", "inf", "1e30"])
def test_non_finite_timestamp_names_line_instead_of_becoming_null(tmp_path, value):
    ratings = [(1, 1, 4, 10), (1, 2, 4, value), (1, 3, 4, 12)]
    source = write_ml100k(tmp_path / "ml", ratings, [(1, "A"), (2, "B"), (3, "C")])
    with pytest.raises(DataFormatError, match=f"found '{value}'") as info:
        prepare_dataset("movielens-100k", tmp_path / "out", source)
    assert (info.value.line, info.value.field) == (2, "timestamp")


@pytest.mark.parametrize("value", [float("nan"), 1.5])
def test_custom_parquet_timestamp_must_be_a_whole_finite_number(tmp_path, value):
    log = tmp_path / "log.parquet"
    pl.DataFrame(
        {"user_id": ["u"] * 3, "item_id": ["a", "b", "c"], "ts": [1.0, value, 3.0]}
    ).write_parquet(log)
    with pytest.raises(DataFormatError, match="row 2") as info:
        prepare_dataset(
            "custom", tmp_path / "out", interactions=log, columns=CustomColumns(timestamp="ts")
        )
    assert info.value.field == "ts"


def test_recbole_nan_rating_names_line(tmp_path):
    ratings = [(1, 1, 4, 10), (1, 2, "NaN", 11), (1, 3, 4, 12)]
    source = write_recbole(tmp_path / "ml", ratings, [(1, "A", "1990", "X")])
    with pytest.raises(DataFormatError, match="found nan") as info:
        prepare_dataset("movielens-100k", tmp_path / "out", source)
    assert (info.value.path.name, info.value.line) == ("ml.inter", 3)  # header is line 1


def _custom_log(tmp_path, ratings, suffix="csv") -> Path:
    log = tmp_path / f"log.{suffix}"
    frame = pl.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2"],
            "item_id": ["a", "b", "c", "a"],
            "ts": [1, 2, 3, 4],
            "stars": ratings,
        }
    )
    getattr(frame, f"write_{suffix}")(log)
    return log


COLUMNS = CustomColumns(timestamp="ts", rating="stars")


@pytest.mark.parametrize(
    ("value", "scale", "message"),
    [
        (float("nan"), None, "finite, non-negative number, found nan"),
        (float("inf"), None, "found inf"),
        (-2.0, None, "non-negative"),
        (-2.0, "1,5", r"in \[1, 5\], found -2.0"),
        (5.5, "1,5", r"in \[1, 5\], found 5.5"),
        (0.0, (1, 5), r"in \[1, 5\], found 0.0"),
    ],
)
def test_custom_bad_rating_names_file_and_line(tmp_path, value, scale, message):
    log = _custom_log(tmp_path, [4.0, 3.0, value, 1.0])
    with pytest.raises(DataFormatError, match=message) as info:
        prepare_dataset(
            "custom", tmp_path / "out", interactions=log, columns=COLUMNS, rating_scale=scale
        )
    # line 1 is the header: the third rating is on line 4
    assert (info.value.path, info.value.line, info.value.field) == (log, 4, "stars")


def test_custom_parquet_bad_rating_names_the_row(tmp_path):
    log = _custom_log(tmp_path, [4.0, float("nan"), 3.0, 1.0], suffix="parquet")
    with pytest.raises(DataFormatError, match=r"found nan \(row 2\)") as info:
        prepare_dataset("custom", tmp_path / "out", interactions=log, columns=COLUMNS)
    assert info.value.path == log


def test_custom_rating_scale_is_checked_and_recorded(tmp_path):
    log = _custom_log(tmp_path, [-1.0, 1.0, 0.0, 1.0])
    ds = prepare_dataset(
        "custom", tmp_path / "out", interactions=log, columns=COLUMNS, rating_scale="-1,1"
    )
    assert ds.sequences["ratings"].to_list() == [[-1.0, 1.0, 0.0]]
    assert ds.manifest["source"]["rating_scale"] == [-1.0, 1.0]


@pytest.mark.parametrize("scale", ["5", "a,b", "5,1", "1,inf", [1, 2, 3]])
def test_bad_rating_scale_is_a_config_error(scale):
    with pytest.raises(ConfigError, match="rating scale"):
        parse_rating_scale(scale)


def test_rating_scale_is_only_for_custom(tmp_path):
    source = write_ml100k(tmp_path / "ml", [(1, 1, 4, 10)], [(1, "A")])
    args = ["prepare", "movielens-100k", "--source", str(source), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, [*args, "--rating-scale", "1,5"])
    assert isinstance(result.exception, ConfigError)


def _raw_amazon(tmp_path, overall) -> Path:
    reviews = [review(f"U{u}", f"B{i}", 1000 + i) for u in range(1, 6) for i in range(1, 6)]
    reviews[7]["overall"] = overall
    meta = [{"asin": f"B{i}", "title": f"Product {i}"} for i in range(1, 6)]
    return write_raw_amazon(tmp_path / "raw", reviews, meta)


@pytest.mark.parametrize(
    ("overall", "message"),
    [
        (float("nan"), "NaN is not a JSON number"),
        (float("-inf"), "-Infinity is not a JSON number"),
        (-3.0, r"in \[1, 5\], found -3.0"),
        (50.0, r"in \[1, 5\], found 50.0"),
    ],
)
def test_raw_amazon_bad_rating_names_file_and_line(tmp_path, overall, message):
    source = _raw_amazon(tmp_path, overall)
    with pytest.raises(DataFormatError, match=message) as info:
        prepare_dataset("amazon2014-beauty", tmp_path / "out", source)
    assert (info.value.path.name, info.value.line) == ("reviews_Beauty_5.json.gz", 8)


# --- undecodable bytes -----------------------------------------------------------------


def test_custom_csv_with_a_non_utf8_byte_names_line_and_offset(tmp_path):
    log = tmp_path / "log.csv"
    log.write_bytes(b"user_id,item_id\nu1,a\nu1,caf\xe9\nu1,b\n")
    with pytest.raises(DataFormatError) as info:
        prepare_dataset("custom", tmp_path / "out", interactions=log)
    assert (info.value.path, info.value.line) == (log, 3)
    # "user_id,item_id\n" is 16 bytes, "u1,a\n" 5, "u1,caf" 6: the byte is at offset 27
    assert "0xe9 at byte offset 27 (byte 7 of the line)" in str(info.value)
    assert "as utf-8" in str(info.value)


def test_custom_items_file_with_a_non_utf8_byte(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id\nu1,a\nu1,b\nu1,c\n")
    items = tmp_path / "items.csv"
    items.write_bytes(b"item_id,title\na,Alpha\nb,\xff\xfe\nc,Gamma\n")
    with pytest.raises(DataFormatError, match="byte offset 24") as info:
        prepare_dataset("custom", tmp_path / "out", interactions=log, items=items)
    assert (info.value.path, info.value.line) == (items, 3)


def test_s3rec_sequences_with_a_non_utf8_byte(tmp_path):
    source = write_s3rec(tmp_path / "src", {1: [1, 2, 3]}, [(1, "A1", "T", "t", "X")])
    (source / "sequences.txt").write_bytes(b"1 1 2 3\n2 1\x80 2\n")
    with pytest.raises(
        DataFormatError, match=r"0x80 at byte offset 11 \(byte 4 of the line\)"
    ) as info:
        prepare_dataset("amazon2014-beauty", tmp_path / "out", source)
    assert (info.value.path.name, info.value.line) == ("sequences.txt", 2)


def test_gzip_reviews_with_a_non_utf8_byte(tmp_path):
    source = _raw_amazon(tmp_path, 5.0)
    path = source / "reviews_Beauty_5.json.gz"
    lines = gzip.decompress(path.read_bytes()).split(b"\n")
    lines[4] = lines[4].replace(b"someone", b"some\xc3one")
    path.write_bytes(gzip.compress(b"\n".join(lines)))
    with pytest.raises(DataFormatError, match="byte offset") as info:
        prepare_dataset("amazon2014-beauty", tmp_path / "out", source)
    assert info.value.line == 5


# --- exact duplicate rows ----------------------------------------------------------------


def test_exact_duplicates_are_dropped_counted_and_located(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text(
        "user_id,item_id,ts,stars\n"
        "u1,a,1,5\n"  # line 2
        "u1,b,2,4\n"
        "u1,a,1,5\n"  # line 4: repeats line 2
        "u1,c,3,3\n"
        "u1,b,2,4\n"  # line 6: repeats line 3
        "u1,c,3,2\n"  # same user, item and time, another rating: not an exact duplicate
    )
    ds = prepare_dataset("custom", tmp_path / "out", interactions=log, columns=COLUMNS)
    duplicates = ds.manifest["report"]["duplicates"]
    assert duplicates["dropped"] == 2
    assert duplicates["key"] == ["user", "item", "timestamp", "rating"]
    assert duplicates["first"] == f"{log} line 4 (repeats {log} line 2)"
    assert ds.sequences["items"].to_list() == [[1, 2, 3, 3]]
    assert ds.stats()["interactions"] == 4


def test_movielens_duplicates_report_the_file_line(tmp_path):
    ratings = [(1, 1, 4, 10), (1, 2, 4, 11), (1, 3, 4, 12), (1, 2, 4, 11)]
    source = write_ml100k(tmp_path / "ml", ratings, [(1, "A"), (2, "B"), (3, "C")])
    ds = prepare_dataset("movielens-100k", tmp_path / "out", source)
    duplicates = ds.manifest["report"]["duplicates"]
    assert duplicates["dropped"] == 1
    assert duplicates["first"].endswith(
        "u.data line 4 (repeats " + str(source / "u.data") + " line 2)"
    )


def test_without_timestamps_a_repeat_is_kept(tmp_path):
    items = [(i, f"A{i}", f"T{i}", f"t{i}", "X") for i in (1, 2, 3)]
    source = write_s3rec(tmp_path / "src", {1: [1, 2, 1, 3]}, items)
    ds = prepare_dataset("amazon2014-beauty", tmp_path / "out", source)
    assert ds.sequences["items"].to_list() == [[1, 2, 1, 3]]
    assert ds.manifest["report"]["duplicates"] == {"dropped": 0, "key": None}


def test_every_prepare_prints_what_it_dropped_and_why(tmp_path):
    ratings = [(1, 1, 4, 10), (1, 2, 4, 11), (1, 3, 4, 12), (1, 2, 4, 11), (2, 1, 3, 5)]
    movies = [(1, "A"), (2, ""), (3, "C " * 40)]
    source = write_ml100k(tmp_path / "ml", ratings, movies)
    out = tmp_path / "out"
    args = ["prepare", "movielens-100k", "--source", str(source), "--out", str(out)]
    result = runner.invoke(app, args, terminal_width=400)
    assert result.exit_code == 0, result.output
    output = result.output
    assert (
        "duplicates: dropped 1 exact duplicate row(s) (same user, item, timestamp, rating)"
        in output
    )
    assert "u.data line 4" in output
    assert "k-core: not applied" in output
    assert "excluded 1 user(s) with fewer than 3 interactions (1 interactions)" in output
    assert "item texts: 1 without a title -> fallback (0 short text, 1 `item <id>`)" in output
    assert "item texts cut: 1 to 24 words, 0 to 300 characters" in output
