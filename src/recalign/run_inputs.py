"""A run's inputs, found from any working directory: its samples, prompt settings, dataset.

Manifests record the directories a stage read. `recorded_path` writes such a path
relative to the manifest's own directory when it lies in the same tree (at most one
level up: `RUN/../samples` in a `recalign run` directory), so a whole run tree can be
moved or copied; a path elsewhere is recorded absolute, so a run moved on its own still
finds it. `find_recorded` reads a recorded path back — also the forms older versions
wrote: relative to the working directory of the time, or absolute paths of a tree that
has since moved — and an `accept` test decides which candidate really is the artefact
(for the samples of a run: the manifest whose sha256 the run recorded).

`run_samples` is the one reader of a run's samples manifest (the evaluator and the
server both use it), `PromptSettings` what the prompts are built with (from the samples
manifest, else the defaults of the samples stage — one place), `find_data_dir` the
prepared dataset a run was made from.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from recalign.constants import MANIFEST_FILE
from recalign.errors import ConfigError, RecalignError

logger = logging.getLogger(__name__)

# How many trailing parts of a recorded path are tried under the run's ancestors when
# the path itself is gone (a moved tree): `samples`, `demo/samples`, `runs/demo/samples`.
_MAX_TAIL = 3
# Where manifests record the prepared dataset they were made from.
DATA_KEYS = ("data_dir", "data_path", "data", "dataset_dir", "dataset_path", "dataset")
ITEMS_FILE = "items.parquet"


# --- recording and finding paths -----------------------------------------------------
def recorded_path(target: str | Path, directory: str | Path) -> str:
    """How a manifest in `directory` records `target` (see the module docstring)."""
    target_abs = os.path.abspath(target)
    try:
        relative = os.path.relpath(target_abs, os.path.abspath(directory))
    except ValueError:  # another drive (Windows)
        return target_abs
    ups = 0
    for part in Path(relative).parts:
        if part != os.pardir:
            break
        ups += 1
    return relative if ups <= 1 else target_abs


def _tail_parts(path: Path) -> list[str]:
    return [p for p in Path(os.path.normpath(path)).parts if p not in (os.pardir, os.curdir)][
        1 if path.is_absolute() else 0 :
    ]


def recorded_candidates(value: str, directory: str | Path) -> Iterator[Path]:
    """Where the path `value`, recorded by a manifest in `directory`, may be now (in order)."""
    path = Path(value).expanduser()
    directory = Path(os.path.abspath(directory))
    ancestors = [directory, *directory.parents]
    tail = _tail_parts(path)

    def moved(places: list[Path]) -> Iterator[Path]:
        # A moved or copied tree: the path's last parts under these places, nearest first.
        for place in places:
            for n in range(1, min(_MAX_TAIL, len(tail)) + 1):
                yield place.joinpath(*tail[-n:])

    if path.is_absolute():
        # A copy of a whole tree reads its own copy first (the tree as `recorded_path`
        # sees it: the directory and its parent), then the recorded place.
        yield from moved(ancestors[:2])
        yield path
    else:
        yield directory / path  # how recalign records a path now
        # Older versions stored the path relative to the working directory of the time,
        # which was (for `runs/demo/samples` in `runs/demo/train`) an ancestor of the run.
        yield from (a / path for a in directory.parents)
        yield Path.cwd() / path
    yield from moved(ancestors)


def find_recorded(value: str, directory: str | Path, accept: Callable[[Path], bool]) -> Path | None:
    """The first candidate for the recorded `value` that `accept` takes, else None."""
    seen: set[str] = set()
    for candidate in recorded_candidates(value, directory):
        key = os.path.normpath(candidate)
        if key in seen:
            continue
        seen.add(key)
        if accept(candidate):
            return Path(key)
    return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _sha256(path: Path) -> str | None:
    from recalign.manifest import file_sha256

    try:
        return file_sha256(path)
    except OSError:
        return None


# --- the samples of a run ------------------------------------------------------------
@dataclass(frozen=True)
class RunSamples:
    """The samples directory a run was trained on (None when it cannot be found)."""

    directory: Path | None
    manifest: dict[str, Any] = field(default_factory=dict)
    # False when the manifest found is not byte-identical to the one the run recorded.
    verified: bool = True


def _is_samples(candidate: Path) -> bool:
    manifest = _read_json(candidate / MANIFEST_FILE)
    return manifest is not None and manifest.get("kind") == "samples"


def run_samples(run_dir: str | Path, manifest: dict[str, Any]) -> RunSamples:
    """The samples a run was trained on, found from any working directory.

    The run records the directory (`samples_dir`) and the sha256 of its manifest
    (`samples_manifest_sha256`): a candidate with that manifest wins; without one, the
    first samples directory found is used with a warning. A run that records no samples
    directory (not made by `recalign train`) gives an empty `RunSamples` silently.
    """
    value = manifest.get("samples_dir")
    if not isinstance(value, str) or not value:
        return RunSamples(None)
    expected = manifest.get("samples_manifest_sha256")

    def same(candidate: Path) -> bool:
        if not _is_samples(candidate):
            return False
        return not expected or _sha256(candidate / MANIFEST_FILE) == expected

    found = find_recorded(value, run_dir, same)
    verified = True
    if found is None:
        found = find_recorded(value, run_dir, _is_samples)
        verified = False
        if found is not None:
            logger.warning(
                "the samples manifest at %s is not the one %s was trained on (its sha256 "
                "differs from the recorded %s…): using it anyway",
                found,
                run_dir,
                str(expected)[:12],
            )
    if found is None:
        logger.warning(
            "cannot find the samples directory of %s (recorded as %s): prompt settings "
            "fall back to the defaults, and the catalogue check to the dataset hash",
            run_dir,
            value,
        )
        return RunSamples(None)
    return RunSamples(found, _read_json(found / MANIFEST_FILE) or {}, verified)


# --- prompt settings -----------------------------------------------------------------
def _samples_defaults() -> Any:
    # The samples stage's own defaults (MixtureConfig): one place for all of them.
    from recalign.samples.mixture import MixtureConfig

    return MixtureConfig()


def default_max_history() -> int:
    return int(_samples_defaults().max_history)


@dataclass(frozen=True)
class PromptSettings:
    """What evaluation and serving prompts are built with.

    The defaults are those of the samples stage (`recalign.samples.mixture.MixtureConfig`);
    a run or a samples directory supplies its own. `templates` are extra template files
    (absolute paths) that replace the shipped templates of their tasks.
    """

    item_repr: str = field(default_factory=lambda: str(_samples_defaults().item_repr))
    max_history: int = field(default_factory=default_max_history)
    id_seed: int = field(default_factory=lambda: int(_samples_defaults().id_seed))
    templates: tuple[str, ...] = ()
    separator: str = field(default_factory=lambda: str(_samples_defaults().separator))
    source: str = "defaults"  # where the settings came from, for metrics.json

    @classmethod
    def from_samples(cls, samples: RunSamples, *, item_repr: str | None = None) -> PromptSettings:
        """The settings of a samples manifest (defaults for what it does not say).

        `item_repr` (a run's own record) wins over the samples manifest's.
        """
        manifest = samples.manifest
        if not manifest:
            return cls() if item_repr is None else cls(item_repr=item_repr)
        config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
        defaults = cls()

        def pick(key: str, default: Any) -> Any:
            value = manifest.get(key, config.get(key))
            return default if value is None else value

        return cls(
            item_repr=str(item_repr or pick("item_repr", defaults.item_repr)),
            max_history=int(pick("max_history", defaults.max_history)),
            id_seed=int(pick("id_seed", defaults.id_seed)),
            templates=_template_files(config.get("templates") or [], samples.directory),
            separator=str(pick("separator", defaults.separator)),
            source=f"samples {samples.directory}" if samples.directory else "samples",
        )

    @classmethod
    def from_samples_dir(cls, directory: str | Path) -> PromptSettings:
        """The settings of a samples directory (`recalign samples generate --out`)."""
        directory = Path(directory)
        manifest = _read_json(directory / MANIFEST_FILE)
        if manifest is None or manifest.get("kind") != "samples":
            raise RecalignError(
                f"{directory} is not a samples directory (no readable {MANIFEST_FILE} of kind "
                "'samples'); pass the directory `recalign samples generate --out` wrote"
            )
        return cls.from_samples(RunSamples(directory, manifest))

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
            "source": self.source,
        }


def _template_files(values: list[Any], samples_dir: Path | None) -> tuple[str, ...]:
    """The samples' extra template files, found again (they were recorded as given)."""
    found = []
    for value in values:
        path = None
        if samples_dir is not None:
            path = find_recorded(str(value), samples_dir, Path.is_file)
        elif Path(str(value)).is_file():
            path = Path(str(value))
        if path is None:
            raise RecalignError(
                f"the samples{'' if samples_dir is None else f' in {samples_dir}'} were "
                f"generated with the template file {value}, which cannot be found: prompts "
                "built without it would not be the ones the model saw; restore the file"
            )
        found.append(os.path.abspath(path))
    return tuple(found)


# --- the prepared dataset ------------------------------------------------------------
def find_data_dir(
    run_dir: str | Path, manifest: dict[str, Any], samples: RunSamples | None = None
) -> Path | None:
    """The prepared dataset a run was made from, as its (or its samples') manifest says.

    A candidate whose `data_hash` is the run's wins; else the first prepared dataset
    found (the caller compares hashes and refuses a different one); else the path as
    recorded (so the caller can say what is missing); None when nothing is recorded.
    """
    run_dir = Path(run_dir)
    samples = samples if samples is not None else run_samples(run_dir, manifest)
    places: list[tuple[dict[str, Any], Path]] = [(manifest, run_dir)]
    if isinstance(manifest.get("config"), dict):
        places.append((manifest["config"], run_dir))
    if samples.directory is not None:
        places.append((samples.manifest, samples.directory))
    expected = manifest.get("data_hash") or samples.manifest.get("data_hash")

    def is_dataset(candidate: Path) -> bool:
        return (candidate / ITEMS_FILE).is_file()

    def same(candidate: Path) -> bool:
        if not is_dataset(candidate):
            return False
        recorded = (_read_json(candidate / MANIFEST_FILE) or {}).get("data_hash")
        return not expected or not recorded or recorded == expected

    values = [
        (value, base)
        for place, base in places
        for key in DATA_KEYS
        if isinstance(value := place.get(key), str) and value
    ]
    for accept in (same, is_dataset):
        for value, base in values:
            found = find_recorded(value, base, accept)
            if found is not None:
                return found
    if not values:
        return None
    value, base = values[0]
    path = Path(value)
    return path if path.is_absolute() else base / path
