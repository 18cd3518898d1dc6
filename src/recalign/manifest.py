"""`manifest.json` for every artefact directory: what made it, from what, with what."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from recalign.constants import MANIFEST_FILE
from recalign.version import __version__

_TRACKED_PACKAGES = (
    "numpy",
    "polars",
    "pyarrow",
    "torch",
    "transformers",
    "tokenizers",
    "peft",
    "accelerate",
)


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def files_sha256(paths: Iterable[str | Path]) -> str:
    """One hash over several files, in the given order, names excluded."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def config_hash(config: Mapping[str, Any]) -> str:
    payload = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"recalign": __version__, "python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_revision() -> str | None:
    """The revision of the recalign source tree, when it is a git checkout."""
    source_dir = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=source_dir,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def build_manifest(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "git_revision": git_revision(),
        "command": " ".join(sys.argv) if sys.argv else None,
        **fields,
    }


def write_json(path: str | Path, payload: Any) -> None:
    """Write JSON atomically, so a killed process never leaves half a file."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


def write_manifest(directory: str | Path, manifest: Mapping[str, Any]) -> Path:
    path = Path(directory) / MANIFEST_FILE
    write_json(path, dict(manifest))
    return path


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        from recalign.errors import RecalignError

        raise RecalignError(
            f"{directory} has no {MANIFEST_FILE}: not a recalign artefact directory"
        )
    from recalign.fileio import read_json_object

    return read_json_object(path)
