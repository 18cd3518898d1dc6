"""Where a run keeps its checkpoints, which is the latest, and whether a weight file is
sound.

Here rather than in `recalign.training`: loading a run's weights (`recalign.models`)
and resuming a run (`recalign.training`) both need it. The checks open each file and
check its structure (JSON parsed; a safetensors header read and the file's size
compared with the tensors it declares; a torch pickle's zip directory and pickle read,
tensors memory-mapped, not read): what a killed writer, a full disk or a bad copy
leaves behind is caught in milliseconds. `recalign.training.checkpoints` uses them to
pick the checkpoint a resume can trust.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
from pathlib import Path

from recalign.errors import RecalignError

CHECKPOINTS_DIR = "checkpoints"
# HF Trainer names checkpoints `checkpoint-N`; its resume, rotation and best-model logic
# rely on that name, so we keep it rather than rename behind its back.
CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
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
        match = CHECKPOINT_NAME.match(path.name)
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
