"""How a language model is evaluated: the options of `recalign evaluate` and of the run
config's `evaluation:` section, with their defaults, defined once.

`EvalSettings` are what a run config and the command line share; `EvalOptions` adds what
one evaluation needs besides (the protocol, the seed, a shard, the checkpoint). Every
field is recorded in `metrics.json` (`options`). This module imports pydantic and the
protocol table only, so the CLI reads its defaults without loading a model stack.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recalign.ranking import FULL_RANKING, TOP_K, ProtocolName


class EvalSettings(BaseModel):
    """The settings of an evaluation that a run config can set (`evaluation:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    split: Literal["test", "valid"] = "test"
    """The held-out item evaluated: the last one (test) or the second-last (valid)."""
    max_users: int | None = Field(None, ge=1)
    """Evaluate a seeded sample of this many users (null: all); decoding is the slow part
    on a CPU."""
    exclude_history: bool = True
    """Never recommend the user's own history items (banned inside the search)."""
    k: int = Field(TOP_K, ge=1)
    """Items retrieved per user (full ranking)."""
    num_beams: int = Field(20, ge=1)
    """Beams of the constrained search (at least K are used)."""
    batch_size: int = Field(16, ge=1)
    """Users decoded together."""
    template: str = "default"
    """Prompt template: a template id, `default` (the first training one) or `unseen`."""
    decoder: Literal["fast", "reference"] = "fast"
    """Retrieval decoder: ours, or generate(prefix_allowed_tokens_fn) (slow, the reference)."""
    length_penalty: float = 0.0
    """Retrieval: score / length**p (0 = log-likelihood)."""
    num_candidates: int = Field(20, ge=1)
    """Ranking protocol: candidates in the prompt."""
    num_negatives: int = Field(99, ge=1)
    """Sampled protocol: unseen items scored with the target."""
    length_normalize: bool = False
    """Ranking and sampled: mean instead of summed log-probability of an answer."""
    greedy_rating: bool = False
    """Rating: the most likely answer, not the expected value."""
    max_source_length: int | None = Field(None, ge=8)
    """Prompt budget in tokens (oldest history items dropped to fit); null: the run's
    training budget, none for a model evaluated zero-shot."""


class EvalOptions(EvalSettings):
    """One evaluation: the settings plus the protocol, the seed, a shard, the checkpoint."""

    protocol: ProtocolName = FULL_RANKING
    """retrieval (full ranking), ranking, sampled (1 + 99) or rating."""
    seed: int = 0
    """Seed of user subsets, sampled negatives and the bootstrap."""
    shard: int | None = Field(None, ge=0)
    """This shard's index (0-based) when users are split into `num_shards`."""
    num_shards: int | None = Field(None, ge=1)
    """Number of user shards."""
    which: str = "best"
    """Checkpoint of a training run: best, last or checkpoint-N."""
    n_boot: int = Field(1000, ge=1)
    """Bootstrap resamples of the confidence intervals."""

    @model_validator(mode="after")
    def _shards(self) -> EvalOptions:
        if (self.shard is None) != (self.num_shards is None):
            raise ValueError("give both shard and num_shards (--shard and --num-shards)")
        if self.shard is not None and self.num_shards is not None and self.shard >= self.num_shards:
            raise ValueError(f"shard {self.shard} is out of range for {self.num_shards} shard(s)")
        return self
