"""What every task shares: its specification, the generation context, the rows it makes.

A task module provides `SPEC = TaskSpec(...)` with one function,
`build(batch, cases, ctx, template=None) -> TaskRows`: the samples of the given cases
(user row, target position) of a block of users, for any split. Every random choice is
a counter-based draw keyed by (seed, task, split, user) and the position (`draws`), made
for the whole block in numpy. Python makes only each sample's variable text (a history
is a slice of its user's joined items); templates are applied to whole blocks as piece
matrices (`render`, `join_texts`). Content is drawn independently of the template, so
fixing the template (the evaluator) keeps the candidates of generation.

History bounds: every sample records where its droppable history items lie in its
`input` (UTF-8 byte offsets), so that a prompt can later be fitted to any tokenizer's
budget by dropping whole items, oldest first (`recalign.models.tokenization.fit_prompts`).
For n droppable items the row is `[s_0, ..., s_{n-1}, e, r]`: item i starts at s_i,
the newest droppable item ends at e, and r is where the kept text resumes when all n are
dropped (r = e when the whole history is droppable; MIM and MLM keep the items from the
first masked one on, so there r is that item's start). Dropping the k oldest items
removes bytes [s_0, s_k) (k < n) or [s_0, r) (k = n). An empty row: nothing is
droppable; a null row: the history could not be located (a Jinja template that repeats
it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, Literal, NamedTuple

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recalign.data.domain import NEUTRAL, PLACEHOLDERS
from recalign.samples.batch import Batch, Cases, Joined, Ragged
from recalign.samples.draws import Purpose, below, uniform, user_keys
from recalign.samples.negatives import NegativeSampler
from recalign.samples.templates import Template

NULL_ITEM = -1  # target_item of rows whose target is not one item
DOMAIN_PLACEHOLDERS = frozenset(PLACEHOLDERS)  # every task provides the domain words
NOT_LOCATED = -1  # `Rendered.offset`: the placeholder occurs more than once (or not found)
NOT_USED = -2  # `Rendered.offset`: the template does not use the placeholder


class TaskOptions(BaseModel):
    """Options every task takes in the mixture config (`tasks: {name: {...}}`)."""

    model_config = ConfigDict(extra="forbid")

    ratio: float | None = Field(
        default=None, ge=0.0, le=1.0, description="fraction of train positions used"
    )
    count: int | None = Field(
        default=None, ge=0, description="target number of train samples (sets the ratio)"
    )
    max_per_user: int | None = Field(default=None, ge=1)
    templates: list[str] | None = Field(
        default=None,
        min_length=1,
        description="template ids to draw from (default: all training ones)",
    )

    @model_validator(mode="after")
    def _ratio_or_count(self) -> TaskOptions:
        if self.ratio is not None and self.count is not None:
            raise ValueError("give `ratio` or `count`, not both")
        return self


@dataclass
class TaskContext:
    """Everything a task needs besides the users (built once per run)."""

    reprs: list[str]  # item id -> what the prompt shows (title / id token / both)
    texts: list[str]  # item id -> plain item text (MLM masks title words)
    templates: list[Template]  # training templates to draw from
    sampler: NegativeSampler
    options: Any  # the task's options model
    max_history: int  # items of history a prompt shows (the most recent)
    separator: str  # what joins the items of a history
    ratio: float = 1.0  # resolved from options.ratio / options.count
    family: str = "seq2seq"
    words: dict[str, str] = field(default_factory=NEUTRAL.words)  # the domain placeholders
    cache: dict[str, Any] = field(default_factory=dict)  # per-run precomputations of a task

    def cached(self, name: str, make: Callable[[], Any]) -> Any:
        found = self.cache.get(name)
        if found is None:
            found = self.cache[name] = make()
        return found

    @property
    def repr_bytes(self) -> list[bytes]:
        return self.cached("repr_bytes", lambda: [r.encode("utf-8") for r in self.reprs])

    @property
    def repr_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The item strings as an object array (fancy-indexable) and their byte lengths."""

        def make() -> tuple[np.ndarray, np.ndarray]:
            reprs = self.repr_bytes
            return _as_objects(reprs), _lengths(reprs)

        return self.cached("repr_arrays", make)

    @property
    def sep(self) -> bytes:
        return self.separator.encode("utf-8")

    def joined_reprs(self, batch: Batch) -> Joined:
        """Each user's items as the prompt shows them, joined (histories are slices)."""
        reprs = self.repr_bytes
        return batch.joined(
            f"reprs:{id(self.reprs)}", lambda: [reprs[i] for i in batch.items.tolist()], self.sep
        )


@dataclass
class TaskRows:
    """One task's samples for a block of users, in case order (rows, then positions)."""

    task: str
    cases: Cases
    template: list[str]  # template id per sample
    input: Texts
    target: Texts
    target_item: np.ndarray  # int64, NULL_ITEM where the target is not one item
    candidates: Ragged | None  # ranking only
    shown: Ragged  # every item id the sample mentions
    bounds: Bounds  # where the droppable history items lie in `input`


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: Literal["rec", "aux"]
    placeholders: frozenset[str]  # the task's own; `provides` adds the domain words
    build: Callable[..., TaskRows]
    options: type[TaskOptions] = TaskOptions
    needs_ratings: bool = False

    @property
    def provides(self) -> frozenset[str]:
        return self.placeholders | DOMAIN_PLACEHOLDERS


def train_cases(batch: Batch, ctx: TaskContext, seed: int, task_index: int) -> Cases:
    """Train positions t >= 1 of every user's train part, thinned by the ratio and capped."""
    counts = np.maximum(batch.lengths - 3, 0)  # train part = all but the last two items
    rows = np.repeat(np.arange(len(batch), dtype=np.int64), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    t = np.arange(len(rows), dtype=np.int64) - first + 1
    keys = user_keys(seed, task_index, "train", batch.user_ids)[rows]
    cases = Cases(rows, t, keys)
    if ctx.ratio < 1.0:
        cases = cases.select(uniform(cases.keys, Purpose.KEEP, cases.t) < ctx.ratio)
    cap = ctx.options.max_per_user
    if cap is not None and len(cases):
        # Keep the `cap` positions of each user with the smallest draws: a uniform subset.
        order = np.lexsort((uniform(cases.keys, Purpose.CAP, cases.t), cases.rows))
        starts = np.searchsorted(cases.rows[order], cases.rows[order], side="left")
        keep = np.zeros(len(cases), dtype=bool)
        keep[order[np.arange(len(order)) - starts < cap]] = True
        cases = cases.select(keep)
    return cases


def eval_cases(batch: Batch, split: str, seed: int, task_index: int) -> Cases:
    """One case per user: the valid item (t = len - 2) or the test item (t = len - 1)."""
    back = 2 if split == "valid" else 1
    rows = np.arange(len(batch), dtype=np.int64)
    keys = user_keys(seed, task_index, split, batch.user_ids)
    return Cases(rows, batch.lengths - back, keys)


def choose_templates(
    cases: Cases, ctx: TaskContext, template: Template | None
) -> tuple[list[Template], np.ndarray]:
    """The templates to render with and each case's index into them."""
    if template is not None:
        return [template], np.zeros(len(cases), dtype=np.int64)
    templates = ctx.templates
    return templates, below(cases.keys, Purpose.TEMPLATE, cases.t, len(templates))


class Texts(NamedTuple):
    """Strings as pieces: row r is `b"".join(pieces[r])`, `lengths[r]` bytes long.

    Rendering fills one column of pieces per template piece (object arrays, C loops);
    `join_texts` concatenates all rows at once. No prompt is formatted by itself.
    """

    pieces: np.ndarray  # object, (n, width): bytes
    lengths: np.ndarray  # int64, (n,)

    @classmethod
    def of(cls, values: list[bytes]) -> Texts:
        pieces = np.empty((len(values), 1), dtype=object)
        pieces[:, 0] = values
        return cls(pieces, _lengths(values))


# A task's placeholders -> their values, per case or constant (see `render`).
Values = dict[str, Texts | list[bytes] | str | int]


class Bounds(NamedTuple):
    """History bounds per row (see the module docstring); `valid[r]` False = null row."""

    rows: Ragged  # int64 byte offsets
    valid: np.ndarray  # bool, (n,)


class Rendered(NamedTuple):
    """What `render` makes: template ids, inputs, targets, and where one placeholder is."""

    ids: list[str]
    input: Texts
    target: Texts
    offset: np.ndarray | None  # int64 byte offset of `locate` in each input (or a code)

    def rows(
        self,
        task: str,
        cases: Cases,
        shown: Ragged,
        bounds: Bounds,
        *,
        target_item: np.ndarray | None = None,
        candidates: Ragged | None = None,
    ) -> TaskRows:
        """The task's rows made of these renderings; no `target_item`: no target is one
        item (NULL_ITEM in every row)."""
        if target_item is None:
            target_item = np.full(len(self.ids), NULL_ITEM, dtype=np.int64)
        return TaskRows(
            task, cases, self.ids, self.input, self.target, target_item, candidates, shown, bounds
        )


def _lengths(values: list[bytes]) -> np.ndarray:
    return np.fromiter(map(len, values), dtype=np.int64, count=len(values))


MAX_ARRAY_BYTES = 2**31 - 1  # an Arrow `string` array's data (32-bit offsets)


def join_texts(parts: Sequence[Texts], order: np.ndarray | None = None) -> pa.ChunkedArray:
    """The rows of `parts` (stacked, then taken in `order`) as Arrow strings.

    One chunk per run of rows under 2 GiB of text (almost always a single chunk), so
    the column keeps the `string` type of the output schema.
    """
    width = max(p.pieces.shape[1] for p in parts)
    pieces = np.concatenate(
        [
            np.hstack([p.pieces, np.full((len(p.lengths), width - p.pieces.shape[1]), b"", object)])
            if p.pieces.shape[1] < width
            else p.pieces
            for p in parts
        ]
    )
    lengths = np.concatenate([p.lengths for p in parts])
    if order is not None:
        pieces, lengths = pieces[order], lengths[order]
    ends = np.cumsum(lengths)
    if len(lengths) and lengths.max() > MAX_ARRAY_BYTES:
        raise ValueError(f"a sample of {lengths.max():,} bytes is over Arrow's string limit")
    chunks = []
    start = 0
    while start < len(lengths) or not chunks:
        base = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, base + MAX_ARRAY_BYTES, side="right"))
        chunks.append(_string_array(pieces[start:stop], lengths[start:stop]))
        start = stop
    return pa.chunked_array(chunks, pa.string())


def _string_array(pieces: np.ndarray, lengths: np.ndarray) -> pa.Array:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = b"".join(pieces.ravel().tolist())
    # Every piece is whole UTF-8 (template text, item texts) or a slice of joined texts cut
    # at an item or word boundary: valid by construction, so no validating pass.
    return pa.Array.from_buffers(
        pa.string(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def render(
    templates: list[Template],
    choice: np.ndarray,
    values: Values,
    locate: str | None = None,
) -> Rendered:
    """Template ids, inputs and targets: each case rendered with its chosen template.

    `values` maps every placeholder of the task to one value per case (`Texts`, or a list
    of UTF-8 bytes) or to a constant (`str` or `int`, as Jinja would get it). With
    `locate`, `offset` says where that placeholder's value starts in each input (bytes),
    `NOT_USED` where the template does not use it, `NOT_LOCATED` where it occurs twice.
    """
    if any(t.pieces("input") is None or t.pieces("target") is None for t in templates):
        return _render_with_jinja(templates, choice, values, locate)
    values = {
        name: str(v).encode("utf-8")
        if isinstance(v, str | int)
        else v
        if isinstance(v, Texts)
        else Texts.of(v)
        for name, v in values.items()
    }
    n = len(choice)
    rows_of = [np.flatnonzero(choice == j) for j in range(len(templates))]

    def width(name: str | None) -> int:
        value = values.get(name)
        return value.pieces.shape[1] if isinstance(value, Texts) else 1

    offset = None if locate is None else np.full(n, NOT_USED, dtype=np.int64)

    def fill(which: Literal["input", "target"], offset: np.ndarray | None = None) -> Texts:
        pieces_of = [_merge_constants(t.pieces(which), values) for t in templates]
        widths = [sum(width(name) for _, name in p) for p in pieces_of]
        pieces = np.full((n, max(widths)), b"", dtype=object)
        lengths = np.zeros(n, dtype=np.int64)
        for rows, template_pieces in zip(rows_of, pieces_of, strict=True):
            if len(templates) == 1:
                rows = slice(None)  # every case: no fancy indexing
            elif not len(rows):
                continue
            if offset is not None:
                uses = sum(name == locate for _, name in template_pieces)
                offset[rows] = NOT_USED if not uses else NOT_LOCATED
            k = 0
            for text, name in template_pieces:
                if offset is not None and name == locate and uses == 1:
                    offset[rows] = lengths[rows]  # the bytes before it
                value = text if name is None else values[name]
                if isinstance(value, bytes):
                    pieces[rows, k] = value
                    lengths[rows] += len(value)
                    k += 1
                else:
                    w = value.pieces.shape[1]
                    pieces[rows, k : k + w] = value.pieces[rows]
                    lengths[rows] += value.lengths[rows]
                    k += w
        return Texts(pieces, lengths)

    ids = np.array([t.id for t in templates], dtype=object)
    return Rendered(ids[choice].tolist(), fill("input", offset), fill("target"), offset)


def _merge_constants(
    pieces: list[tuple[bytes, str | None]], values: dict[str, Texts | bytes]
) -> list[tuple[bytes, str | None]]:
    """The template's pieces with constant values (domain words, the mask, ...) folded
    into the text around them: fewer columns to fill and to join for every sample."""
    merged: list[tuple[bytes, str | None]] = []
    text = b""
    for piece, name in pieces:
        value = piece if name is None else values[name]
        if isinstance(value, bytes):
            text += value
            continue
        if text:
            merged.append((text, None))
            text = b""
        merged.append((b"", name))
    if text:
        merged.append((text, None))
    return merged


def _as_objects(values: list[bytes]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _render_with_jinja(
    templates: list[Template],
    choice: np.ndarray,
    values: Values,
    locate: str | None = None,
) -> Rendered:
    """User templates with Jinja logic: one render per case (slow, but any template).

    The located placeholder is found by searching its value in the rendered input: a
    value that occurs once there is the placeholder (Jinja logic may transform it or
    show it twice, which leaves it `NOT_LOCATED`).
    """
    columns = []
    for value in values.values():
        if isinstance(value, str | int):  # constants keep their type (`num_candidates > 3`)
            columns.append(repeat(value))
        else:
            rows = map(b"".join, value.pieces.tolist()) if isinstance(value, Texts) else value
            columns.append(map(bytes.decode, rows))
    inputs, targets, offsets = [], [], []
    choices = choice.tolist()
    names = list(values)
    where = names.index(locate) if locate in values else None
    for vals, j in zip(zip(*columns), choices):  # noqa: B905 (constants repeat)
        inp, tgt = templates[j].render(dict(zip(names, vals, strict=True)))
        encoded = inp.encode("utf-8")
        inputs.append(encoded)
        targets.append(tgt.encode("utf-8"))
        if where is not None:
            offsets.append(_find_once(encoded, vals[where], locate in templates[j].placeholders))
    ids = [t.id for t in templates]
    offset = None if locate is None else np.asarray(offsets, dtype=np.int64).reshape(-1)
    return Rendered([ids[j] for j in choices], Texts.of(inputs), Texts.of(targets), offset)


def _find_once(text: bytes, value: str, used: bool) -> int:
    if not used:
        return NOT_USED
    needle = value.encode("utf-8")
    at = text.find(needle)
    if at < 0 or (needle and text.find(needle, at + 1) >= 0):
        return NOT_LOCATED
    return at


def history_bounds(
    joined: Joined, first: np.ndarray, stop: np.ndarray, resume: np.ndarray, offset: np.ndarray
) -> Bounds:
    """Each case's history bounds in its input (see the module docstring).

    The droppable items are the flat elements `first..stop-1` of `joined`; the case's
    history text starts at `joined.start[first]`, which `render` put at `offset` in the
    input; `resume` is where the kept text resumes when every droppable item is dropped
    (a byte offset in the user's joined text). Rows are empty where nothing is
    droppable or the template does not show the history, null where it could not be
    located.
    """
    count = np.where(offset >= 0, stop - first, 0)
    has = count > 0
    lengths = count + 2 * has
    offsets = np.zeros(len(count) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    shift = offset - joined.start[first]  # joined-text position -> input position
    out = np.empty(int(offsets[-1]), dtype=np.int64)
    # The item starts: element j of a row comes from first + j and goes to offsets + j.
    within = np.arange(int(count.sum()), dtype=np.int64)
    before = np.cumsum(count) - count
    out[within + np.repeat(offsets[:-1] - before, count)] = joined.start[
        within + np.repeat(first - before, count)
    ] + np.repeat(shift, count)
    # Then the end of the newest droppable item and where the text resumes.
    tail = offsets[1:][has]
    out[tail - 2] = joined.end[stop[has] - 1] + shift[has]
    out[tail - 1] = resume[has] + shift[has]
    return Bounds(Ragged(offsets, out), offset != NOT_LOCATED)


def whole_history(
    joined: Joined, first: np.ndarray, stop: np.ndarray, offset: np.ndarray
) -> Bounds:
    """`history_bounds` of a history whose items `first..stop-1` may all be dropped."""
    return history_bounds(joined, first, stop, joined.end[np.maximum(stop - 1, first)], offset)


def item_texts(ctx: TaskContext, items: np.ndarray) -> Texts:
    """Each item as the prompt shows it."""
    objects, lengths = ctx.repr_arrays
    return Texts(objects[items][:, None], lengths[items])


def item_lists(ctx: TaskContext, matrix: np.ndarray) -> list[bytes]:
    """Each row of items as the prompt shows them, joined by the separator."""
    objects, _ = ctx.repr_arrays
    # One C-level join per row (a piece per item would widen every row of the block).
    return list(map(ctx.sep.join, objects[matrix].tolist()))


def histories(joined: Joined, rows: np.ndarray, first: np.ndarray, stop: np.ndarray) -> list[bytes]:
    """Per case, the joined elements first..stop-1 (flat indices of the case's user)."""
    texts, start, end = joined.texts, joined.start.tolist(), joined.end.tolist()
    return [
        texts[r][start[a] : end[b - 1]] if b > a else b""
        for r, a, b in zip(rows.tolist(), first.tolist(), stop.tolist(), strict=True)
    ]


def render_cases(
    cases: Cases,
    ctx: TaskContext,
    template: Template | None,
    values: Values,
    locate: str = "history",
) -> Rendered:
    """Each case rendered with `template`, else with one drawn from the context's; the
    domain words join `values`, and `offset` says where `locate` is (see `render`)."""
    templates, choice = choose_templates(cases, ctx, template)
    return render(templates, choice, {**values, **ctx.words}, locate=locate)


@dataclass(frozen=True)
class NextItem:
    """What retrieval, ranking, rating and BPR share: each case's target (flat index), the
    flat index of its first history item, its history as the prompt shows it, and the
    joined items it is a slice of (all of it droppable)."""

    cases: Cases
    target: np.ndarray
    first: np.ndarray
    history: list[bytes]
    joined: Joined

    def rows(
        self,
        task: str,
        ctx: TaskContext,
        template: Template | None,
        values: Values,
        shown: Ragged,
        *,
        target_item: np.ndarray | None = None,
        candidates: Ragged | None = None,
    ) -> TaskRows:
        """The task's rows: `values` and the history rendered, the whole history droppable."""
        rendered = render_cases(self.cases, ctx, template, {"history": self.history, **values})
        bounds = whole_history(self.joined, self.first, self.target, rendered.offset)
        return rendered.rows(
            task, self.cases, shown, bounds, target_item=target_item, candidates=candidates
        )


def next_item_cases(
    batch: Batch, cases: Cases, ctx: TaskContext, joined: Joined | None = None
) -> NextItem:
    """Each case's next-item history, a slice of `joined` (default: the user's items as
    the prompt shows them)."""
    target = cases.target_flat(batch)
    first = cases.window_start(batch, ctx.max_history)
    if joined is None:
        joined = ctx.joined_reprs(batch)
    return NextItem(cases, target, first, histories(joined, cases.rows, first, target), joined)


def format_rating(value: float) -> str:
    """`4.0` -> `4`, `3.5` -> `3.5`: the rating text a model reads and writes."""
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"
