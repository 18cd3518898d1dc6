"""What every task shares: its specification, the generation context, the rows it makes.

A task module provides `SPEC = TaskSpec(...)` with one function,
`build(batch, cases, ctx, template=None) -> TaskRows`: the samples of the given cases
(user row, target position) of a block of users, for any split. Every random choice is
a counter-based draw keyed by (seed, task, split, user) and the position (`draws`), made
for the whole block in numpy; Python only assembles each sample's text from slices of
its user's joined items. Content is drawn independently of the template, so fixing the
template (the evaluator) keeps the candidates of generation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recalign.samples.batch import Batch, Cases, Joined, Ragged
from recalign.samples.draws import Purpose, below, uniform, user_keys
from recalign.samples.negatives import NegativeSampler
from recalign.samples.templates import Template

NULL_ITEM = -1  # target_item of rows whose target is not one item
_BARE_TARGET = (b"%s", ("target",))


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
        default=None, description="template ids to draw from (default: all training ones)"
    )


@dataclass
class TaskContext:
    """Everything a task needs besides the users (built once per run)."""

    reprs: list[str]  # item id -> what the prompt shows (title / id token / both)
    texts: list[str]  # item id -> plain item text (MLM masks title words)
    templates: list[Template]  # training templates to draw from
    sampler: NegativeSampler
    options: Any  # the task's options model
    max_history: int = 20
    ratio: float = 1.0  # resolved from options.ratio / options.count
    family: str = "seq2seq"
    separator: str = "; "
    cache: dict[str, Any] = field(default_factory=dict)  # per-run precomputations of a task

    def join(self, items: Sequence[int]) -> str:
        reprs = self.reprs
        return self.separator.join([reprs[i] for i in items])

    def cached(self, name: str, make: Callable[[], Any]) -> Any:
        found = self.cache.get(name)
        if found is None:
            found = self.cache[name] = make()
        return found

    @property
    def repr_bytes(self) -> list[bytes]:
        return self.cached("repr_bytes", lambda: [r.encode("utf-8") for r in self.reprs])

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
    input: list[bytes]
    target: list[bytes]
    target_item: np.ndarray  # int64, NULL_ITEM where the target is not one item
    candidates: Ragged | None  # ranking only
    shown: Ragged  # every item id the sample mentions


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: Literal["rec", "aux"]
    placeholders: frozenset[str]
    build: Callable[..., TaskRows]
    options: type[TaskOptions] = TaskOptions
    needs_ratings: bool = False


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


def render(
    templates: list[Template], choice: np.ndarray, values: dict[str, Iterable[bytes]]
) -> tuple[list[str], list[bytes], list[bytes]]:
    """Template ids, inputs and targets: each case rendered with its chosen template.

    `values` maps every placeholder of the task to one value per case (a list) or to an
    `itertools.repeat` of a constant.
    """
    names = list(values)
    column = {name: i for i, name in enumerate(names)}
    compiled = []
    for t in templates:
        pin, ptg = t._input.pattern, t._target.pattern
        if pin is None or ptg is None:
            compiled = None  # some template needs Jinja: the general path below
            break
        compiled.append(
            (
                pin[0],
                _getter([column[n] for n in pin[1]]),
                ptg[0],
                _getter([column[n] for n in ptg[1]]),
            )
        )
    choices = choice.tolist()
    inputs: list[bytes] = []
    targets: list[bytes] = []
    if compiled is not None and all(t._target.pattern == _BARE_TARGET for t in templates):
        # The usual target, `{{ target }}`: the value itself, nothing to render.
        add_in = inputs.append
        for vals, j in zip(_value_rows(values), choices, strict=True):
            pin, gin, _, _ = compiled[j]
            add_in(pin % gin(vals))
        targets = list(values["target"])
    elif compiled is not None:
        add_in, add_tg = inputs.append, targets.append
        for vals, j in zip(_value_rows(values), choices, strict=True):
            pin, gin, ptg, gtg = compiled[j]
            add_in(pin % gin(vals))
            add_tg(ptg % gtg(vals))
    else:
        for vals, j in zip(_value_rows(values), choices, strict=True):
            texts = {n: v.decode("utf-8") for n, v in zip(names, vals, strict=True)}
            inp, tgt = templates[j].render(texts)
            inputs.append(inp.encode("utf-8"))
            targets.append(tgt.encode("utf-8"))
    ids = [t.id for t in templates]
    return [ids[j] for j in choices], inputs, targets


def _value_rows(values: dict[str, Iterable[bytes]]):
    """Per case, its values in placeholder order (constants repeat, so not strict)."""
    return zip(*values.values())  # noqa: B905


def _getter(indices: list[int]) -> Callable[[tuple], Any]:
    """`vals -> the values a positional pattern takes` (a tuple, or one bytes value)."""
    if not indices:
        return lambda vals: ()
    if len(indices) == 1:
        (i,) = indices
        return lambda vals: (vals[i],)
    return itemgetter(*indices)


def constant(value: str | int) -> repeat:
    return repeat(str(value).encode("utf-8"))


def item_texts(ctx: TaskContext, items: np.ndarray) -> list[bytes]:
    reprs = ctx.repr_bytes
    return [reprs[i] for i in items.tolist()]


def histories(
    batch: Batch, joined: Joined, rows: np.ndarray, first: np.ndarray, stop: np.ndarray
) -> list[bytes]:
    """Per case, the joined items first..stop-1 (flat indices of the case's user)."""
    texts, start, end = joined.texts, joined.start.tolist(), joined.end.tolist()
    return [
        texts[r][start[a] : end[b - 1]] if b > a else b""
        for r, a, b in zip(rows.tolist(), first.tolist(), stop.tolist(), strict=True)
    ]


def format_rating(value: float) -> str:
    """`4.0` -> `4`, `3.5` -> `3.5`: the rating text a model reads and writes."""
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"
