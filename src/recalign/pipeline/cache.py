"""Stage caching, keyed on content.

A stage's key hashes its own configuration and the content hashes of the artefacts it
reads (`stage_key`), so a stage is redone whenever what it was made from changed. Its
directory is reused only when, besides the key, the output is intact: its manifest
verifies (every file's size and sha256), its content hash is the one recorded when the
stage completed, a training run finished, and a dataset's raw source files (a custom
CSV, a download) are unchanged. A missing or altered output is redone; the stages after
it see a new content hash and are redone too (unless the output came back identical).

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

from recalign.artifacts import DatasetDir, RunDir, artifact_kind, open_artifact
from recalign.errors import RecalignError
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
    content_hash: str | None = None
    """The content hash of what the stage wrote (None: it wrote nothing, e.g. skipped)."""
    kind: str | None = None
    redo_reason: str | None = None
    """Why a completed stage with this key was done again (its output was not intact)."""


def stage_key(name: str, config: Mapping[str, Any], upstream: Mapping[str, str | None]) -> str:
    """Hash of the stage's own config and the content hashes of what it reads."""
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
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):  # damaged: the stage runs again
        log.warning("%s is damaged: running the stage again", path)
        return None
    return state if isinstance(state, dict) else None


def output_problem(directory: Path, state: Mapping[str, Any]) -> str | None:
    """Why the completed stage output in `directory` cannot be reused; None if it can."""
    expected = state.get("content_hash")
    if expected is None:  # the stage wrote nothing (skipped)
        return None if artifact_kind(directory) is None else "it holds an unexpected output"
    if not directory.is_dir():
        return f"{directory} is missing"
    try:
        output = open_artifact(directory)
    except RecalignError as error:
        return str(error)
    if output.content_hash != expected:
        return f"{directory} is not the output the stage wrote (another content hash)"
    if isinstance(output, RunDir) and not output.finished:
        return f"the training run in {directory} did not finish"
    if isinstance(output, DatasetDir) and (changed := output.changed_sources()):
        return "its source changed: " + "; ".join(changed)
    return None


@dataclass(frozen=True)
class Freshness:
    reuse: bool
    resume: bool
    reason: str | None = None  # why a completed stage is done again


def freshness(directory: Path, key: str) -> Freshness:
    """Whether the stage in `directory` with this key can be reused, or resumed."""
    state = _read_state(directory)
    if not state or state.get("key") != key:
        return Freshness(reuse=False, resume=False)
    if not state.get("complete"):
        return Freshness(reuse=False, resume=True)
    problem = output_problem(directory, state)
    return Freshness(reuse=problem is None, resume=False, reason=problem)


def _output_record(directory: Path) -> tuple[str | None, str | None]:
    """(content hash, kind) of what a stage wrote; (None, None) when it wrote nothing."""
    if artifact_kind(directory) is None:
        return None, None
    output = open_artifact(directory)
    return output.content_hash, output.manifest.kind


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
    fresh: Freshness | None = None,
) -> StageResult:
    """Run `fn(directory, resume)` unless `directory` already holds this key's result.

    `record` adds fields (e.g. the time estimated beforehand) to the stage record;
    `fresh` is `freshness(directory, key)` when the caller has it already.
    """
    fresh = fresh or freshness(directory, key)
    if fresh.reuse:
        state = _read_state(directory) or {}
        log.info("%s: up to date, reusing %s", name, directory)
        return StageResult(
            name,
            directory,
            key,
            True,
            state.get("info", {}),
            content_hash=state.get("content_hash"),
            kind=state.get("kind"),
        )
    if fresh.reason:
        log.warning("%s: %s; doing it again", name, fresh.reason)
    if directory.exists() and not fresh.resume:
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_json(state_path(directory), {"stage": name, "key": key, "complete": False})
    started = time.perf_counter()
    info = dict(fn(directory, fresh.resume) or {})
    seconds = round(time.perf_counter() - started, 2)
    content_hash, kind = _output_record(directory)
    write_json(
        state_path(directory),
        {
            "stage": name,
            "key": key,
            "complete": True,
            "seconds": seconds,
            "content_hash": content_hash,
            "kind": kind,
            **(record or {}),
            "info": info,
        },
    )
    return StageResult(name, directory, key, False, info, seconds, content_hash, kind, fresh.reason)
