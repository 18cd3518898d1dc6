"""What every task shares: its specification, the generation context, a user's data.

A task module provides `SPEC = TaskSpec(...)` with two pure-ish functions:
- `train(user, rng, ctx, out)`: the user's training samples into `out`, all randomness
  from `rng` (seeded by (seed, task, user) by the caller);
- `evaluate(query, rng, ctx, template)` (rec tasks): the one valid/test sample of a user.
  Content is drawn first and the template last, so fixing the template (the evaluator)
  keeps the same candidates as generation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recalign.samples.negatives import NegativeSampler
from recalign.samples.templates import Template


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
    """Everything a task needs besides the user and the generator (built once per run)."""

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


@dataclass(slots=True)
class UserData:
    user_id: int
    train: list[int]  # train part of the sequence, chronological
    train_ratings: list[float] | None
    seen: set[int]  # every item of the user's full sequence
    # position t -> (history item ids, history text): retrieval, ranking and bpr prompt the
    # same history at the same position, so it is joined once per user and position.
    histories: dict[int, tuple[list[int], str]] = field(default_factory=dict)

    def history(self, t: int, ctx: TaskContext) -> tuple[list[int], str]:
        found = self.histories.get(t)
        if found is None:
            items = self.train[max(0, t - ctx.max_history) : t]
            found = self.histories[t] = (items, ctx.join(items))
        return found


@dataclass(slots=True)
class EvalQuery:
    """One user's valid or test case: the history before the target and the target."""

    user_id: int
    history: list[int]
    history_ratings: list[float] | None
    target: int
    target_rating: float | None
    seen: set[int]


@dataclass(slots=True)
class EvalRow:
    template: str
    input: str
    target: str
    target_item: int | None
    candidates: list[int] | None
    prompt_history: list[int]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: Literal["rec", "aux"]
    placeholders: frozenset[str]
    train: Callable[..., None]
    evaluate: Callable[..., EvalRow] | None = None
    options: type[TaskOptions] = TaskOptions
    needs_ratings: bool = False


def train_positions(rng: np.random.Generator, length: int, ctx: TaskContext) -> list[int]:
    """Target positions t >= 1 of a train sequence, thinned by the ratio and capped."""
    if length < 2:
        return []
    if ctx.ratio >= 1.0:
        positions = list(range(1, length))
    else:
        keep = rng.random(length - 1) < ctx.ratio
        positions = (np.flatnonzero(keep) + 1).tolist()
    cap = ctx.options.max_per_user
    if cap is not None and len(positions) > cap:
        chosen = np.sort(rng.choice(len(positions), size=cap, replace=False))
        positions = [positions[i] for i in chosen.tolist()]
    return positions


def randint_list(rng: np.random.Generator, high: int, n: int) -> list[int]:
    """`n` uniform integers in [0, high) as a list.

    `floor(u * high)` of 53-bit uniforms (bias below 2**-40 for any catalogue size):
    `Generator.integers(size=n)` spends ~5 us in Python-level argument handling per
    call, which made it one of the largest costs at a few samples per call.
    """
    return (rng.random(n) * high).astype(np.int64).tolist()


def draw_templates(rng: np.random.Generator, n: int, ctx: TaskContext) -> list[Template]:
    templates = ctx.templates
    return [templates[i] for i in randint_list(rng, len(templates), n)]


def format_rating(value: float) -> str:
    """`4.0` -> `4`, `3.5` -> `3.5`: the rating text a model reads and writes."""
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:g}"


def window(items: Sequence[int], end: int, size: int) -> Sequence[int]:
    """The (at most) `size` items before position `end`."""
    return items[max(0, end - size) : end]
