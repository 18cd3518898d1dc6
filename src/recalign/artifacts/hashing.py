"""Content hashes of files, computed once per file version.

A file's sha256 is cached under the user cache (`recalign.cache.cache_dir("file-hashes")`)
keyed by what `os.stat` says about it: device, inode, size, modification and change
times (nanoseconds). Re-reading an unchanged file costs a stat and one small read;
rewriting it, replacing it (another inode) or touching it (another ctime) misses the
cache, so the bytes are hashed again. The key leaves the path out on purpose: an
artefact is written in a temporary directory and renamed into place, and a rename of
the directory changes no file's inode or times, so the hashes its writer computed
still answer its first reader.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from recalign.cache import cache_dir

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
CACHE_NAME = "file-hashes"
_memo: dict[str, str] = {}  # this process's look-ups: a stat, no cache read


class FileRecord(BaseModel):
    """What a manifest says about one file: its size and sha256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int
    sha256: str


def _stat_key(stat: os.stat_result) -> str:
    return f"{stat.st_dev}-{stat.st_ino}-{stat.st_size}-{stat.st_mtime_ns}-{stat.st_ctime_ns}"


def _cache_path(key: str) -> Path:
    inode = key.split("-")[1]
    return cache_dir(CACHE_NAME, inode[-2:].rjust(2, "0"), key)


def _read_cached(key: str) -> str | None:
    if key in _memo:
        return _memo[key]
    try:
        value = _cache_path(key).read_text().strip()
    except OSError:
        return None
    if len(value) != 64:
        return None
    _memo[key] = value
    return value


def _store(key: str, digest: str) -> None:
    _memo[key] = digest
    path = _cache_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(digest)
        tmp.replace(path)
    except OSError as error:  # a read-only cache only costs a re-hash next time
        logger.debug("cannot cache the hash of a file in %s: %s", path.parent, error)


def sha256_stream(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks (no cache)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: str | Path) -> FileRecord:
    """Size and sha256 of `path`, from the cache when the file is unchanged."""
    stat = os.stat(path)
    key = _stat_key(stat)
    digest = _read_cached(key)
    if digest is None:
        digest = sha256_stream(path)
        # Stored only if the file did not change while it was read.
        if _stat_key(os.stat(path)) == key:
            _store(key, digest)
    return FileRecord(size=stat.st_size, sha256=digest)


def file_sha256(path: str | Path) -> str:
    return file_record(path).sha256


def digest_of(records: Iterable[tuple[str, str]]) -> str:
    """One hash over named file hashes (name, sha256), in the given order."""
    digest = hashlib.sha256()
    for name, sha in records:
        digest.update(f"{name}\0{sha}\n".encode())
    return digest.hexdigest()
