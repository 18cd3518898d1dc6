"""Artefact directories for tests: changed by hand on purpose, or made without the stage.

`fake_samples` and `fake_run` write what `recalign samples generate` and `recalign
train` would record (a samples directory without samples, a run holding a given
random-init model), through the artefact writers, so readers verify them like real ones.
"""

from __future__ import annotations

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
) -> Path:
    """A samples directory of `data_dir` without samples: its manifest and catalogue
    (`counts`: the training samples per task it says it holds)."""
    from recalign.data import load_prepared
    from recalign.samples.buffer import SCHEMA
    from recalign.samples.representation import item_representations

    dataset = load_prepared(data_dir)
    out = Path(out)
    with staged_output(out, SamplesManifest) as staging:
        for split in SPLITS:
            pq.write_table(SCHEMA.empty_table(), staging.path / f"{split}.parquet")
        reprs = item_representations(dataset.item_texts, item_repr, seed=id_seed)
        ids = dataset.items.get_column("item_id").to_list()
        pl.DataFrame({"item_id": ids, "text": [reprs[i] for i in ids]}).write_parquet(
            staging.path / "item_texts.parquet"
        )
        staging.commit(
            SamplesManifest(
                dataset=dataset.name,
                inputs={"dataset": dataset.record_for(out)},
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
                counts={split: dict(counts or {}) if split == "train" else {} for split in SPLITS},
                totals={
                    split: sum((counts or {}).values()) if split == "train" else 0
                    for split in SPLITS
                },
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


def fake_pipeline(root: str | Path, name: str = "fixture", **fields: Any) -> Path:
    """The manifest of a `recalign run` directory (`fields`: its config, stages)."""
    seal(root, PipelineManifest(name=name, **fields))
    return Path(root)
