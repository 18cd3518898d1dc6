"""Evaluation samples for the evaluator and one-off prompts for serving.

`build_eval_samples` renders the valid or test case of each user with one fixed template
(`default`: the first training template; `unseen`: the held-out one). Its candidates are
those of `generate_samples` for the same seed: the task draws content before the template.
`build_prompt` renders one prompt for serving through the same renderer, with the same
history bounds, so a served prompt is fitted to the model's budget like an evaluated one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa

from recalign.constants import (
    CANDIDATES,
    HISTORY,
    HISTORY_BOUNDS,
    INPUT,
    ITEMS,
    RATINGS,
    TARGET,
    TARGET_ITEM,
    TEMPLATE,
    USER_ID,
)
from recalign.data.domain import NEUTRAL, Domain
from recalign.data.store import PreparedDataset
from recalign.errors import ConfigError
from recalign.samples.batch import Batch, Joined, Ragged, ranges
from recalign.samples.buffer import list_array
from recalign.samples.context import build_contexts, default_options
from recalign.samples.generate import check_lengths
from recalign.samples.mixture import DEFAULTS
from recalign.samples.tasks import REC_TASKS, TASK_INDEX, TASKS, load_templates
from recalign.samples.tasks.base import (
    NULL_ITEM,
    eval_cases,
    format_rating,
    join_texts,
    render,
    whole_history,
)
from recalign.samples.tasks.rating import RATED
from recalign.samples.templates import TemplateSet

FULL_HISTORY = "full_history"  # every item before the target (the prompt may cut it)
ITEM = "item"  # rating rows: the item being rated
EVAL_TASKS = ("retrieval", "ranking", "rating")


def _select_users(
    user_ids: np.ndarray, users: Sequence[int] | None, max_users: int | None, seed: int
) -> np.ndarray:
    """Row indices of the chosen users, in ascending user order."""
    rows = np.arange(len(user_ids))
    if users is not None:
        wanted = np.asarray(list(users), dtype=np.int64)
        missing = np.setdiff1d(wanted, user_ids)
        if len(missing):
            raise ConfigError(f"unknown user id(s) {missing[:5].tolist()} (not in the dataset)")
        rows = rows[np.isin(user_ids, wanted)]
    if max_users is not None and max_users < len(rows):
        # A seeded subset, so two evaluations of the same seed score the same users.
        rng = np.random.default_rng([seed, 0x5E1EC7])
        rows = np.sort(rng.choice(rows, size=max_users, replace=False))
    return rows[np.argsort(user_ids[rows], kind="stable")]


def build_eval_samples(
    dataset: PreparedDataset,
    task: str,
    split: str = "test",
    *,
    template: str = "default",
    users: Sequence[int] | None = None,
    max_users: int | None = None,
    num_candidates: int | None = None,
    item_repr: str = DEFAULTS.item_repr,
    max_history: int = DEFAULTS.max_history,
    seed: int = 0,
    templates: TemplateSet | None = None,
    id_seed: int = DEFAULTS.id_seed,
    negatives: str = DEFAULTS.negatives,
    codes: list[str] | None = None,
) -> pl.DataFrame:
    """One row per user: `user_id, template, input, target, target_item, candidates, history`.

    `history` holds the item ids in the prompt (the last `max_history`), `full_history`
    every item before the target: `valid` -> the train part, `test` -> train + valid;
    `history_bounds` where the history items lie in `input` (for `fit_prompts`).
    Rating rows have `target_item` null (the target is a rating) and the rated item in
    `item`. `candidates` is null except for ranking.
    """
    if task not in EVAL_TASKS:
        raise ConfigError(f"evaluation task must be one of {EVAL_TASKS}, got {task!r}")
    if split not in ("valid", "test"):
        raise ConfigError(f"split must be 'valid' or 'test', got {split!r}")
    if TASKS[task].needs_ratings and not dataset.has_ratings:
        raise ConfigError(f"task {task!r} needs ratings, but dataset {dataset.name!r} has none")
    templates = templates or load_templates()
    chosen = templates.resolve(task, template)
    # None: the ranking task's own default (K of the generated ranking samples).
    given = task == "ranking" and num_candidates is not None
    overrides = {"num_candidates": num_candidates} if given else {}
    ctx = build_contexts(
        dataset,
        {task: default_options(task, **overrides)},
        templates,
        item_repr=item_repr,
        id_seed=id_seed,
        negatives=negatives,
        max_history=max_history,
        codes=codes,
    )[task]
    check_lengths(dataset)
    sequences = dataset.sequences.select(
        USER_ID, ITEMS, *([RATINGS] if dataset.has_ratings else [])
    )
    user_ids = sequences.get_column(USER_ID).to_numpy()
    chosen_rows = _select_users(user_ids, users, max_users, seed)
    batch = Batch.from_frame(sequences[pl.Series(chosen_rows)], len(ctx.reprs) - 1)
    cases = eval_cases(batch, split, seed, TASK_INDEX[task])
    rows = TASKS[task].build(batch, cases, ctx, chosen)
    target = cases.target_flat(batch)
    first = cases.window_start(batch, max_history)
    starts = batch.offsets[:-1]
    columns = {
        USER_ID: pl.Series(batch.user_ids, dtype=pl.Int64),
        TEMPLATE: pl.Series(rows.template, dtype=pl.String),
        INPUT: pl.Series(join_texts([rows.input])),
        TARGET: pl.Series(join_texts([rows.target])),
        TARGET_ITEM: pl.Series(
            np.where(rows.target_item == NULL_ITEM, None, rows.target_item).tolist(),
            dtype=pl.Int64,
        ),
        CANDIDATES: _list_series(rows.candidates, len(cases)),
        HISTORY: _list_series(ranges(batch.items, first, target), len(cases)),
        FULL_HISTORY: _list_series(ranges(batch.items, starts, target), len(cases)),
        ITEM: pl.Series(batch.items[target], dtype=pl.Int64),
        HISTORY_BOUNDS: pl.Series(list_array(rows.bounds.rows, rows.bounds.valid, pa.int32())),
    }
    frame = pl.DataFrame(columns)
    if task != "rating":
        frame = frame.drop(ITEM)
    if task != "ranking":
        frame = frame.drop(CANDIDATES)
    return frame


def _list_series(ragged: Ragged | None, n: int) -> pl.Series:
    if ragged is None:
        return pl.Series([None] * n, dtype=pl.List(pl.Int64))
    return pl.Series(list_array(ragged))


class Prompt(NamedTuple):
    """A rendered input and its history bounds (UTF-8 byte offsets, for `fit_prompts`)."""

    text: str
    bounds: list[int] | None


def build_prompt(
    task: str,
    history_texts: list[str],
    *,
    template: str = "default",
    candidates: list[str] | None = None,
    item: str | None = None,
    ratings: list[float] | None = None,
    templates: TemplateSet | None = None,
    domain: Domain = NEUTRAL,
) -> Prompt:
    """The input prompt for an arbitrary history of item strings (serving), with bounds.

    The strings are used as given (pass the item representation the model was trained
    with); `ratings` align with `history_texts` for the rating task; `domain` gives the
    templates' words (the dataset's `domain`). Rendered by the generator's own renderer,
    so the text is the one an evaluation sample of the same history has.
    """
    if task not in REC_TASKS:
        raise ConfigError(f"prompts can be rendered for {REC_TASKS}, not {task!r}")
    chosen = (templates or load_templates()).resolve(task, template)
    sep = DEFAULTS.separator
    shown = list(history_texts)
    values: dict[str, object] = {"target": [b""], **domain.words()}
    if task == "ranking":
        if not candidates:
            raise ConfigError("the ranking prompt needs candidates")
        values["candidates"] = [sep.join(candidates).encode("utf-8")]
        values["num_candidates"] = len(candidates)
    if task == "rating":
        if item is None:
            raise ConfigError("the rating prompt needs the item to rate")
        if ratings is None or len(ratings) != len(history_texts):
            raise ConfigError("the rating prompt needs one rating per history item")
        shown = [RATED.format(t, format_rating(r)) for t, r in zip(shown, ratings, strict=True)]
        values["item"] = [item.encode("utf-8")]
    # A one-case block: the history is elements 0..n-1 of one joined text.
    joined = _joined([text.encode("utf-8") for text in shown], sep.encode("utf-8"))
    values["history"] = joined.texts
    _, inputs, _, offset = render([chosen], np.zeros(1, dtype=np.int64), values, "history")
    text = b"".join(inputs.pieces[0].tolist()).decode("utf-8")
    if not shown:
        return Prompt(text, [])
    first, stop = np.zeros(1, dtype=np.int64), np.array([len(shown)], dtype=np.int64)
    bounds = whole_history(joined, first, stop, offset)
    return Prompt(text, bounds.rows.values.tolist() if bounds.valid[0] else None)


def _joined(elements: list[bytes], separator: bytes) -> Joined:
    """One user's elements joined, with each element's byte span."""
    sizes = np.fromiter(map(len, elements), dtype=np.int64, count=len(elements))
    start = np.cumsum(sizes + len(separator)) - sizes - len(separator)
    return Joined([separator.join(elements)], start, start + sizes)


def render_prompt(task: str, history_texts: list[str], **options: Any) -> str:
    """The input prompt for an arbitrary history of item strings: `build_prompt`'s text
    (it takes `build_prompt`'s keywords)."""
    return build_prompt(task, history_texts, **options).text
