"""Sharded, deterministic generation of the sample splits.

Row order (canonical): users ascending, then tasks in `TASKS` order, then positions.
Shards are contiguous blocks of that user order, so concatenating shard 0..N-1 gives the
unsharded files row for row; every random draw is a counter-based draw keyed by (seed,
task, split, user) and the position (`samples.draws`), so which process or block handles
a user never matters. Users are processed in blocks (`samples.batch`), each written as
Parquet row groups: memory does not grow with the users.
"""

from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from recalign.artifacts import SamplesManifest, staged_output
from recalign.artifacts.dirs import ITEM_TEXTS_FILE, TEMPLATES_DIR
from recalign.constants import (
    ITEM_ID,
    ITEMS,
    MIN_SEQUENCE_LENGTH,
    RATINGS,
    SPLITS,
    TEXT,
    USER_ID,
)
from recalign.data.store import PreparedDataset, load_prepared
from recalign.errors import ConfigError, DataFormatError
from recalign.manifest import config_hash
from recalign.samples.batch import Batch
from recalign.samples.buffer import assemble
from recalign.samples.context import build_contexts, check_family
from recalign.samples.mixture import DEFAULT_PRESET, Mixture, MixtureConfig, resolve_mixture
from recalign.samples.representation import is_semantic
from recalign.samples.semantic import (
    SEMANTIC_CODEBOOK_FILE,
    SEMANTIC_IDS_FILE,
    catalogue_codes,
    catalogue_semantic_ids,
    write_codes,
)
from recalign.samples.tasks import TASK_INDEX, TASKS, TaskContext, TaskRows, load_templates
from recalign.samples.tasks.base import eval_cases, train_cases
from recalign.samples.templates import TemplateSet
from recalign.samples.writers import SplitWriters
from recalign.sharding import shard_users

logger = logging.getLogger(__name__)

__all__ = ["ITEM_TEXTS_FILE", "generate_samples", "shard_users"]
CHUNK_USERS = 512  # users per block: larger blocks amortise numpy calls, smaller use less memory
ROW_GROUP_ROWS = 8192  # a split's buffer is written once it holds this many rows


def _active_tasks(mixture: Mixture, dataset: PreparedDataset) -> tuple[dict[str, Any], dict]:
    tasks = dict(mixture.tasks)
    skipped: dict[str, str] = {}
    for name in list(tasks):
        if TASKS[name].needs_ratings and not dataset.has_ratings:
            message = f"dataset {dataset.name!r} has no ratings"
            if name in mixture.explicit:
                raise ConfigError(f"task {name!r} needs ratings, but {message}")
            logger.warning("skipping task %r: %s", name, message)
            skipped[name] = message
            del tasks[name]
    if not tasks:
        raise ConfigError("the mixture has no task left to generate")
    return tasks, skipped


def check_lengths(dataset: PreparedDataset) -> None:
    """Every user needs a train, a valid and a test item."""
    short = (
        dataset.scan_sequences()
        .filter(pl.col(ITEMS).list.len() < MIN_SEQUENCE_LENGTH)
        .select(USER_ID)
        .collect(engine="streaming")
        .get_column(USER_ID)
    )
    if short.len():
        raise DataFormatError(
            f"{short.len()} user(s) have fewer than {MIN_SEQUENCE_LENGTH} interactions, too few "
            f"for a train, a valid and a test item (e.g. users {short.head(5).to_list()}); "
            "prepare the dataset with `recalign data prepare`, which excludes them"
        )


def _user_batches(
    dataset: PreparedDataset, shard: int | None, num_shards: int | None, size: int
) -> tuple[int, Iterator[pl.DataFrame]]:
    """The shard's users in ascending user-id order, `size` users per batch.

    Prepared files are sorted by user, so a shard is a contiguous row range streamed
    from the file (memory flat in the users); other row orders are sorted in memory.
    """
    user_ids = dataset.scan_sequences().select(USER_ID).collect().get_column(USER_ID)
    rows = shard_users(user_ids.to_numpy(), shard, num_shards)
    start, stop = (int(rows[0]), int(rows[-1]) + 1) if len(rows) else (0, 0)
    columns = [USER_ID, ITEMS, *([RATINGS] if dataset.has_ratings else [])]
    if user_ids.is_sorted() and user_ids.n_unique() == user_ids.len():
        return len(rows), dataset.sequence_batches(start, stop, size, columns)
    ordered = dataset.sequences.select(columns).sort(USER_ID, maintain_order=True)
    return len(rows), (ordered.slice(i, min(size, stop - i)) for i in range(start, stop, size))


def _setup(
    dataset: PreparedDataset,
    preset: str,
    seed: int,
    config: str | Path | dict[str, Any] | MixtureConfig | None,
    family: str,
    item_repr: str | None,
    templates: TemplateSet | Sequence[str | Path] | None,
    max_history: int | None = None,
) -> tuple[Mixture, dict[str, Any], dict[str, TaskContext], dict[str, str], TemplateSet]:
    """The resolved mixture, every task's context, the tasks skipped (with why) and the
    template set."""
    check_family(family)
    if not 0 <= seed < 2**63:
        raise ConfigError(f"seed must be a non-negative 64-bit integer, got {seed}")
    if max_history is not None and max_history < 1:
        raise ConfigError(f"max_history must be at least 1, got {max_history}")
    mixture = resolve_mixture(preset, config)
    cfg = mixture.config
    overrides = {"item_repr": item_repr, "max_history": max_history}
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if overrides:
        cfg = cfg.model_copy(update=overrides)
        mixture.config = cfg
    if not isinstance(templates, TemplateSet):
        templates = load_templates([*cfg.templates, *(templates or [])])
    task_options, skipped = _active_tasks(mixture, dataset)
    codes = None
    if is_semantic(cfg.item_repr):
        codes = catalogue_codes(dataset.item_texts.tolist(), cfg.semantic)
    contexts = build_contexts(
        dataset,
        task_options,
        templates,
        item_repr=cfg.item_repr,
        id_seed=cfg.id_seed,
        negatives=cfg.negatives,
        max_history=cfg.max_history,
        family=family,
        separator=cfg.separator,
        codes=codes,
        # Cold-start items must not reach training at all, not even as negatives.
        exclude_items=dataset.cold_items,
    )
    return mixture, task_options, contexts, skipped, templates


def generate_samples(
    data: str | Path | PreparedDataset,
    out_dir: str | Path,
    preset: str = DEFAULT_PRESET,
    seed: int = 0,
    config: str | Path | dict[str, Any] | MixtureConfig | None = None,
    shard: int | None = None,
    num_shards: int | None = None,
    family: str = "seq2seq",
    *,
    item_repr: str | None = None,
    max_history: int | None = None,
    templates: TemplateSet | Sequence[str | Path] | None = None,
    chunk_users: int = CHUNK_USERS,
    compression: str = "zstd",
    on_progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> SamplesManifest:
    """Write `out_dir/{train,valid,test}.parquet` and `manifest.json`; returns the manifest.

    `item_repr` and `max_history` override the mixture config's. `workers > 1`
    generates the blocks of users in that many processes while this one writes them:
    the same files as one process (every draw is keyed by its user).
    """
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    dataset = data if isinstance(data, PreparedDataset) else load_prepared(data)
    setup = {
        "preset": preset,
        "seed": seed,
        "config": config,
        "family": family,
        "item_repr": item_repr,
        "max_history": max_history,
        "templates": templates,
    }
    if workers > 1:
        _check_parallel(dataset, templates)
    mixture, _, contexts, skipped, template_set = _setup(dataset, **setup)
    cfg = mixture.config
    check_lengths(dataset)
    num_users, batches = _user_batches(dataset, shard, num_shards, chunk_users)
    plan = [(TASK_INDEX[name], TASKS[name], contexts[name]) for name in contexts]
    num_items = len(next(iter(contexts.values())).reprs) - 1
    if workers > 1:
        blocks = _in_workers(batches, workers, (dataset.path, setup))
    else:
        blocks = (_block_tables(Batch.from_frame(f, num_items), plan, seed) for f in batches)

    out = Path(out_dir)
    with staged_output(out, SamplesManifest) as staging:
        counts = _write_splits(staging.path, blocks, compression, on_progress)
        reprs = next(iter(contexts.values())).reprs  # shared by every task
        pl.DataFrame({ITEM_ID: np.arange(1, len(reprs)), TEXT: reprs[1:]}).write_parquet(
            staging.path / ITEM_TEXTS_FILE
        )
        if is_semantic(cfg.item_repr):
            # The codes again (a cache hit): evaluation and serving read them from here;
            # their settings are in `config` (the mixture's `semantic` block), and the
            # codebook gives items added later their codes.
            semantic_ids = catalogue_semantic_ids(dataset.item_texts.tolist(), cfg.semantic)
            write_codes(staging.path / SEMANTIC_IDS_FILE, ["", *semantic_ids.strings()])
            semantic_ids.codebook.save(staging.path / SEMANTIC_CODEBOOK_FILE)
        resolved = mixture.to_dict()
        resolved["tasks"] = {k: v for k, v in resolved["tasks"].items() if k in contexts}
        domain = dataset.domain.to_dict()
        manifest = staging.commit(
            SamplesManifest(
                dataset=dataset.name,
                inputs=_dataset_input(dataset, out),
                preset=str(cfg.preset),
                seed=seed,
                family=family,
                item_repr=cfg.item_repr,
                id_seed=cfg.id_seed,
                max_history=cfg.max_history,
                separator=cfg.separator,
                templates=copy_template_files(template_set, staging.path / TEMPLATES_DIR),
                template_versions={
                    name: {t.id: t.version for t in contexts[name].templates} for name in contexts
                },
                domain=domain,
                shard=shard,
                num_shards=num_shards,
                users=num_users,
                workers=workers,
                tasks=list(contexts),
                skipped=skipped,
                counts={split: dict(counts[split]) for split in SPLITS},
                totals={split: sum(counts[split].values()) for split in SPLITS},
                config=resolved,
                config_hash=config_hash(
                    {**resolved, "seed": seed, "family": family, "domain": domain}
                ),
            )
        )
    logger.info("wrote %s: %s", out, manifest.totals)
    return manifest


def _dataset_input(dataset: PreparedDataset, out: Path) -> dict[str, Any]:
    """The samples' input record of their dataset (none for a dataset only in memory)."""
    record = dataset.record_for(out)
    return {} if record is None else {"dataset": record}


def copy_template_files(templates: TemplateSet, folder: Path) -> list[str]:
    """Copy the user's template files a set holds (not the shipped ones) into `folder`;
    their names relative to its parent, in the order they were applied."""
    import shutil

    from recalign.samples.templates import default_template_files

    shipped = {str(path) for path in default_template_files()}
    sources: list[str] = []
    for template in templates.all():
        if template.source not in shipped and template.source not in sources:
            sources.append(template.source)
    copied = []
    for index, source in enumerate(sources):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(
                f"templates from {source or 'memory'} have no file to record with the "
                "samples: load them from a file"
            )
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{index}-{path.name}"
        shutil.copyfile(path, target)
        copied.append(f"{folder.name}/{target.name}")
    return copied


def _write_splits(
    out: Path, blocks: Iterator, compression: str, on_progress: Callable[[int], None] | None
) -> dict[str, Counter[str]]:
    """Write the blocks' tables into the split files; the samples per task and split."""
    counts: dict[str, Counter[str]] = {split: Counter() for split in SPLITS}
    pending: dict[str, list[pa.Table]] = {split: [] for split in SPLITS}
    writers = SplitWriters(out, compression)
    ok = False
    # Samples are bytes in lists: the cyclic collector would rescan them for nothing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        # Closed on any exit: a failed run stops its worker processes at once.
        with closing(blocks):
            for users, tables in blocks:
                for split, (table, block_counts) in tables.items():
                    counts[split].update(block_counts)
                    pending[split].append(table)
                    if sum(t.num_rows for t in pending[split]) >= ROW_GROUP_ROWS:
                        writers.write(split, pa.concat_tables(pending[split]))
                        pending[split] = []
                if on_progress is not None:
                    on_progress(users)
        for split, tables in pending.items():
            if tables:
                writers.write(split, pa.concat_tables(tables))
        ok = True
    finally:
        writers.close(ok)
        if gc_was_enabled:
            gc.enable()
    return counts


def _check_parallel(dataset: PreparedDataset, templates: Any) -> None:
    if isinstance(templates, TemplateSet):
        raise ConfigError("with workers > 1, give templates as files, not a loaded TemplateSet")
    if dataset.path is None or dataset.frame is not None:
        raise ConfigError("workers > 1 reads the dataset from its directory: pass its path")


_WORKER: dict[str, Any] = {}  # a worker process's setup (its copy of the contexts)


def _init_worker(path: Path, setup: dict[str, Any]) -> None:
    logging.getLogger("recalign.samples").setLevel(logging.ERROR)  # the parent warns once
    _, _, contexts, _, _ = _setup(load_prepared(path), **setup)
    _WORKER["plan"] = [(TASK_INDEX[name], TASKS[name], contexts[name]) for name in contexts]
    _WORKER["num_items"] = len(next(iter(contexts.values())).reprs) - 1
    _WORKER["seed"] = setup["seed"]


def _worker_block(frame: pl.DataFrame) -> tuple[int, dict]:
    batch = Batch.from_frame(frame, _WORKER["num_items"])
    return _block_tables(batch, _WORKER["plan"], _WORKER["seed"])


def _in_workers(
    frames: Iterator[pl.DataFrame], workers: int, init: tuple
) -> Iterator[tuple[int, dict]]:
    """`_block_tables` of each block, computed in worker processes, yielded in order.

    Processes are spawned (no forked thread pools). At most two blocks per worker are in
    flight, so memory stays flat however many blocks there are.
    """
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    context = get_context("spawn")
    with ProcessPoolExecutor(workers, context, initializer=_init_worker, initargs=init) as pool:
        pending: deque = deque()
        try:
            for frame in frames:
                pending.append(pool.submit(_worker_block, frame))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:
            for future in pending:  # a failed block (or writer): start nothing more
                future.cancel()
            raise


def _block_tables(batch: Batch, plan: list, seed: int) -> tuple[int, dict]:
    """(users, {split: (table, samples per task)}) of one block of users."""
    tables = {}
    for split, parts in _generate_batch(batch, plan, seed).items():
        block_counts = Counter({part.task: len(part.cases) for part in parts})
        tables[split] = (assemble(parts, TASK_INDEX, batch.user_ids), block_counts)
    return len(batch), tables


def _generate_batch(batch: Batch, plan: list, seed: int) -> dict[str, list[TaskRows]]:
    """Every task's train rows and the rec tasks' valid and test rows of a block of users."""
    parts: dict[str, list[TaskRows]] = {split: [] for split in SPLITS}
    for index, spec, ctx in plan:
        parts["train"].append(spec.build(batch, train_cases(batch, ctx, seed, index), ctx))
        if spec.kind == "rec":
            for split in ("valid", "test"):
                parts[split].append(spec.build(batch, eval_cases(batch, split, seed, index), ctx))
    return parts
