"""Stage caching: a stage's directory is reused when the hash of its inputs and config
matches the one recorded when it last completed.

A stage that started with the same key but did not complete (killed, or failed) is
handed back to its function with `resume=True`, so training continues from its last
checkpoint; a stage whose key changed is cleared and run again. Earlier stages are never
touched by a later stage's failure.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recalign.manifest import config_hash, write_json

STAGE_SUFFIX = ".stage.json"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageResult:
    name: str
    directory: Path
    key: str
    reused: bool
    info: dict[str, Any]
    seconds: float | None = None
    """Wall time of the stage's function in this run (None when reused)."""


def stage_key(name: str, config: Mapping[str, Any], upstream: Mapping[str, str]) -> str:
    """Hash of the stage's own config and the keys of the stages it reads."""
    return config_hash({"stage": name, "config": dict(config), "upstream": dict(upstream)})


def state_path(directory: Path) -> Path:
    """The stage record lives beside the stage's directory, which holds only its output
    (tools such as `recalign train` refuse a non-empty output directory)."""
    return directory.parent / f".{directory.name}{STAGE_SUFFIX}"


def _read_state(directory: Path) -> dict[str, Any] | None:
    path = state_path(directory)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):  # damaged: the stage runs again
        log.warning("%s is damaged: running the stage again", path)
        return None


def is_complete(directory: Path, key: str) -> bool:
    """Whether `directory` holds the finished result of the stage with this key."""
    state = _read_state(directory)
    return bool(state and state.get("key") == key and state.get("complete"))


def mark_interrupted(name: str, directory: Path, key: str, *, resumable: bool) -> None:
    """Record that an operator stopped the stage: incomplete, so the next run with the same
    key hands it back with `resume=True` (training continues from its checkpoint)."""
    write_json(
        state_path(directory),
        {
            "stage": name,
            "key": key,
            "complete": False,
            "status": "interrupted",
            "resumable": resumable,
        },
    )


def run_stage(
    name: str,
    directory: Path,
    key: str,
    fn: Callable[[Path, bool], Mapping[str, Any] | None],
    *,
    record: Mapping[str, Any] | None = None,
) -> StageResult:
    """Run `fn(directory, resume)` unless `directory` already holds this key's result.

    `record` adds fields (e.g. the time estimated beforehand) to the stage record.
    """
    state = _read_state(directory)
    if state and state.get("key") == key and state.get("complete"):
        log.info("%s: up to date, reusing %s", name, directory)
        return StageResult(name, directory, key, True, state.get("info", {}))
    resume = bool(state and state.get("key") == key)
    if directory.exists() and not resume:
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_json(state_path(directory), {"stage": name, "key": key, "complete": False})
    started = time.perf_counter()
    info = dict(fn(directory, resume) or {})
    seconds = round(time.perf_counter() - started, 2)
    write_json(
        state_path(directory),
        {
            "stage": name,
            "key": key,
            "complete": True,
            "seconds": seconds,
            **(record or {}),
            "info": info,
        },
    )
    return StageResult(name, directory, key, False, info, seconds)
