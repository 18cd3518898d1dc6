"""The `manifest.json` of each artefact kind, as pydantic models.

Every manifest says what made the directory (versions, git revision, command), which
files it covers (`files`: size and sha256 of each, relative to the directory), one
`content_hash` over them (what downstream artefacts record to name it), and the
artefacts it was made from (`inputs`: kind, recorded path, content hash). A manifest is
written last, so a directory whose manifest verifies holds exactly what it says.

`format` is 2 since manifests became typed; an older manifest (no `format`) does not
validate, and readers say to re-run the stage that wrote it.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from recalign.artifacts.hashing import FileRecord, digest_of

FORMAT = 2


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    from recalign.manifest import package_versions

    return package_versions()


def _revision() -> str | None:
    from recalign.manifest import git_revision

    return git_revision()


def _command() -> str | None:
    return " ".join(sys.argv) if sys.argv else None


class InputRecord(BaseModel):
    """An artefact this one was made from: where it was, and its content hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    path: str  # relative to this manifest's directory when nearby (`artifacts.paths`)
    content_hash: str


class SourceFile(BaseModel):
    """A raw input file a dataset was prepared from (a CSV, a download)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    sha256: str
    size: int | None = None


class Manifest(BaseModel):
    """What every artefact's manifest holds."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    format: Literal[2] = FORMAT
    created: str = Field(default_factory=_now)
    versions: dict[str, str] = Field(default_factory=_versions)
    git_revision: str | None = Field(default_factory=_revision)
    command: str | None = Field(default_factory=_command)
    files: dict[str, FileRecord] = Field(default_factory=dict)
    content_hash: str = ""
    inputs: dict[str, InputRecord] = Field(default_factory=dict)

    # What a person runs to make this kind of artefact again (error messages say it).
    remake: ClassVar[str] = "make it again"
    # Top-level entries of the directory that the manifest does not cover.
    uncovered: ClassVar[tuple[str, ...]] = ()
    # When set, the only top-level entries it covers.
    covered_only: ClassVar[tuple[str, ...] | None] = None
    # The entries its writer makes: a directory holding only these (an interrupted write
    # of an older version) may be replaced, as may one with a manifest of the same kind.
    produces: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def covers(cls, relative: str) -> bool:
        top = relative.split("/", 1)[0]
        if cls.covered_only is not None:
            return top in cls.covered_only
        return top not in cls.uncovered and not top.startswith(".")

    def digest(self) -> str:
        """The content hash of `files`: names and sha256s, sorted by name."""
        return digest_of((name, self.files[name].sha256) for name in sorted(self.files))

    @property
    def data_hash(self) -> str | None:
        """The content hash of the dataset it was made from (its `dataset` input)."""
        record = self.inputs.get("dataset")
        return None if record is None else record.content_hash


class DatasetManifest(Manifest):
    kind: Literal["dataset"] = "dataset"
    name: str
    source: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    input_files: dict[str, SourceFile] = Field(default_factory=dict)
    report: dict[str, Any] = Field(default_factory=dict)
    domain: dict[str, str] = Field(default_factory=dict)
    stats: dict[str, Any] = Field(default_factory=dict)

    remake: ClassVar[str] = "prepare it again with `recalign data prepare ... --out DIR`"
    produces: ClassVar[tuple[str, ...]] = ("sequences.parquet", "items.parquet", "stats.json")

    @property
    def data_hash(self) -> str:
        """The dataset's content hash (the name samples, runs and metrics know it by)."""
        return self.content_hash


class SamplesManifest(Manifest):
    kind: Literal["samples"] = "samples"
    dataset: str
    preset: str
    seed: int
    family: str
    item_repr: str
    id_seed: int
    max_history: int
    separator: str
    templates: list[str] = Field(default_factory=list)  # copied template files (relative)
    template_versions: dict[str, dict[str, int]] = Field(default_factory=dict)
    domain: dict[str, str] = Field(default_factory=dict)
    shard: int | None = None
    num_shards: int | None = None
    users: int
    workers: int = 1
    tasks: list[str]
    skipped: dict[str, str] = Field(default_factory=dict)
    counts: dict[str, dict[str, int]]
    totals: dict[str, int]
    config: dict[str, Any] = Field(default_factory=dict)
    config_hash: str = ""
    merged_from: list[str] | None = None

    remake: ClassVar[str] = "generate them again with `recalign samples generate DATA --out DIR`"
    produces: ClassVar[tuple[str, ...]] = (
        "train.parquet",
        "valid.parquet",
        "test.parquet",
        "item_texts.parquet",
        "semantic_ids.parquet",  # item_repr semantic / semantic+title
        "semantic_codebook.npz",  # their centroids: codes for items added later
        "templates",
    )


class ModelManifest(Manifest):
    kind: Literal["model"] = "model"
    source: dict[str, Any] = Field(default_factory=dict)
    model_type: str | None = None
    parameters: int | None = None
    dtype: str | None = None

    remake: ClassVar[str] = "import it again with `recalign models import FILE.gguf --out DIR`"


class PromptRecord(BaseModel):
    """How a run's prompts are built: what evaluation and serving build theirs with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item_repr: str
    max_history: int
    id_seed: int
    separator: str
    templates: list[str] = Field(default_factory=list)  # copied template files (relative)
    tasks: list[str]  # the task mixture the run was trained on
    preset: str | None = None
    max_source_length: int
    semantic_ids: str | None = None  # the copied semantic_ids.parquet (item_repr semantic*)


RunStatus = Literal["running", "interrupted", "stopped", "aborted", "done"]


class RunManifest(Manifest):
    kind: Literal["run"] = "run"
    model: dict[str, Any]
    family: str
    prompt: PromptRecord
    lora: dict[str, Any] | None = None
    train_samples: int = 0
    valid_samples: int = 0
    config_hash: str = ""
    world_size: int = 1
    status: RunStatus = "running"
    steps_done: int = 0
    best_step: int | None = None
    best_eval_loss: float | None = None
    train_seconds: float | None = None
    prompt_fit: dict[str, int] | None = None

    remake: ClassVar[str] = "train it again with `recalign train ... --out DIR`"
    # Checkpoints rotate while training runs (each is checked when resumed from), the log
    # grows on resume, the data cache lives only while training.
    uncovered: ClassVar[tuple[str, ...]] = ("checkpoints", "train_log.jsonl", "data-cache")


class EvaluationManifest(Manifest):
    kind: Literal["evaluation"] = "evaluation"
    protocol: str
    split: str
    model: str
    users: int

    remake: ClassVar[str] = "evaluate again with `recalign evaluate ... --out DIR`"
    produces: ClassVar[tuple[str, ...]] = ("predictions.jsonl", "metrics.json")


class BaselineManifest(Manifest):
    kind: Literal["baseline"] = "baseline"
    name: str
    dataset: str
    config: dict[str, Any] = Field(default_factory=dict)
    config_hash: str = ""

    remake: ClassVar[str] = "fit it again with `recalign baseline NAME --data DATA --out DIR`"
    produces: ClassVar[tuple[str, ...]] = (
        "model",
        "predictions.jsonl",
        "metrics.json",
        "config.yaml",
    )


class StageRecord(BaseModel):
    """One stage of a `recalign run` directory, as the pipeline manifest lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    directory: str  # relative to the run directory
    key: str
    reused: bool
    seconds: float | None = None
    content_hash: str | None = None  # None: the stage wrote nothing (skipped)
    kind: str | None = None


class PipelineManifest(Manifest):
    kind: Literal["pipeline"] = "pipeline"
    name: str
    config: dict[str, Any] = Field(default_factory=dict)
    stages: dict[str, StageRecord] = Field(default_factory=dict)

    remake: ClassVar[str] = "run `recalign run` again"
    # The stage directories carry manifests of their own; this one records their content
    # hashes (`stages`), and its own content hash is made of them.
    covered_only: ClassVar[tuple[str, ...] | None] = ()

    def digest(self) -> str:
        return digest_of(
            (name, stage.content_hash or "") for name, stage in sorted(self.stages.items())
        )


KINDS: dict[str, type[Manifest]] = {
    cls.model_fields["kind"].default: cls
    for cls in (
        DatasetManifest,
        SamplesManifest,
        ModelManifest,
        RunManifest,
        EvaluationManifest,
        BaselineManifest,
        PipelineManifest,
    )
}
