"""Where a run keeps its checkpoints, which is the latest, and which one a resume can trust.

A checkpoint is verified before a resume loads it: every file is opened and its
structure checked (JSON parsed; a safetensors header read and the file's size compared
with the tensors it declares; a torch pickle's zip directory and pickle read, tensors
memory-mapped, not read). That catches what a killed writer, a full disk or a bad copy
leaves behind — truncated, empty or garbage files — in milliseconds even for a 500 MB
model (bench/RESULTS.md, "Checkpoint verification"). It does not hash the tensor bytes:
a bit flip inside a tensor passes, as it would pass the Trainer.

`resume_point` picks the newest checkpoint that verifies and moves each newer
one that does not aside to `checkpoints/corrupt-checkpoint-N` (kept for inspection; out
of the Trainer's `checkpoint-*` rotation), saying which file was wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Where checkpoints are and the checks of one file live with the artefacts (loading a
# run's weights needs them too); re-exported here for the training code and its tests.
from recalign.artifacts.checkpoints import (
    CHECKPOINT_NAME as _CHECKPOINT,
)
from recalign.artifacts.checkpoints import (
    CHECKPOINTS_DIR,
    TRAINER_STATE,
    CorruptCheckpointError,
    checkpoint_dirs,
    last_checkpoint,
    verify_file,
    verify_json,
    verify_model_files,
    verify_safetensors,
    verify_torch_file,
)
from recalign.errors import RecalignError

logger = logging.getLogger(__name__)

CORRUPT_PREFIX = "corrupt-"
# What a resume loads besides the weights (`save_only_model` is never set).
REQUIRED_STATE = ("optimizer.pt", "scheduler.pt")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "adapter_model.safetensors",
    "pytorch_model.bin",
    "adapter_model.bin",
)

__all__ = [
    "CHECKPOINTS_DIR",
    "CORRUPT_PREFIX",
    "TRAINER_STATE",
    "CorruptCheckpointError",
    "ResumePoint",
    "checkpoint_dirs",
    "checkpoint_problem",
    "last_checkpoint",
    "resume_point",
    "verify_checkpoint",
    "verify_file",
    "verify_json",
    "verify_model_files",
    "verify_safetensors",
    "verify_torch_file",
]


# --- verifying a checkpoint --------------------------------------------------------------
def verify_checkpoint(path: str | Path) -> None:
    """Raise `CorruptCheckpointError` (naming the file) unless `path` can be resumed from.

    Checks that the files a resume loads are present and each is structurally sound: the
    trainer state (whose step must be the directory's), the weights (every shard of a
    sharded model), optimizer, scheduler, RNG and scaler states, and the JSON configs.
    """
    path = Path(path)
    state = verify_json(path / TRAINER_STATE) if (path / TRAINER_STATE).is_file() else None
    if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
        raise CorruptCheckpointError(path / TRAINER_STATE, "missing, or without a global_step")
    match = _CHECKPOINT.match(path.name)
    if match and state["global_step"] != int(match.group(1)):
        raise CorruptCheckpointError(
            path / TRAINER_STATE,
            f"records step {state['global_step']}, not the directory's {match.group(1)}",
        )
    weights = [path / name for name in WEIGHT_FILES if (path / name).is_file()]
    if not weights:
        raise CorruptCheckpointError(path, f"no model weights (none of {', '.join(WEIGHT_FILES)})")
    for name in REQUIRED_STATE:
        if not (path / name).is_file():
            raise CorruptCheckpointError(path / name, "missing")
    for file in sorted(path.iterdir()):
        if file.name != TRAINER_STATE and file.is_file():
            verify_file(file)
    for index in (p for p in weights if p.name.endswith(".index.json")):
        shards = set((verify_json(index) or {}).get("weight_map", {}).values())
        for shard in sorted(shards):
            if not (path / shard).is_file():
                raise CorruptCheckpointError(path / shard, f"missing (listed in {index.name})")


def checkpoint_problem(path: str | Path) -> CorruptCheckpointError | None:
    """What is wrong with a checkpoint, or None when it verifies."""
    try:
        verify_checkpoint(path)
    except CorruptCheckpointError as error:
        return error
    except OSError as error:
        return CorruptCheckpointError(Path(path), f"cannot be read ({error})")
    return None


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint a resume starts from, and the newer ones skipped as damaged."""

    checkpoint: Path
    skipped: tuple[CorruptCheckpointError, ...] = ()

    @property
    def step(self) -> int:
        return int(self.checkpoint.name.rsplit("-", 1)[-1])

    def facts(self) -> dict[str, Any]:
        """What the training log's resume marker records."""
        facts: dict[str, Any] = {"checkpoint": self.checkpoint.name}
        if self.skipped:
            facts["skipped"] = [str(error) for error in self.skipped]
        return facts


def resume_point(run_dir: str | Path, *, move_aside: bool = True) -> ResumePoint | None:
    """The newest checkpoint of a run that verifies; None when the run has none at all.

    Each newer checkpoint that fails is reported (a warning naming the file and why) and,
    with `move_aside`, renamed to `corrupt-checkpoint-N`, so the resumed Trainer neither
    rotates nor overwrites it, and `last_checkpoint` no longer returns it. When every
    checkpoint fails, nothing is moved and a `RecalignError` lists them all.
    """
    found = checkpoint_dirs(run_dir)
    skipped: list[tuple[Path, CorruptCheckpointError]] = []
    for _step, path in reversed(found):
        problem = checkpoint_problem(path)
        if problem is None:
            for bad, error in skipped:
                logger.warning("skipping checkpoint %s: %s", bad.name, error)
                if move_aside:
                    _move_aside(bad)
            if skipped:
                logger.warning("resuming from the previous good checkpoint, %s", path.name)
            return ResumePoint(path, tuple(error for _, error in skipped))
        skipped.append((path, problem))
    if not skipped:
        return None
    listed = "\n".join(f"  {error}" for _, error in skipped)
    raise RecalignError(
        f"no checkpoint of {run_dir} can be resumed from; each one has a damaged file:\n"
        f"{listed}\nStart the run again (another --out, or delete this one)."
    )


def _move_aside(path: Path) -> None:
    target = path.with_name(CORRUPT_PREFIX + path.name)
    number = 1
    while target.exists():  # the same step went bad twice
        number += 1
        target = path.with_name(f"{CORRUPT_PREFIX}{path.name}.{number}")
    path.rename(target)
    logger.warning("moved %s aside to %s", path.name, target.name)
