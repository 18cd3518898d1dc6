from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recalign.cli.data import app
from recalign.errors import ConfigError, DataFormatError
from tests.factories import write_s3rec

runner = CliRunner()
ITEMS = [(i, f"A{i}", f"Item {i}", f"item {i}", "Acme|Makeup") for i in range(1, 6)]


def test_list_shows_names_and_sources():
    result = runner.invoke(app, ["list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("synthetic", "amazon2014-beauty", "movielens-100k", "custom"):
        assert name in result.output
    assert "https://files.grouplens.org/datasets/movielens/ml-100k.zip" in result.output
    assert "built-in" in result.output


def test_prepare_then_stats(tmp_path):
    source = write_s3rec(tmp_path / "src", {1: [1, 2, 3, 4], 2: [5, 4, 3], 3: [1, 2]}, ITEMS)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["prepare", "amazon2014-beauty", "--source", str(source), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "2 users, 5 items, 7 interactions" in result.output
    assert "excluded 1 user(s) with fewer than 3 interactions (2 interactions)" in result.output

    as_json = runner.invoke(app, ["stats", str(out), "--json"])
    assert as_json.exit_code == 0
    stats = json.loads(as_json.output)
    assert (stats["users"], stats["items"], stats["interactions"]) == (2, 5, 7)
    assert stats["sequence_length"]["max"] == 4

    table = runner.invoke(app, ["stats", str(out)], terminal_width=200)
    assert table.exit_code == 0
    assert "interactions" in table.output and "sequence_length.median" in table.output


def test_unknown_dataset_lists_known_ones(tmp_path):
    result = runner.invoke(app, ["prepare", "amazon-beauty", "--out", str(tmp_path)])
    assert isinstance(result.exception, ConfigError)
    assert "known datasets: synthetic, amazon2014-beauty" in str(result.exception)


def test_malformed_source_is_an_error_with_line(tmp_path):
    source = write_s3rec(tmp_path / "src", {1: [1, 2, 3]}, ITEMS)
    (source / "sequences.txt").write_text("1 1 2 3\n2 4 five 3\n")
    result = runner.invoke(
        app, ["prepare", "amazon2014-beauty", "--source", str(source), "--out", str(tmp_path / "o")]
    )
    assert isinstance(result.exception, DataFormatError)
    assert "sequences.txt, line 2" in str(result.exception)


def test_custom_via_cli(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("u,i,t\nx,a,1\nx,b,2\nx,c,3\n")
    items = tmp_path / "items.csv"
    items.write_text("i,title\na,Alpha\nb,Beta\nc,Gamma\n")
    out = tmp_path / "out"
    args = ["prepare", "custom", "--interactions", str(log), "--items", str(items)]
    args += ["--user-col", "u", "--item-col", "i", "--timestamp-col", "t", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    from recalign.data.store import load_prepared

    ds = load_prepared(out)
    assert ds.items["text"].to_list() == ["Alpha", "Beta", "Gamma"]
    assert ds.sequences["timestamps"].to_list() == [[1, 2, 3]]


@pytest.mark.parametrize(
    ("name", "args", "needles"),
    [
        # --items is the items file of 'custom'; the shop's size has its own options
        ("synthetic", ["--items", "items.csv"], ["--items", "'custom'", "--num-items N"]),
        ("synthetic", ["--interactions", "log.csv"], ["--interactions", "'custom'"]),
        ("movielens-100k", ["--num-users", "5"], ["--num-users", "'synthetic'"]),
        ("movielens-100k", ["--seed", "1"], ["--seed", "'synthetic'"]),
        ("custom", ["--num-items", "5"], ["--num-items", "'synthetic'"]),
        ("amazon2014-beauty", ["--items", "i.csv"], ["--items", "'custom'", "--source"]),
    ],
)
def test_options_of_another_dataset_kind_are_refused(tmp_path, name, args, needles):
    result = runner.invoke(app, ["prepare", name, *args, "--out", str(tmp_path / "o")])
    assert isinstance(result.exception, ConfigError)
    for needle in needles:
        assert needle in str(result.exception)
    assert not (tmp_path / "o").exists()


def test_synthetic_sizes_must_be_numbers(tmp_path):
    result = runner.invoke(
        app, ["prepare", "synthetic", "--num-items", "lots", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "--num-items" in result.output


def test_prepare_help_lists_the_custom_columns():
    result = runner.invoke(app, ["prepare", "--help"], terminal_width=100)
    assert result.exit_code == 0
    help_text = result.output
    for needle in (
        "--interactions FILE",
        "user (--user-col, default user_id)",
        "item (--item-col, default item_id)",
        "timestamp (--timestamp-col, optional",
        "rating (--rating-col, optional",
        "--items FILE",
        "title (--title-col, default title)",
        "--short-text-col",
        "--num-users",
        "--num-items",
    ):
        assert needle in help_text, needle


def test_synthetic(tmp_path):
    pytest.importorskip("recalign.data.synthetic")
    out = tmp_path / "shop"
    result = runner.invoke(
        app,
        [
            "prepare",
            "synthetic",
            "--num-users",
            "50",
            "--num-items",
            "40",
            "--seed",
            "1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    from recalign.data.store import load_prepared

    ds = load_prepared(out)
    assert ds.sequences.height <= 50 and ds.items.height <= 40


@pytest.mark.parametrize(
    ("name", "layouts"),
    [
        ("movielens-100k", "u.data + u.item or RecBole *.inter + *.item"),
        (
            "amazon2014-beauty",
            "sequences.txt + items.tsv (S3-Rec layout) or reviews_Beauty_5.json.gz",
        ),
    ],
)
def test_source_that_is_not_a_folder_lists_the_layouts(tmp_path, name, layouts):
    result = runner.invoke(
        app, ["prepare", name, "--source", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]
    )
    assert isinstance(result.exception, ConfigError)
    message = str(result.exception)
    assert layouts in message
    assert "or or" not in message
