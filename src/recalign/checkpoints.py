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

import json
import logging
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recalign.errors import RecalignError

logger = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
# HF Trainer names checkpoints `checkpoint-N`; its resume, rotation and best-model logic
# rely on that name, so we keep it rather than rename behind its back.
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
CORRUPT_PREFIX = "corrupt-"
TRAINER_STATE = "trainer_state.json"
# What a resume loads besides the weights (`save_only_model` is never set).
REQUIRED_STATE = ("optimizer.pt", "scheduler.pt")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "adapter_model.safetensors",
    "pytorch_model.bin",
    "adapter_model.bin",
)
# `torch.save` files a resume loads (`training_args.bin` is a full pickle the Trainer
# only writes, never reads back, so it is not checked).
_TORCH_FILE = re.compile(
    r"^(optimizer\.pt|scheduler\.pt|scaler\.pt|rng_state(_\d+)?\.pth|(pytorch|adapter)_model\.bin)$"
)


class CorruptCheckpointError(RecalignError):
    """A checkpoint file that cannot be what it claims to be; names the file."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def checkpoint_dirs(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _CHECKPOINT.match(path.name)
        # trainer_state.json is written last: without it the checkpoint is incomplete.
        if match and path.is_dir() and (path / TRAINER_STATE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def last_checkpoint(run_dir: str | Path) -> Path | None:
    found = checkpoint_dirs(run_dir)
    return found[-1][1] if found else None


# --- verifying one file ----------------------------------------------------------------
def verify_json(path: Path) -> object:
    try:
        return json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptCheckpointError(path, f"not valid JSON ({error})") from None


def verify_safetensors(path: Path) -> None:
    """The header parses and the file is exactly as long as the tensors it declares."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise CorruptCheckpointError(path, f"truncated safetensors file ({size} bytes)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            raise CorruptCheckpointError(
                path,
                f"truncated or not a safetensors file (a {header_len}-byte header in {size} bytes)",
            )
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CorruptCheckpointError(path, "unreadable safetensors header") from None
    if not isinstance(header, dict):
        raise CorruptCheckpointError(path, "unreadable safetensors header")
    ends = [
        entry["data_offsets"][1]
        for name, entry in header.items()
        if name != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry
    ]
    expected = 8 + header_len + max(ends, default=0)
    if size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        raise CorruptCheckpointError(
            path, f"{what}: {size} bytes, the header declares {expected} (re-save or delete it)"
        )


def verify_torch_file(path: Path) -> None:
    """A `torch.save` zip whose pickle loads with `weights_only` (tensors memory-mapped)."""
    import torch

    try:
        with zipfile.ZipFile(path) as archive:
            size = path.stat().st_size
            for info in archive.infolist():
                if info.header_offset + info.compress_size > size:
                    raise zipfile.BadZipFile(f"{info.filename} runs past the end of the file")
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise CorruptCheckpointError(path, f"truncated or not a torch file ({error})") from None
    try:
        with _torch_safe_globals():
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError...
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise CorruptCheckpointError(
            path, f"cannot be loaded ({type(error).__name__}: {first})"
        ) from None


def _torch_safe_globals():
    """The numpy types the Trainer allows in `rng_state.pth` (see its `_load_rng_state`)."""
    import contextlib

    try:
        from transformers.trainer_pt_utils import safe_globals
    except ImportError:  # an older transformers: nothing to allow
        return contextlib.nullcontext()
    return safe_globals()


def verify_file(path: Path) -> None:
    """Verify one checkpoint file by its kind; other files are not checked."""
    if not path.is_file():
        raise CorruptCheckpointError(path, "missing")
    if path.name.endswith(".safetensors"):
        verify_safetensors(path)
    elif path.suffix == ".json":
        verify_json(path)
    elif _TORCH_FILE.match(path.name):
        verify_torch_file(path)


def verify_model_files(path: str | Path) -> None:
    """The weights and JSON configs of a model directory (RUN_DIR/model, a checkpoint),
    before a model is loaded from it: a damaged file is named, not a loader's traceback."""
    for file in sorted(Path(path).iterdir()):
        if file.is_file() and (file.name.endswith(".safetensors") or file.suffix == ".json"):
            verify_file(file)


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
