"""Generation: the output contract, determinism, sharding, the mixture and bad input."""

from __future__ import annotations

import polars as pl
import pyarrow.parquet as pq
import pytest

from recalign.constants import SPLITS
from recalign.data.store import load_prepared
from recalign.errors import ConfigError, DataFormatError
from recalign.samples import generate_samples
from recalign.samples.mixture import resolve_mixture

from .conftest import SEQUENCES, make_dataset


def read(out, split):
    return pl.read_parquet(out / f"{split}.parquet")


def test_output_contract(tiny, tmp_path):
    manifest = generate_samples(tiny, tmp_path / "o", seed=1)
    schema = pq.read_schema(tmp_path / "o" / "train.parquet")
    assert schema.names[:7] == [
        "task",
        "template",
        "user_id",
        "input",
        "target",
        "target_item",
        "candidates",
    ]
    assert str(schema.field("target_item").type) == "int64"
    assert manifest.data_hash == tiny.data_hash
    assert manifest.preset == "paper" and manifest.seed == 1
    assert manifest.family == "seq2seq" and manifest.item_repr == "title"
    assert manifest.template_versions["retrieval"]["retrieval-1"] == 2
    assert manifest.domain["items"] == "items"  # the fixture is custom data: neutral
    for split in SPLITS:
        frame = read(tmp_path / "o", split)
        counts = dict(frame.group_by("task").len().iter_rows())
        assert counts == manifest.counts[split]
        # Canonical order: users ascending, then tasks in registry order.
        assert frame["user_id"].is_sorted()
    valid = read(tmp_path / "o", "valid")
    assert set(valid["task"]) == {"retrieval", "ranking", "rating"}
    assert valid.height == 3 * len(SEQUENCES)
    assert valid.filter(pl.col("task") == "retrieval")["target_item"].to_list() == [
        s[-2] for s in SEQUENCES
    ]


def test_same_seed_gives_identical_files(tiny, tmp_path):
    generate_samples(tiny, tmp_path / "a", seed=7)
    generate_samples(tiny, tmp_path / "b", seed=7)
    generate_samples(tiny, tmp_path / "c", seed=8)
    for split in SPLITS:
        a = (tmp_path / "a" / f"{split}.parquet").read_bytes()
        assert a == (tmp_path / "b" / f"{split}.parquet").read_bytes()
    assert not read(tmp_path / "a", "train").equals(read(tmp_path / "c", "train"))


def test_streamed_and_in_memory_sequences_give_identical_files(tiny, tmp_path):
    import dataclasses

    streamed = load_prepared(tiny.path)
    generate_samples(streamed, tmp_path / "file", seed=3, chunk_users=2)
    assert "sequences" not in streamed.__dict__  # never read whole
    again = load_prepared(tiny.path)
    in_memory = dataclasses.replace(again, frame=again.sequences)
    generate_samples(in_memory, tmp_path / "memory", seed=3, chunk_users=2)
    for split in SPLITS:
        a = (tmp_path / "file" / f"{split}.parquet").read_bytes()
        assert a == (tmp_path / "memory" / f"{split}.parquet").read_bytes()


@pytest.mark.parametrize("num_shards", [2, 3, 6])
def test_shard_union_equals_unsharded(tiny, tmp_path, num_shards):
    generate_samples(tiny, tmp_path / "full", seed=5, chunk_users=2)
    for shard in range(num_shards):
        m = generate_samples(
            tiny, tmp_path / f"s{shard}", seed=5, shard=shard, num_shards=num_shards
        )
        assert m.shard == shard and m.num_shards == num_shards
    for split in SPLITS:
        union = pl.concat([read(tmp_path / f"s{i}", split) for i in range(num_shards)])
        assert union.equals(read(tmp_path / "full", split))


def test_adding_a_task_keeps_the_others(tiny, tmp_path):
    generate_samples(tiny, tmp_path / "a", preset="rec-only")
    generate_samples(tiny, tmp_path / "b", preset="paper")
    a = read(tmp_path / "a", "train")
    b = read(tmp_path / "b", "train").filter(
        pl.col("task").is_in(["retrieval", "ranking", "rating"])
    )
    assert a.equals(b)


@pytest.mark.parametrize(
    ("preset", "tasks"),
    [
        ("rec-only", {"retrieval", "ranking", "rating"}),
        ("rec+mim", {"retrieval", "ranking", "rating", "mim"}),
        ("rec+bpr", {"retrieval", "ranking", "rating", "bpr"}),
        ("rec+mlm", {"retrieval", "ranking", "rating", "mlm"}),
    ],
)
def test_presets(tiny, tmp_path, preset, tasks):
    manifest = generate_samples(tiny, tmp_path / "o", preset=preset)
    assert set(manifest.counts["train"]) == tasks


def test_config_ratio_count_and_cap(tiny, tmp_path):
    config = {
        "preset": "rec-only",
        "tasks": {"ranking": {"num_candidates": 5, "max_per_user": 1}, "rating": {"ratio": 0}},
    }
    manifest = generate_samples(tiny, tmp_path / "o", config=config)
    assert set(manifest.counts["train"]) == {"retrieval", "ranking"}
    train = read(tmp_path / "o", "train")
    ranking = train.filter(pl.col("task") == "ranking")
    assert ranking.group_by("user_id").len()["len"].max() == 1
    assert ranking["candidates"].list.len().unique().to_list() == [5]
    # count: about that many samples of the natural positions, by a seeded thinning.
    total = sum(max(len(s) - 3, 0) for s in SEQUENCES)
    manifest = generate_samples(
        tiny, tmp_path / "p", config={"tasks": {"retrieval": {"count": total}}}
    )
    assert manifest.counts["train"]["retrieval"] == total


def test_config_file_and_key_errors(tmp_path):
    path = tmp_path / "mix.yaml"
    path.write_text("preset: rec-only\ntasks:\n  ranking:\n    num_candidates: many\n")
    with pytest.raises(ConfigError, match=r"mix.yaml: tasks\.ranking\.num_candidates"):
        resolve_mixture(config=path)
    path.write_text("max_histroy: 5\n")
    with pytest.raises(ConfigError, match="max_histroy"):
        resolve_mixture(config=path)
    path.write_text("tasks:\n  ranking:\n    num_negatives: 5\n")
    with pytest.raises(ConfigError, match=r"tasks\.ranking\.num_negatives"):
        resolve_mixture(config=path)
    path.write_text("tasks:\n  sequential: {}\n")
    with pytest.raises(ConfigError, match=r"tasks\.sequential: unknown task"):
        resolve_mixture(config=path)


def test_unknown_preset_and_preset_with_unknown_task():
    with pytest.raises(ConfigError, match="unknown preset 'all'"):
        resolve_mixture("all")
    with pytest.raises(ConfigError, match=r"preset 'mine' names unknown task\(s\) \['sasrec'\]"):
        resolve_mixture("mine", presets={"mine": ("retrieval", "sasrec")})


def test_rating_is_skipped_from_a_preset_without_ratings(tiny_no_ratings, tmp_path, caplog):
    manifest = generate_samples(tiny_no_ratings, tmp_path / "o", preset="paper")
    assert "rating" not in manifest.counts["train"]
    assert "no ratings" in manifest.skipped["rating"]
    assert "skipping task 'rating'" in caplog.text


def test_rating_requested_explicitly_without_ratings_is_an_error(tiny_no_ratings, tmp_path):
    with pytest.raises(ConfigError, match="task 'rating' needs ratings"):
        generate_samples(tiny_no_ratings, tmp_path / "o", config={"tasks": {"rating": {}}})


def test_num_candidates_larger_than_the_catalogue(tiny, tmp_path):
    with pytest.raises(ConfigError, match="larger than the catalogue"):
        generate_samples(
            tiny, tmp_path / "o", config={"tasks": {"ranking": {"num_candidates": 41}}}
        )


def test_too_few_unseen_items_for_a_user(tmp_path):
    dataset = make_dataset(tmp_path / "d", [[1, 2, 3, 4, 5], [6, 7, 8]], 8)
    # User 1 has 5 of the 8 items: 3 unseen ones, one short of 4 negatives.
    with pytest.raises(ConfigError, match="cannot sample 4 distinct negative"):
        generate_samples(
            dataset, tmp_path / "o", config={"tasks": {"ranking": {"num_candidates": 5}}}
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shard": 3, "num_shards": 3}, "out of range"),
        ({"shard": 0}, "both --shard and --num-shards"),
        ({"family": "encoder"}, "unknown model family"),
        ({"item_repr": "sku"}, "unknown item representation"),
    ],
)
def test_bad_arguments(tiny, tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        generate_samples(tiny, tmp_path / "o", **kwargs)


@pytest.mark.parametrize("negatives", ["uniform", "popularity"])
def test_too_short_sequences_are_reported(tiny, tmp_path, negatives):
    import dataclasses

    short = dataclasses.replace(
        tiny, frame=pl.DataFrame({"user_id": [1, 2], "items": [[1, 2, 3], [4, 5]]})
    )
    with pytest.raises(DataFormatError, match=r"1 user\(s\) have fewer than 3 interactions"):
        generate_samples(short, tmp_path / "o", config={"negatives": negatives})


def test_a_failed_write_raises_and_leaves_no_files(tiny, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    def broken(self, table, row_group_size=None):
        raise OSError("disk full")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        generate_samples(tiny, tmp_path / "o", seed=1, chunk_users=2)
    assert not list((tmp_path / "o").glob("*.parquet*"))


def test_unsorted_sequences_shard_into_disjoint_users(tmp_path):
    import dataclasses

    dataset = make_dataset(tmp_path / "d", SEQUENCES, 40)
    reversed_order = dataclasses.replace(dataset, frame=dataset.sequences.reverse())
    users = []
    for shard in range(2):
        out = tmp_path / f"s{shard}"
        generate_samples(reversed_order, out, seed=2, shard=shard, num_shards=2, chunk_users=2)
        users.append(read(out, "test")["user_id"].unique().sort().to_list())
    assert users == [[1, 2, 3], [4, 5, 6]]


def test_texts_over_the_array_limit_are_split_into_chunks(tiny, tmp_path, monkeypatch):
    from recalign.samples.tasks import base

    generate_samples(tiny, tmp_path / "one", seed=6)
    monkeypatch.setattr(base, "MAX_ARRAY_BYTES", 2_000)  # a few prompts per chunk
    generate_samples(tiny, tmp_path / "chunked", seed=6)
    for split in SPLITS:
        assert read(tmp_path / "chunked", split).equals(read(tmp_path / "one", split))
    table = pq.read_table(tmp_path / "chunked" / "train.parquet")
    assert table.schema.field("input").type == "string"


def test_an_empty_template_list_is_a_config_error(tiny, tmp_path):
    with pytest.raises(ConfigError, match=r"tasks\.retrieval\.templates"):
        generate_samples(tiny, tmp_path / "o", config={"tasks": {"retrieval": {"templates": []}}})
