"""The one user cache directory: downloads, item tries, stage timings.

`$RECALIGN_CACHE` when set (tests and shared machines point it elsewhere), else the
platform's user cache directory for recalign (`~/.cache/recalign` on Linux, honouring
`$XDG_CACHE_HOME`). Each user keeps its own sub-directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from recalign.constants import CACHE_DIR_ENV


def cache_dir(*parts: str) -> Path:
    """The cache directory (not created), or a path inside it."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        root = Path(env).expanduser()
    else:
        import platformdirs

        root = Path(platformdirs.user_cache_dir("recalign"))
    return root.joinpath(*parts)
