"""The typed configuration of `recalign run` (and `recalign ablate`).

Every stage's config is a section of one model, validated whole when the file is read —
before any stage runs: `samples` is the task mixture (`recalign.samples.mixture`, each
task's options checked against that task's model), `training` the training config
(`recalign.training.config`), `evaluation` the evaluation settings
(`recalign.evaluation.options`), `baselines` names resolved through the registry with
each baseline's options checked against its own model. A typo, a wrong type or an
unknown name is an error naming the key (`training.batch_sise`). None of these modules
imports torch or transformers, so a config is checked in about a second.

The resolved configuration (every default filled in) is written into the run directory.
`training.seed` and a baseline's `seed` are null unless given: they follow the run's
`seed`, so an ablation over seeds changes them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from recalign.evaluation.options import EvalSettings
from recalign.ranking import PROTOCOL_NAMES, ProtocolName
from recalign.samples.mixture import DEFAULT_PRESET, PRESETS, MixtureConfig
from recalign.training.config import TrainConfig
from recalign.validation import Problems, known_name, read_yaml, unknown_name, validate


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class DataSection(_Section):
    name: str = "synthetic"
    """Dataset name, as listed by `recalign data list`."""
    source: str | None = None
    """Local source directory; downloadable datasets are fetched when it is empty."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Reader options (e.g. `users`/`items` for the synthetic shop, column names for custom)."""

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        from recalign.data.registry import DATASETS

        return known_name("dataset", name, list(DATASETS))


class SamplesSection(MixtureConfig):
    """The samples stage: the task mixture (`samples generate --config` keys) and workers."""

    preset: str = DEFAULT_PRESET
    """Task mixture: paper, rec-only, rec+mim, rec+bpr, rec+mlm; `tasks` adds to it."""
    workers: int = Field(1, ge=1)
    """Processes generating blocks of users in parallel (the samples are the same)."""

    @model_validator(mode="before")
    @classmethod
    def _older_config_key(cls, values: Any) -> Any:
        """`samples.config` (older run configs) held the mixture keys this section has now."""
        if not isinstance(values, dict) or "config" not in values:
            return values
        values = dict(values)
        nested = values.pop("config") or {}
        if isinstance(nested, dict):
            twice = sorted(set(nested) & set(values))
            if twice:
                raise ValueError(f"{twice} given both in samples and in samples.config")
            values.update(nested)
        else:
            values["config"] = nested  # reported as an unknown key
        return values

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, preset: str) -> str:
        return known_name("preset", preset, list(PRESETS))

    def mixture(self) -> MixtureConfig:
        """The mixture config the samples stage generates with."""
        return MixtureConfig.model_validate(self.model_dump(exclude={"workers"}))


class ModelSection(_Section):
    spec: str = "tiny-t5"
    """tiny-t5, tiny-causal, a local model directory, or a hub name (downloads)."""
    tokenizer: str | None = None
    """Tokenizer path for the tiny presets (default: trained on the dataset's text)."""


class TrainingSection(TrainConfig):
    """The keys of `recalign train --config` (docs/models.md); `seed` null: the run's."""

    seed: int | None = None

    def for_run(self, seed: int) -> TrainConfig:
        """The training config of a run whose seed is `seed`."""
        values = self.model_dump()
        values["seed"] = seed if self.seed is None else self.seed
        return TrainConfig.model_validate(values)


class EvaluationSection(EvalSettings):
    """How the language model is evaluated (the options of `recalign evaluate`)."""

    model_config = ConfigDict(frozen=False)

    protocols: list[ProtocolName] = Field(default_factory=lambda: list(PROTOCOL_NAMES))
    """Protocols to run; those the data cannot support (rating without ratings) are skipped."""
    zero_shot: list[ProtocolName] | None = None
    """Protocols on which the model *before* fine-tuning is evaluated too (its row reads
    "zero-shot"; the report compares it with the fine-tuned model on the same users).
    null: every protocol for a pretrained model, none for the tiny presets (a random
    init is no baseline); [] turns it off."""


def _every_baseline() -> list[str]:
    from recalign.baselines.registry import BASELINES

    return list(BASELINES)


class BaselinesSection(_Section):
    models: list[str] = Field(default_factory=_every_baseline)
    """Baselines on the same split (`recalign baseline --help`); rating baselines are
    skipped, with a message, on data without ratings."""
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-baseline options (the keys of `recalign baseline --config`). Resolved, every
    listed baseline's options are here in full; `seed` null: the run's."""

    @model_validator(mode="after")
    def _resolve(self) -> BaselinesSection:
        """Every name known and every option checked against that baseline's model."""
        from recalign.baselines.registry import BASELINES

        problems = Problems()
        for index, name in enumerate(self.models):
            if name not in BASELINES:
                problems.add(("models", index), unknown_name("baseline", name, list(BASELINES)))
            elif self.models.index(name) != index:
                problems.add(("models", index), f"baseline {name!r} is listed twice")
        resolved: dict[str, dict[str, Any]] = {}
        for name in [*self.models, *(n for n in self.options if n not in self.models)]:
            if name not in BASELINES:
                if name in self.options:
                    problems.add(("options", name), unknown_name("baseline", name, list(BASELINES)))
                continue
            given = dict(self.options.get(name) or {})
            seed = given.pop("seed", None)
            spec = BASELINES[name]
            built = problems.validate(
                ("options", name), spec.config_model, {**spec.preset, **given}
            )
            if built is not None:
                resolved[name] = {**built.model_dump(), "seed": seed}
        problems.check()
        self.options = resolved
        return self

    def options_for(self, name: str, seed: int) -> dict[str, Any]:
        """The options baseline `name` runs with in a run whose seed is `seed`."""
        values = dict(self.options.get(name) or {})
        if values.get("seed") is None:
            values["seed"] = seed
        return values


class RunConfig(_Section):
    name: str = "demo"
    seed: int = 0
    data: DataSection = Field(default_factory=DataSection)
    samples: SamplesSection = Field(default_factory=SamplesSection)
    model: ModelSection = Field(default_factory=ModelSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
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
        for preset in presets:
            known_name("preset", preset, list(PRESETS))
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


def parse_config(raw: dict[str, Any] | None, origin: str = "run config") -> RunConfig:
    """A run config from a mapping; a `ConfigError` naming every bad key otherwise."""
    return validate(RunConfig, raw, origin)


def checked(config: RunConfig) -> RunConfig:
    """`config` validated again, whole: a config changed after it was built (a variant of
    an ablation, a Python caller's edit) is checked before anything runs."""
    return parse_config(config.model_dump(mode="json"), f"run config {config.name!r}")


# The built-in demo: every stage, protocol and baseline in minutes on a busy 2-core CPU,
# in under 2 GB (bench/bench_demo.py, bench/RESULTS.md). Everything else keeps the
# defaults above (the literature's, for real datasets).
DEMO_STEPS, DEMO_BATCH = 640, 16
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
    return parse_config(read_yaml(path, what="config file"), str(path))
