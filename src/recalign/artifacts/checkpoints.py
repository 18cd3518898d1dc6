"""Where a run keeps its checkpoints, and which is the latest.

Here rather than in `recalign.training`: loading a run's weights (`recalign.models`)
and resuming a run (`recalign.training`) both need it.
"""

from __future__ import annotations

import re
from pathlib import Path

CHECKPOINTS_DIR = "checkpoints"
# HF Trainer names checkpoints `checkpoint-N`; its resume, rotation and best-model logic
# rely on that name, so we keep it rather than rename behind its back.
CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_dirs(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = CHECKPOINT_NAME.match(path.name)
        # trainer_state.json is written last: without it the checkpoint is incomplete.
        if match and path.is_dir() and (path / "trainer_state.json").is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def last_checkpoint(run_dir: str | Path) -> Path | None:
    found = checkpoint_dirs(run_dir)
    return found[-1][1] if found else None
