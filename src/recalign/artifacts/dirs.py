"""One class per artefact directory: its paths, its verified manifest, its inputs.

    DatasetDir   sequences.parquet, items.parquet, stats.json
    SamplesDir   {train,valid,test}.parquet, item_texts.parquet, templates/
    ModelDir     a model imported from GGUF (config.json, weights, tokenizer)
    RunDir       model/, tokenizer/, base/, config.yaml, checkpoints/, train_log.jsonl
    EvaluationDir  predictions.jsonl, metrics.json
    BaselineDir  model/, predictions.jsonl, metrics.json, config.yaml
    PipelineDir  data/, samples[-P]/, train[-P]/, eval/[P/]PROTOCOL/, baselines/NAME/

`X.open(path)` reads the manifest and verifies every file it covers (a cached hash:
cheap on a re-read); the properties name the paths, so no reader spells a file name
or guesses a manifest key. An input an artefact was made from is found again through
its `InputRecord` (`find_input`): the candidate whose content hash was recorded.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from recalign.artifacts.checkpoints import CHECKPOINTS_DIR, checkpoint_dirs
from recalign.artifacts.hashing import file_record
from recalign.artifacts.manifests import (
    BaselineManifest,
    DatasetManifest,
    EvaluationManifest,
    InputRecord,
    Manifest,
    ModelManifest,
    PipelineManifest,
    RunManifest,
    SamplesManifest,
)
from recalign.artifacts.paths import find_recorded, recorded_path
from recalign.artifacts.prompt import PromptSettings
from recalign.artifacts.store import (
    ArtifactError,
    peek_manifest,
    read_manifest,
    remake_hint,
    verify,
)
from recalign.constants import (
    CONFIG_FILE,
    ITEMS_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    SEQUENCES_FILE,
    SPLITS,
    STATS_FILE,
)
from recalign.errors import IncompatibleArtifactError

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=Manifest)
D = TypeVar("D", bound="ArtifactDir")


class Member:
    """A file or folder of an artefact directory as an attribute: `items = Member(ITEMS_FILE)`
    reads as `self.path / ITEMS_FILE` on an instance."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        return self if instance is None else instance.path / self.name


class ArtifactDir(Generic[M]):
    """An artefact directory and its (verified) manifest."""

    manifest_type: ClassVar[type[Manifest]] = Manifest
    # Files the manifest must cover for the directory to be of this kind.
    required: ClassVar[tuple[str, ...]] = ()

    def __init__(self, path: str | Path, manifest: M) -> None:
        self.path = Path(path)
        self.manifest = manifest

    @classmethod
    def open(cls: type[D], path: str | Path, *, check_files: bool = True) -> D:
        """The artefact at `path`; refuses a missing, foreign, older or altered one."""
        path = Path(path)
        manifest = read_manifest(path, cls.manifest_type)
        missing = [name for name in cls.required if name not in manifest.files]
        if missing:
            raise ArtifactError(
                f"{path / MANIFEST_FILE} does not list {', '.join(missing)}: not a complete "
                f"{manifest.kind}; {remake_hint(path, cls.manifest_type)}"
            )
        if check_files:
            verify(path, manifest)
        return cls(path, manifest)

    @classmethod
    def is_one(cls, path: Path, content_hash: str | None = None) -> bool:
        """Whether `path` claims to be this kind (with this content hash); unverified."""
        raw = peek_manifest(path)
        if raw is None or raw.get("kind") != cls.manifest_type.model_fields["kind"].default:
            return False
        return content_hash is None or raw.get("content_hash") == content_hash

    @property
    def content_hash(self) -> str:
        return self.manifest.content_hash

    def input_dir(self, role: str, cls: type[ArtifactDir], flag: str = "--data") -> Path:
        """Where the input `role` (of kind `cls`) this artefact recorded is now: the
        directory with the recorded content hash; an error saying to pass `flag`."""
        record = self.manifest.inputs.get(role)
        if record is None:
            raise ArtifactError(
                f"{self.path / MANIFEST_FILE} does not record its {role}: pass it with {flag}"
            )
        found = find_input(self.path, record, cls)
        if found is None and (other := find_input(self.path, record, cls, any_version=True)):
            raise IncompatibleArtifactError(
                f"{other} is not the {role} {self.path} was made from (its content hash is "
                f"not the recorded {record.content_hash[:12]}…: changed or made again since); "
                f"pass the {role} it was made from with {flag}"
            )
        if found is None:
            raise ArtifactError(
                f"cannot find the {role} {self.path} was made from (recorded as {record.path}, "
                f"content hash {record.content_hash[:12]}…): pass it with {flag}"
            )
        return found

    def record_for(self, directory: str | Path) -> InputRecord:
        """How an artefact written to `directory` records this one as its input."""
        return InputRecord(
            kind=self.manifest.kind,
            path=recorded_path(self.path, directory),
            content_hash=self.content_hash,
        )


def find_input(
    owner: Path, record: InputRecord, cls: type[ArtifactDir], *, any_version: bool = False
) -> Path | None:
    """Where the input `record` (of an artefact in `owner`) is now: the candidate with the
    recorded content hash; with `any_version`, else the first of that kind."""
    found = find_recorded(record.path, owner, lambda c: cls.is_one(c, record.content_hash))
    if found is None and any_version:
        found = find_recorded(record.path, owner, lambda c: cls.is_one(c))
    return found


# --- datasets -------------------------------------------------------------------------
class DatasetDir(ArtifactDir[DatasetManifest]):
    manifest_type = DatasetManifest
    required = (SEQUENCES_FILE, ITEMS_FILE)

    sequences = Member(SEQUENCES_FILE)
    items = Member(ITEMS_FILE)
    stats_file = Member(STATS_FILE)

    @property
    def data_hash(self) -> str:
        return self.content_hash

    def changed_sources(self) -> list[str]:
        """The raw input files (a CSV, a download) that changed since the dataset was
        prepared from them, or are gone: '' when none."""
        changed = []
        for role, source in self.manifest.input_files.items():
            try:
                now = file_record(source.path).sha256
            except OSError:
                changed.append(f"{role} file {source.path} is gone")
                continue
            if now != source.sha256:
                changed.append(f"{role} file {source.path} changed")
        return changed


# --- samples --------------------------------------------------------------------------
ITEM_TEXTS_FILE = "item_texts.parquet"  # item_id -> the string prompts show (for the trie)
TEMPLATES_DIR = "templates"  # copies of the template files the prompts were built with
SEMANTIC_IDS = "semantic_ids.parquet"  # item_id -> semantic id (item_repr semantic*)


class SamplesDir(ArtifactDir[SamplesManifest]):
    manifest_type = SamplesManifest
    required = (*(f"{split}.parquet" for split in SPLITS), ITEM_TEXTS_FILE)

    def split(self, name: str) -> Path:
        return self.path / f"{name}.parquet"

    item_texts = Member(ITEM_TEXTS_FILE)

    @property
    def data_hash(self) -> str | None:
        return self.manifest.data_hash

    def prompt_settings(self) -> PromptSettings:
        m = self.manifest
        return PromptSettings(
            item_repr=m.item_repr,
            max_history=m.max_history,
            id_seed=m.id_seed,
            templates=tuple(str((self.path / name).absolute()) for name in m.templates),
            separator=m.separator,
            tasks=tuple(m.tasks),
            source=f"samples {self.path}",
            codes_file=str((self.path / SEMANTIC_IDS).absolute())
            if (self.path / SEMANTIC_IDS).is_file()
            else None,
        )


# --- models ---------------------------------------------------------------------------
class ModelDir(ArtifactDir[ModelManifest]):
    manifest_type = ModelManifest
    required = ("config.json",)


# --- training runs --------------------------------------------------------------------
MODEL_DIR = "model"
TOKENIZER_DIR = "tokenizer"
BASE_DIR = "base"  # LoRA on a tiny preset: the random-init base weights
LOG_FILE = "train_log.jsonl"
DATA_CACHE_DIR = "data-cache"


class RunDir(ArtifactDir[RunManifest]):
    """A training run (`recalign train --out`)."""

    manifest_type = RunManifest

    model = Member(MODEL_DIR)

    @property
    def tokenizer(self) -> Path:
        """The tokenizer the run uses: RUN/tokenizer, else the one saved with the model."""
        saved = self.path / TOKENIZER_DIR
        return saved if saved.is_dir() else self.model

    base = Member(BASE_DIR)
    checkpoints = Member(CHECKPOINTS_DIR)
    config_file = Member(CONFIG_FILE)
    log_file = Member(LOG_FILE)

    @property
    def finished(self) -> bool:
        """Whether the run saved its best model (and the manifest covers it)."""
        return self.manifest.status == "done" and any(
            name.startswith(f"{MODEL_DIR}/") for name in self.manifest.files
        )

    def prompt_settings(self) -> PromptSettings:
        return PromptSettings.from_record(self.manifest.prompt, self.path, f"run {self.path}")

    def weights(self, which: str = "best") -> Path:
        """The directory holding the weights `which` names: "best" (RUN/model), "last"
        (the latest checkpoint) or a checkpoint ("checkpoint-N", "step-N" or "N")."""
        if which == "best":
            if not self.finished:
                raise ArtifactError(
                    f"{self.path} has no trained model (status {self.manifest.status!r}): "
                    "the run has not finished; train it (or resume it), or use its latest "
                    "checkpoint with which='last'"
                )
            return self.model
        checkpoints = checkpoint_dirs(self.path)
        if not checkpoints:
            raise ArtifactError(f"{self.path} has no checkpoints")
        if which == "last":
            return checkpoints[-1][1]
        step = which.rsplit("-", 1)[-1]
        found = [p for s, p in checkpoints if str(s) == step]
        if not found:
            have = ", ".join(p.name for _, p in checkpoints)
            raise ArtifactError(f"{self.path} has no checkpoint {which!r} (have: {have})")
        return found[0]

    def dataset_dir(self) -> Path:
        """The prepared dataset the run was trained on, found from any working directory."""
        return self.input_dir("dataset", DatasetDir)

    def samples_dir(self) -> Path | None:
        """The samples the run was trained on, if they can still be found (unverified)."""
        record = self.manifest.inputs.get("samples")
        return None if record is None else find_input(self.path, record, SamplesDir)


# --- evaluations and baselines --------------------------------------------------------
class EvaluationDir(ArtifactDir[EvaluationManifest]):
    """An evaluation (`recalign evaluate --out`, a pipeline's eval/PROTOCOL/)."""

    manifest_type = EvaluationManifest
    required = (PREDICTIONS_FILE, METRICS_FILE)

    predictions = Member(PREDICTIONS_FILE)
    metrics = Member(METRICS_FILE)


class BaselineDir(ArtifactDir[BaselineManifest]):
    """A fitted and evaluated baseline (`recalign baseline --out`, RUN/baselines/NAME/)."""

    manifest_type = BaselineManifest
    required = (PREDICTIONS_FILE, METRICS_FILE)

    model = Member(MODEL_DIR)
    predictions = Member(PREDICTIONS_FILE)
    metrics = Member(METRICS_FILE)
    config_file = Member(CONFIG_FILE)

    def dataset_dir(self) -> Path:
        """The prepared dataset the baseline was fitted on, found from any working directory."""
        return self.input_dir("dataset", DatasetDir)


# --- `recalign run` directories -------------------------------------------------------
class PipelineDir:
    """The layout of a `recalign run` directory (and its manifest, once written)."""

    DATA = "data"
    EVAL = "eval"
    BASELINES = "baselines"

    def __init__(self, path: str | Path, manifest: PipelineManifest | None = None) -> None:
        self.path = Path(path)
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | Path) -> PipelineDir:
        path = Path(path)
        manifest = read_manifest(path, PipelineManifest)
        verify(path, manifest)
        return cls(path, manifest)

    @staticmethod
    def suffix(preset: str = "") -> str:
        return f"-{preset}" if preset else ""

    @property
    def data(self) -> Path:
        return self.path / self.DATA

    def samples(self, preset: str = "") -> Path:
        return self.path / f"samples{self.suffix(preset)}"

    def train(self, preset: str = "") -> Path:
        return self.path / f"train{self.suffix(preset)}"

    def evaluation(self, protocol: str, preset: str = "") -> Path:
        return (
            self.path / self.EVAL / preset / protocol
            if preset
            else self.path / self.EVAL / protocol
        )

    @property
    def evaluations(self) -> Path:
        return self.path / self.EVAL

    def baseline(self, name: str) -> Path:
        return self.path / self.BASELINES / name

    @property
    def baselines(self) -> Path:
        return self.path / self.BASELINES

    config_file = Member(CONFIG_FILE)

    def stage_dirs(self) -> dict[str, Path]:
        """Every stage the manifest lists that wrote something: name -> directory."""
        if self.manifest is None:
            return {}
        return {
            name: self.path / stage.directory
            for name, stage in self.manifest.stages.items()
            if stage.content_hash is not None
        }

    def relative(self, directory: Path) -> str:
        return os.path.relpath(directory, self.path)


ARTIFACT_DIRS: dict[str, type[ArtifactDir]] = {
    cls.manifest_type.model_fields["kind"].default: cls
    for cls in (DatasetDir, SamplesDir, ModelDir, RunDir, EvaluationDir, BaselineDir)
}


def open_artifact(path: str | Path) -> ArtifactDir:
    """The artefact at `path`, of whatever kind its manifest says, verified."""
    kind = read_manifest(path).kind
    cls = ARTIFACT_DIRS.get(kind)
    if cls is None:
        raise ArtifactError(f"{path} holds a {kind!r} artefact, not a stage's output")
    return cls.open(path)
