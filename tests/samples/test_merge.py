"""Merging user shards, and generation in several processes, give the unsharded samples."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from recalign.cli.samples import app
from recalign.constants import SPLITS
from recalign.errors import ConfigError
from recalign.samples import generate_samples
from recalign.samples.merge import merge_samples

from .conftest import SEQUENCES


def read(out, name):
    return pl.read_parquet(out / f"{name}.parquet")


def shards(tiny, tmp_path, num_shards, **options):
    dirs = [tmp_path / f"s{i}" for i in range(num_shards)]
    for i, directory in enumerate(dirs):
        generate_samples(tiny, directory, seed=4, shard=i, num_shards=num_shards, **options)
    return dirs


def assert_same_samples(a, b):
    for name in (*SPLITS, "item_texts"):
        assert read(a, name).equals(read(b, name)), name
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    for key in ("users", "counts", "totals", "tasks", "config_hash", "shard"):
        assert ma[key] == mb[key], key
    assert ma["inputs"]["dataset"]["content_hash"] == mb["inputs"]["dataset"]["content_hash"]


def test_merged_shards_equal_the_unsharded_run(tiny, tmp_path):
    generate_samples(tiny, tmp_path / "full", seed=4)
    dirs = shards(tiny, tmp_path, 4)
    manifest = merge_samples(list(reversed(dirs)), tmp_path / "merged")  # any order
    assert manifest.users == len(SEQUENCES)
    assert manifest.merged_from == [str(d) for d in dirs]
    assert_same_samples(tmp_path / "merged", tmp_path / "full")


def test_merge_refuses_incomplete_or_foreign_shards(tiny, tmp_path):
    dirs = shards(tiny, tmp_path, 3)
    with pytest.raises(ConfigError, match=r"missing \[1\], repeated \[\]"):
        merge_samples([dirs[0], dirs[2]], tmp_path / "m1")
    with pytest.raises(ConfigError, match=r"missing \[2\], repeated \[0\]"):
        merge_samples([dirs[0], dirs[0], dirs[1]], tmp_path / "m2")
    generate_samples(tiny, tmp_path / "other", seed=5, shard=1, num_shards=3)
    with pytest.raises(ConfigError, match="differ in 'seed'"):
        merge_samples([dirs[0], tmp_path / "other", dirs[2]], tmp_path / "m3")
    generate_samples(tiny, tmp_path / "whole", seed=4)
    with pytest.raises(ConfigError, match="is not a samples shard"):
        merge_samples([tmp_path / "whole"], tmp_path / "m4")
    with pytest.raises(ConfigError, match="is one of the shards"):
        merge_samples(dirs, dirs[0])
    assert not (tmp_path / "m1").exists()  # refused before anything is written


def test_workers_give_the_single_process_samples(tiny, tmp_path):
    generate_samples(tiny.path, tmp_path / "one", seed=4, preset="paper")
    manifest = generate_samples(tiny.path, tmp_path / "two", seed=4, preset="paper", workers=2)
    assert manifest.workers == 2 and manifest.merged_from is None
    assert_same_samples(tmp_path / "two", tmp_path / "one")
    # Workers also split a shard's blocks (one user per block here: several in flight).
    generate_samples(tiny.path, tmp_path / "s1", seed=4, shard=1, num_shards=2)
    generate_samples(
        tiny.path, tmp_path / "s1w", seed=4, shard=1, num_shards=2, workers=2, chunk_users=1
    )
    assert_same_samples(tmp_path / "s1w", tmp_path / "s1")


def test_cli_merge_and_workers(tiny, tmp_path):
    runner = CliRunner()
    for i in range(2):
        out = str(tmp_path / f"s{i}")
        shard = ["--shard", str(i), "--num-shards", "2"]
        result = runner.invoke(app, ["generate", str(tiny.path), "--out", out, *shard])
        assert result.exit_code == 0, result.output
    merged = runner.invoke(
        app, ["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")]
    )
    assert merged.exit_code == 0, merged.output
    assert "train" in merged.output
    parallel = runner.invoke(
        app, ["generate", str(tiny.path), "--out", str(tmp_path / "p"), "--workers", "2"]
    )
    assert parallel.exit_code == 0, parallel.output
    assert_same_samples(tmp_path / "m", tmp_path / "p")


def test_a_failing_worker_fails_the_run_and_leaves_nothing(tiny_no_ratings, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="needs ratings"):
        generate_samples(tiny_no_ratings.path, out, config={"tasks": {"rating": {}}}, workers=2)
    assert not (out / "train.parquet").exists()


def test_a_failed_write_stops_the_workers(tiny, tmp_path, monkeypatch):
    import multiprocessing

    import pyarrow.parquet as pq

    from recalign.samples import generate

    def broken(self, table, row_group_size=None):
        raise OSError("disk full")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", broken)  # the parent writes
    monkeypatch.setattr(generate, "ROW_GROUP_ROWS", 1)  # fail while blocks are in flight
    with pytest.raises(OSError, match="disk full"):
        generate_samples(tiny.path, tmp_path / "o", workers=2, chunk_users=1)
    assert multiprocessing.active_children() == []
    assert not list((tmp_path / "o").glob("*.parquet*"))
