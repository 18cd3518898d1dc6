"""The typed configuration of `recalign run` (and `recalign ablate`).

Every section rejects unknown keys, so a typo is an error naming the key rather than a
silently ignored setting. The resolved configuration is written into the run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recalign.errors import ConfigError
from recalign.ranking import PROTOCOL_NAMES as PROTOCOLS
from recalign.ranking import ProtocolName


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSection(_Section):
    name: str = "synthetic"
    """Dataset name, as listed by `recalign data list`."""
    source: str | None = None
    """Local source directory; downloadable datasets are fetched when it is empty."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Reader options (e.g. `users`/`items` for the synthetic shop, column names for custom)."""


class SamplesSection(_Section):
    preset: str = "paper"
    """Task mixture: paper, rec-only, rec+mim, rec+bpr, rec+mlm."""
    config: dict[str, Any] | None = None
    """Per-task overrides of the mixture (the same keys as `samples generate --config`)."""
    item_repr: Literal["title", "id", "id+title"] = "title"
    max_history: int = Field(20, ge=1)
    workers: int = Field(1, ge=1)
    """Processes generating blocks of users in parallel (the samples are the same)."""


class ModelSection(_Section):
    spec: str = "tiny-t5"
    """tiny-t5, tiny-causal, a local model directory, or a hub name (downloads)."""
    tokenizer: str | None = None
    """Tokenizer path for the tiny presets (default: trained on the dataset's text)."""


class EvaluationSection(_Section):
    protocols: list[ProtocolName] = Field(default_factory=lambda: list(PROTOCOLS))
    """Protocols to run; those the data cannot support (rating without ratings) are skipped."""
    split: Literal["valid", "test"] = "test"
    max_users: int | None = Field(None, ge=1)
    """Evaluate the LLM on a seeded sample of users (null: all); decoding is the slow part
    on a CPU. The baselines rank every user."""
    exclude_history: bool = True
    num_beams: int = Field(20, ge=1)
    batch_size: int = Field(16, ge=1)
    zero_shot: list[ProtocolName] | None = None
    """Protocols on which the model *before* fine-tuning is evaluated too (its row reads
    "zero-shot"; the report compares it with the fine-tuned model on the same users).
    null: every protocol for a pretrained model, none for the tiny presets (a random
    init is no baseline); [] turns it off."""


class BaselinesSection(_Section):
    models: list[str] = Field(
        default_factory=lambda: [
            "pop",
            "bprmf",
            "sasrec",
            "sasrec-ce",
            "global-mean",
            "user-mean",
            "item-mean",
            "biased-mf",
        ]
    )
    """Baselines on the same split (`recalign baseline --help`); rating baselines are
    skipped, with a message, on data without ratings."""
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-baseline options (the keys of `recalign baseline --config`)."""


class RunConfig(_Section):
    name: str = "demo"
    seed: int = 0
    data: DataSection = Field(default_factory=DataSection)
    samples: SamplesSection = Field(default_factory=SamplesSection)
    model: ModelSection = Field(default_factory=ModelSection)
    training: dict[str, Any] = Field(default_factory=dict)
    """Training options (see `recalign train --help` / docs/models.md)."""
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    baselines: BaselinesSection = Field(default_factory=BaselinesSection)
    compare: list[str] = Field(default_factory=list)
    """Other task-mixture presets (e.g. `rec-only`) to train beside `samples.preset` with
    the same data, model, training budget and seed, each evaluated on retrieval on the
    same users: a row of its own in the results, to show what the mixture adds."""
    report: bool = True

    @field_validator("compare")
    @classmethod
    def _known_presets(cls, presets: list[str]) -> list[str]:
        from recalign.samples.mixture import PRESETS

        for preset in presets:
            if preset not in PRESETS:
                raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        if len(set(presets)) != len(presets):
            raise ValueError(f"a preset is listed twice in {presets}")
        return presets

    @model_validator(mode="after")
    def _compare_differs(self) -> RunConfig:
        if self.samples.preset in self.compare:
            raise ValueError(
                f"compare: {self.samples.preset!r} is samples.preset already; list other presets"
            )
        return self


def _format_validation_error(error: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration in {origin}:"]
    for problem in error.errors():
        key = ".".join(str(part) for part in problem["loc"])
        if problem["type"] == "extra_forbidden":
            lines.append(f"  - unknown key {key!r}")
        elif problem["type"] == "value_error":
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(f"  - {key}: {message}" if key else f"  - {message}")
        else:
            expected = problem["msg"]
            lines.append(f"  - {key}: {expected} (got {problem.get('input')!r})")
    return "\n".join(lines)


def parse_config(raw: dict[str, Any] | None, origin: str = "<config>") -> RunConfig:
    try:
        return RunConfig.model_validate(raw or {})
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, origin)) from None


# The built-in demo: every stage, protocol and baseline in minutes on a busy 2-core CPU,
# in under 2 GB (bench/bench_demo.py, bench/RESULTS.md). Everything else keeps the
# defaults above (the literature's, for real datasets).
DEMO_STEPS, DEMO_BATCH = 800, 16
DEMO_CONFIG: dict[str, Any] = {
    "name": "demo",
    "data": {"name": "synthetic", "options": {"users": 2000, "items": 500}},
    # The complement habit needs the last item; five keep prompts short (cost is per token).
    "samples": {"max_history": 5},
    "training": {
        "max_steps": DEMO_STEPS,
        "batch_size": DEMO_BATCH,
        # Tokenise only the samples the steps read (a seeded subset), not all ~80k.
        "max_train_samples": DEMO_STEPS * DEMO_BATCH,
        # Ranking prompts (20 candidates) are the longest: cut at 192 tokens, not 256.
        "max_source_length": 192,
        # One validation pass (and checkpoint), at the end, on a subset.
        "eval_steps": DEMO_STEPS,
        "max_eval_samples": 500,
    },
    "evaluation": {"max_users": 500},
    # What the auxiliary tasks add: the same model, budget and users on rec tasks only.
    "compare": ["rec-only"],
    "baselines": {
        "options": {
            # Small batches give the demo's 2,000 users enough updates per epoch.
            "sasrec": {"epochs": 30, "batch_size": 64},
            "sasrec-ce": {"epochs": 15, "batch_size": 64},
        }
    },
}


def load_config(path: str | Path | None) -> RunConfig:
    """Read a YAML run configuration; `None` gives the built-in demo."""
    if path is None:
        return parse_config(DEMO_CONFIG, "the built-in demo")
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return parse_config(raw, str(path))
