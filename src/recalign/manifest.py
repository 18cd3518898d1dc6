"""What every manifest records about how it was made (versions, git revision), config
hashes, and atomic JSON writes. The manifests themselves are in `recalign.artifacts`."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

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


def write_json(path: str | Path, payload: Any) -> None:
    """Write JSON atomically, so a killed process never leaves half a file; the temporary
    name is unique, so two writers never write into one temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(3)}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
