"""Typed artefacts: what each stage's directory holds, verified by content.

Every stage writes a directory with a `manifest.json` (`manifests`: one pydantic model
per kind) that lists the size and sha256 of each file it covers and is written last;
`dirs` has one class per directory that knows its paths and opens it only when every
file is the one recorded (`store.verify`, hashes cached in `hashing`). Downstream
artefacts record the content hashes of their inputs (samples <- dataset, run <- samples
+ dataset, evaluation <- run + dataset, baseline <- dataset) and find them again from
any working directory (`paths`). Writers commit a whole directory at once under an
exclusive lock (`store.staged_output`); see docs/pipeline.md, "Artefacts".
"""

from recalign.artifacts.dirs import (
    BaselineDir,
    DatasetDir,
    EvaluationDir,
    ModelDir,
    PipelineDir,
    RunDir,
    SamplesDir,
    find_input,
    open_artifact,
)
from recalign.artifacts.hashing import FileRecord, file_record, file_sha256
from recalign.artifacts.manifests import (
    BaselineManifest,
    DatasetManifest,
    EvaluationManifest,
    InputRecord,
    Manifest,
    ModelManifest,
    PipelineManifest,
    PromptRecord,
    RunManifest,
    SamplesManifest,
    SourceFile,
    StageRecord,
)
from recalign.artifacts.paths import find_recorded, recorded_path
from recalign.artifacts.prompt import PromptSettings
from recalign.artifacts.store import (
    ArtifactBusyError,
    ArtifactError,
    ArtifactFileError,
    artifact_kind,
    open_manifest,
    output_lock,
    read_manifest,
    seal,
    staged_output,
    verify,
)

__all__ = [
    "ArtifactBusyError",
    "ArtifactError",
    "ArtifactFileError",
    "BaselineDir",
    "BaselineManifest",
    "DatasetDir",
    "DatasetManifest",
    "EvaluationDir",
    "EvaluationManifest",
    "FileRecord",
    "InputRecord",
    "Manifest",
    "ModelDir",
    "ModelManifest",
    "PipelineDir",
    "PipelineManifest",
    "PromptRecord",
    "PromptSettings",
    "RunDir",
    "RunManifest",
    "SamplesDir",
    "SamplesManifest",
    "SourceFile",
    "StageRecord",
    "artifact_kind",
    "file_record",
    "file_sha256",
    "find_input",
    "find_recorded",
    "open_artifact",
    "open_manifest",
    "output_lock",
    "read_manifest",
    "recorded_path",
    "seal",
    "staged_output",
    "verify",
]
