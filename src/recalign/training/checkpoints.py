"""Where a run keeps its checkpoints, and which is the latest (`recalign.artifacts`)."""

from __future__ import annotations

from recalign.artifacts.checkpoints import (
    CHECKPOINT_NAME as _CHECKPOINT,
)
from recalign.artifacts.checkpoints import (
    CHECKPOINTS_DIR,
    checkpoint_dirs,
    last_checkpoint,
)

__all__ = ["CHECKPOINTS_DIR", "_CHECKPOINT", "checkpoint_dirs", "last_checkpoint"]
