"""Test data, written the way the stages write it: the one place every test package
builds its data from.

- prepared datasets (`write_dataset`): sequences and item texts through `write_prepared`;
- source files in the exact formats the readers accept (`write_s3rec`, `write_raw_amazon`,
  `write_ml100k`, `write_ml1m`, `write_recbole`);
- artefact directories made without their stage, through the artefact writers so that
  readers verify them like real ones: `fake_samples` and `fake_run` (what `recalign
  samples generate` and `recalign train` would record: a samples directory holding
  given rows or none, a run holding a given model), `tiny_llm_run` (such a run with a tiny
  random-init model), `fake_pipeline` (a `recalign run` manifest), and `reseal` (a
  directory changed by hand on purpose, recorded as it now is).

The conftests keep what is particular to their tests (the sequences, the texts, the
sizes); how such data becomes files is here.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from recalign.artifacts import (
    PipelineManifest,
    PromptRecord,
    RunManifest,
    SamplesDir,
    SamplesManifest,
    read_manifest,
    seal,
    staged_output,
)
from recalign.constants import SPLITS
from recalign.data.store import DatasetRecord, PreparedDataset, write_prepared
from tests.tiny import TINY_OVERRIDES


# --- prepared datasets -------------------------------------------------------------------
def write_dataset(
    out: Path,
    sequences: Sequence[Sequence[int]],
    texts: Sequence[str],
    *,
    ratings: Sequence[Sequence[float]] | None = None,
    name: str = "fixture",
    source_prefix: str = "S",
    source_start: int = 1,
    item_columns: dict[str, list] | None = None,
    **record: Any,
) -> PreparedDataset:
    """A prepared dataset: user i + 1 has `sequences[i]` (and `ratings[i]`), item j + 1 the
    text `texts[j]` and the source id `f"{source_prefix}{j + source_start}"`, plus any
    `item_columns`. `record`: what its manifest records (`DatasetRecord`'s fields, e.g.
    `domain`)."""
    frame: dict[str, Any] = {
        "user_id": list(range(1, len(sequences) + 1)),
        "items": [list(s) for s in sequences],
    }
    schema: dict[str, Any] = {"user_id": pl.Int64, "items": pl.List(pl.Int64)}
    if ratings is not None:
        frame["ratings"] = [[float(r) for r in row] for row in ratings]
        schema["ratings"] = pl.List(pl.Float64)
    items = pl.DataFrame(
        {
            "item_id": list(range(1, len(texts) + 1)),
            "source_id": [f"{source_prefix}{j + source_start}" for j in range(len(texts))],
            "text": list(texts),
            **(item_columns or {}),
        }
    )
    sequences = pl.DataFrame(frame, schema=schema)
    return write_prepared(out, name, sequences, items, DatasetRecord(**record))


# --- source files, in the formats the readers accept -------------------------------------
def write_s3rec(directory: Path, sequences: dict[int, list[int]], items: list[tuple]) -> Path:
    """`sequences.txt` (`user item ...`) and `items.tsv` (item_id asin title short_text attributes)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [" ".join(str(v) for v in [user, *seq]) for user, seq in sequences.items()]
    (directory / "sequences.txt").write_text("\n".join(lines) + "\n")
    rows = ["item_id\tasin\ttitle\tshort_text\tattributes"]
    rows += ["\t".join(str(v) for v in row) for row in items]
    (directory / "items.tsv").write_text("\n".join(rows) + "\n")
    return directory


def write_raw_amazon(
    directory: Path, reviews: list[dict], meta: list[dict], category: str = "Beauty"
) -> Path:
    """McAuley raw files: gzip JSON lines (reviews), gzip Python-literal dicts (meta)."""
    directory.mkdir(parents=True, exist_ok=True)
    with gzip.open(directory / f"reviews_{category}_5.json.gz", "wt") as handle:
        for record in reviews:
            handle.write(json.dumps(record) + "\n")
    with gzip.open(directory / f"meta_{category}.json.gz", "wt") as handle:
        for record in meta:
            handle.write(repr(record) + "\n")  # Python literal, single quotes: not JSON
    return directory


def review(user: str, asin: str, time: int, rating: float = 5.0) -> dict:
    return {
        "reviewerID": user,
        "asin": asin,
        "reviewerName": "someone",
        "helpful": [0, 0],
        "reviewText": "fine",
        "overall": rating,
        "summary": "ok",
        "unixReviewTime": time,
        "reviewTime": "01 1, 2014",
    }


def write_ml100k(directory: Path, ratings: list[tuple], movies: list[tuple[int, str]]) -> Path:
    """`u.data` (tab) and `u.item` (`|`, latin-1, 24 fields)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "u.data").write_text("\n".join("\t".join(map(str, r)) for r in ratings) + "\n")
    rows = []
    for movie_id, title in movies:
        flags = ["0"] * 19
        flags[8] = "1"  # Drama
        rows.append("|".join([str(movie_id), title, "01-Jan-1995", "", "http://x", *flags]))
    (directory / "u.item").write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    return directory


def write_ml1m(directory: Path, ratings: list[tuple], movies: list[tuple[int, str, str]]) -> Path:
    """`ratings.dat` and `movies.dat`, `::`-separated, latin-1."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ratings.dat").write_text(
        "\n".join("::".join(map(str, r)) for r in ratings) + "\n"
    )
    text = "\n".join("::".join(map(str, m)) for m in movies) + "\n"
    (directory / "movies.dat").write_bytes(text.encode("latin-1"))
    return directory


def write_recbole(
    directory: Path, ratings: list[tuple], movies: list[tuple[int, str, str, str]], name="ml"
) -> Path:
    """RecBole atomic files with typed headers."""
    directory.mkdir(parents=True, exist_ok=True)
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    inter += ["\t".join(map(str, r)) for r in ratings]
    (directory / f"{name}.inter").write_text("\n".join(inter) + "\n")
    item = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    item += ["\t".join(map(str, m)) for m in movies]
    (directory / f"{name}.item").write_text("\n".join(item) + "\n")
    return directory


# --- artefact directories, made without their stage -------------------------------------
def reseal(directory: str | Path, **changes: Any) -> Path:
    """Record the directory's files as they are now (and `changes` to its manifest)."""
    manifest = read_manifest(directory)
    changed = type(manifest).model_validate({**manifest.model_dump(), **changes})
    seal(directory, changed)
    return Path(directory)


def fake_samples(
    data_dir: str | Path,
    out: str | Path,
    *,
    item_repr: str = "title",
    max_history: int = 20,
    id_seed: int = 0,
    separator: str = "; ",
    tasks: tuple[str, ...] = ("retrieval", "ranking", "rating"),
    preset: str = "rec-only",
    family: str = "seq2seq",
    counts: dict[str, int] | None = None,
    splits: dict[str, pl.DataFrame] | None = None,
    data_hash: str | None = None,
) -> Path:
    """A samples directory of `data_dir`: its manifest and catalogue, and no samples
    (`counts`: the training samples per task it says it holds), or the rows of `splits`
    (split -> samples frame; those it lacks are empty). `data_hash`: record a dataset of
    that content hash as its input instead (a samples directory of another dataset)."""
    from recalign.data import load_prepared
    from recalign.samples.buffer import SCHEMA
    from recalign.samples.representation import item_representations

    dataset = load_prepared(data_dir)
    out = Path(out)
    counted = {split: dict(counts or {}) if split == "train" else {} for split in SPLITS}
    with staged_output(out, SamplesManifest) as staging:
        for split in SPLITS:
            path = staging.path / f"{split}.parquet"
            if splits is not None and split in splits:
                splits[split].write_parquet(path)
                tasks_of = splits[split].group_by("task").len().iter_rows()
                counted[split] = {task: n for task, n in sorted(tasks_of)}
            else:
                pq.write_table(SCHEMA.empty_table(), path)
        reprs = item_representations(dataset.item_texts, item_repr, seed=id_seed)
        ids = dataset.items.get_column("item_id").to_list()
        pl.DataFrame({"item_id": ids, "text": [reprs[i] for i in ids]}).write_parquet(
            staging.path / "item_texts.parquet"
        )
        record = dataset.record_for(out)
        if data_hash is not None:
            record = record.model_copy(update={"content_hash": data_hash})
        staging.commit(
            SamplesManifest(
                dataset=dataset.name,
                inputs={"dataset": record},
                preset=preset,
                seed=0,
                family=family,
                item_repr=item_repr,
                id_seed=id_seed,
                max_history=max_history,
                separator=separator,
                users=dataset.num_users,
                # As the samples stage does: no rating task without ratings.
                tasks=[t for t in tasks if t != "rating" or dataset.has_ratings],
                counts=counted,
                totals={split: sum(counted[split].values()) for split in SPLITS},
            )
        )
    return out


def fake_run(
    run_dir: str | Path,
    data_dir: str | Path,
    samples_dir: str | Path,
    loaded: Any,
    *,
    model: dict[str, Any] | None = None,
    max_source_length: int = 256,
    status: str = "done",
    **fields: Any,
) -> Path:
    """A finished training run holding `loaded` (a `LoadedModel`) as its best model."""
    from recalign.data import load_prepared

    run_dir = Path(run_dir)
    loaded.model.save_pretrained(run_dir / "model")
    loaded.tokenizer.save_pretrained(run_dir / "model")
    samples = SamplesDir.open(samples_dir)
    m = samples.manifest
    seal(
        run_dir,
        RunManifest(
            model=model or dict(loaded.spec),
            family=loaded.family,
            inputs={
                "samples": samples.record_for(run_dir),
                "dataset": load_prepared(data_dir).record_for(run_dir),
            },
            prompt=PromptRecord(
                item_repr=m.item_repr,
                max_history=m.max_history,
                id_seed=m.id_seed,
                separator=m.separator,
                tasks=list(m.tasks),
                preset=m.preset,
                max_source_length=max_source_length,
            ),
            status=status,
            **fields,
        ),
    )
    return run_dir


def tiny_llm_run(
    run_dir: Path,
    data_dir: Path,
    family: str = "seq2seq",
    *,
    samples_dir: Path | None = None,
    seed: int = 0,
    **prompt: Any,
) -> Path:
    """A run directory holding a tiny random-init model (seeded by `seed`; no training),
    made from samples without samples (their catalogue and prompt settings, `prompt`)
    written to `samples_dir`, else `RUN-samples`."""
    import torch

    from recalign.data import load_prepared
    from recalign.models.loading import build_tiny

    torch.manual_seed(seed)
    dataset = load_prepared(data_dir)
    preset = "tiny-t5" if family == "seq2seq" else "tiny-causal"
    overrides = TINY_OVERRIDES[family]
    loaded = build_tiny(preset, dataset=dataset, vocab_size=300, overrides=overrides)
    samples = samples_dir or run_dir.parent / f"{run_dir.name}-samples"
    fake_samples(data_dir, samples, family=family, **prompt)
    return fake_run(run_dir, data_dir, samples, loaded, model={"source": preset, "preset": preset})


def bare_run(
    run_dir: str | Path, *, family: str = "seq2seq", max_source_length: int = 64, **fields: Any
) -> Path:
    """A training run's manifest alone (title prompts, the retrieval task), for code that
    reads or refuses a run before it loads any weights; `fields` go to the manifest."""
    prompt = PromptRecord(
        item_repr="title",
        max_history=20,
        id_seed=0,
        separator="; ",
        tasks=["retrieval"],
        max_source_length=max_source_length,
    )
    seal(run_dir, RunManifest(model={"source": "tiny-t5"}, family=family, prompt=prompt, **fields))
    return Path(run_dir)


def fake_pipeline(root: str | Path, name: str = "fixture", **fields: Any) -> Path:
    """The manifest of a `recalign run` directory (`fields`: its config, stages)."""
    seal(root, PipelineManifest(name=name, **fields))
    return Path(root)
