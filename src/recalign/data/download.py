"""Downloads with checksums, through pooch.

Files go to `$RECALIGN_CACHE/<dataset>/` (default: the user's cache dir). pooch streams
each file to a temporary name and moves it into place only after its sha256 matches,
so an interrupted or corrupt download is never used; a cached file whose hash no longer
matches is downloaded again. Failed attempts are retried, then reported.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from recalign.artifacts.hashing import file_sha256
from recalign.cache import cache_dir
from recalign.data.registry import DatasetSpec, RemoteFile
from recalign.errors import DownloadError

logger = logging.getLogger(__name__)

DEFAULT_RETRIES = 2


def fetch_file(
    remote: RemoteFile,
    directory: Path,
    *,
    retries: int = DEFAULT_RETRIES,
    progress: bool = False,
) -> dict[str, Any]:
    """Download one file into `directory` (unzipping if asked); returns what was fetched."""
    import pooch
    import requests

    directory.mkdir(parents=True, exist_ok=True)
    fetcher = pooch.create(
        path=directory,
        base_url="",
        registry={remote.filename: remote.sha256},
        urls={remote.filename: remote.url},
        retry_if_failed=retries,
    )
    processor = pooch.Unzip(extract_dir=".") if remote.unzip else None
    try:
        fetcher.fetch(remote.filename, processor=processor, progressbar=progress)
    except ValueError as error:  # pooch: checksum mismatch (the bad file is deleted)
        raise DownloadError(
            f"{remote.url} failed its sha256 check after {retries + 1} attempt(s); the file was "
            f"discarded ({error})"
        ) from error
    except requests.exceptions.RequestException as error:
        raise DownloadError(
            f"could not download {remote.url} after {retries + 1} attempt(s): {error}"
        ) from error
    path = directory / remote.filename
    seen = file_sha256(path)
    if remote.sha256 is None:
        # No pinned checksum: record the one we saw so the manifest (and a future
        # registry entry) can pin it.
        logger.warning("no pinned sha256 for %s; downloaded file has sha256 %s", remote.url, seen)
    return {
        "url": remote.url,
        "path": str(path),
        "sha256": seen,
        "pinned": remote.sha256 is not None,
    }


def fetch_dataset(
    spec: DatasetSpec,
    cache: Path | None = None,
    *,
    retries: int = DEFAULT_RETRIES,
    progress: bool = False,
) -> tuple[Path, list[dict[str, Any]]]:
    """Fetch every file of `spec`; returns the folder to read and the download records."""
    if not spec.downloads:
        raise DownloadError(f"dataset {spec.name!r} has no download source; pass --source")
    directory = (cache or cache_dir()) / spec.name
    records = [fetch_file(r, directory, retries=retries, progress=progress) for r in spec.downloads]
    return directory / spec.download_subdir if spec.download_subdir else directory, records
