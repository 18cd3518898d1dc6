from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Where the real datasets live: $RECALIGN_DATA_DIR or ../shared/data."""
    env = os.environ.get("RECALIGN_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _stage_timings_in_a_temp_dir(tmp_path_factory):
    """`recalign run` records stage timings (and tries, downloads) in the user's cache;
    tests keep theirs apart."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECALIGN_CACHE", str(tmp_path_factory.mktemp("recalign-cache")))
        yield


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real datasets not found at {path} (set RECALIGN_DATA_DIR)")
    return path
