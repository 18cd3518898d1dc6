"""`PromptSettings`: what evaluation and serving prompts are built with.

A fine-tuned run records them in its manifest (`RunManifest.prompt`: item
representation, history length, id seed, separator, template files, task mixture,
prompt budget), so a run is evaluated and served exactly as it was trained; a samples
directory has its own (`SamplesDir.prompt_settings`); without either, the defaults of
the samples stage (`recalign.samples.mixture.MixtureConfig`) — one place for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from recalign.artifacts.manifests import PromptRecord
from recalign.errors import ConfigError


def _samples_defaults() -> Any:
    from recalign.samples.mixture import MixtureConfig

    return MixtureConfig()


def default_max_history() -> int:
    return int(_samples_defaults().max_history)


@dataclass(frozen=True)
class PromptSettings:
    """How prompts are built. `templates` are template files (absolute paths) that
    replace the shipped templates of their tasks; `tasks` the mixture a model was
    trained on (None: not known); `max_source_length` its prompt budget in tokens
    (None: prompts are not fitted)."""

    item_repr: str = field(default_factory=lambda: str(_samples_defaults().item_repr))
    max_history: int = field(default_factory=default_max_history)
    id_seed: int = field(default_factory=lambda: int(_samples_defaults().id_seed))
    templates: tuple[str, ...] = ()
    separator: str = field(default_factory=lambda: str(_samples_defaults().separator))
    tasks: tuple[str, ...] | None = None
    max_source_length: int | None = None
    source: str = "defaults"  # where the settings came from, for metrics.json
    codes_file: str | None = None  # semantic_ids.parquet (item_repr semantic*)

    @classmethod
    def from_record(cls, record: PromptRecord, directory: Path, source: str) -> PromptSettings:
        """The settings a manifest recorded; its template files lie in `directory`."""
        return cls(
            item_repr=record.item_repr,
            max_history=record.max_history,
            id_seed=record.id_seed,
            templates=tuple(str((directory / name).absolute()) for name in record.templates),
            separator=record.separator,
            tasks=tuple(record.tasks),
            max_source_length=record.max_source_length,
            source=source,
            codes_file=None
            if record.semantic_ids is None
            else str((directory / record.semantic_ids).absolute()),
        )

    def with_overrides(
        self, *, max_history: int | None = None, item_repr: str | None = None
    ) -> PromptSettings:
        """These settings with the values a user gave on the command line."""
        changes: dict[str, Any] = {}
        if max_history is not None:
            if max_history < 1:
                raise ConfigError(f"--max-history must be at least 1, got {max_history}")
            changes["max_history"] = max_history
        if item_repr is not None:
            from typing import get_args

            from recalign.samples.representation import ItemRepr

            if item_repr not in get_args(ItemRepr):
                raise ConfigError(
                    f"unknown item representation {item_repr!r}; expected one of "
                    f"{', '.join(get_args(ItemRepr))}"
                )
            changes["item_repr"] = item_repr
        if not changes:
            return self
        return replace(self, **changes, source=f"{self.source} + flags")

    def item_codes(self, num_items: int) -> list[str] | None:
        """The semantic ids (index = item id) for a semantic `item_repr`, else None."""
        from recalign.errors import RecalignError
        from recalign.samples.representation import is_semantic
        from recalign.samples.semantic import read_codes

        if not is_semantic(self.item_repr):
            return None
        if self.codes_file is None:
            raise RecalignError(
                f"item representation {self.item_repr!r} needs the semantic ids the model was "
                "trained with (semantic_ids.parquet in its run or samples directory), and "
                "none was found"
            )
        return read_codes(self.codes_file, num_items)

    def codebook(self) -> Any:
        """The `Codebook` beside the semantic ids (codes for new items); a `RecalignError`
        saying how to get one when the run has none."""
        from recalign.errors import RecalignError
        from recalign.samples.representation import is_semantic
        from recalign.samples.semantic import SEMANTIC_CODEBOOK_FILE, Codebook

        if not is_semantic(self.item_repr) or self.codes_file is None:
            raise RecalignError(
                f"item representation {self.item_repr!r} has no semantic-id codebook"
            )
        return Codebook.load(Path(self.codes_file).with_name(SEMANTIC_CODEBOOK_FILE))

    def representations(self, item_texts: Any) -> list[str]:
        """The string each item id is shown as (index 0 unused) under these settings."""
        from recalign.samples.representation import item_representations

        codes = self.item_codes(len(item_texts) - 1)
        return item_representations(item_texts, self.item_repr, self.id_seed, codes)

    def load_templates(self) -> Any:
        """The template set the prompts use (the shipped one, with `templates` applied)."""
        from recalign.samples.tasks import load_templates

        return load_templates(list(self.templates))

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_repr": self.item_repr,
            "max_history": self.max_history,
            "id_seed": self.id_seed,
            "templates": list(self.templates),
            "separator": self.separator,
            "tasks": None if self.tasks is None else list(self.tasks),
            "max_source_length": self.max_source_length,
            "source": self.source,
            "codes_file": self.codes_file,
        }
