"""Downloads against a local HTTP server (127.0.0.1, never the internet)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path
from typing import ClassVar

import pytest

from recalign.data import registry
from recalign.data.download import cache_dir, fetch_file
from recalign.data.prepare import prepare_dataset
from recalign.data.registry import RemoteFile
from recalign.errors import DownloadError
from tests.factories import write_ml100k

PAYLOAD = b"hello recalign\n" * 100


class _Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    truncate: ClassVar[set[str]] = set()
    hits: ClassVar[dict[str, int]] = {}

    def do_GET(self):
        name = self.path.lstrip("/")
        self.hits[name] = self.hits.get(name, 0) + 1
        body = self.files.get(name)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # An interrupted transfer: promise the whole body, send half, hang up.
        self.wfile.write(body[: len(body) // 2] if name in self.truncate else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.files, _Handler.truncate, _Handler.hits = {}, set(), {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_good_file_is_accepted_and_cached(server, tmp_path):
    base, handler = server
    handler.files["good.txt"] = PAYLOAD
    remote = RemoteFile(f"{base}/good.txt", _sha(PAYLOAD))
    record = fetch_file(remote, tmp_path, retries=0)
    assert Path(record["path"]).read_bytes() == PAYLOAD
    assert record["sha256"] == _sha(PAYLOAD) and record["pinned"]
    fetch_file(remote, tmp_path, retries=0)  # second call uses the cache
    assert handler.hits["good.txt"] == 1


def test_corrupt_file_is_retried_rejected_and_not_cached(server, tmp_path):
    base, handler = server
    handler.files["bad.txt"] = PAYLOAD + b"tampered"
    remote = RemoteFile(f"{base}/bad.txt", _sha(PAYLOAD))
    with pytest.raises(DownloadError, match="sha256 check after 2 attempt"):
        fetch_file(remote, tmp_path, retries=1)
    assert handler.hits["bad.txt"] == 2
    assert list(tmp_path.iterdir()) == []  # nothing left behind, not even a temp file


def test_interrupted_download_is_never_used(server, tmp_path):
    base, handler = server
    handler.files["cut.txt"] = PAYLOAD
    handler.truncate.add("cut.txt")
    remote = RemoteFile(f"{base}/cut.txt", _sha(PAYLOAD))
    with pytest.raises(DownloadError):
        fetch_file(remote, tmp_path, retries=0)
    assert list(tmp_path.iterdir()) == []


def test_corrupted_cache_is_downloaded_again(server, tmp_path):
    base, handler = server
    handler.files["good.txt"] = PAYLOAD
    remote = RemoteFile(f"{base}/good.txt", _sha(PAYLOAD))
    fetch_file(remote, tmp_path, retries=0)
    (tmp_path / "good.txt").write_bytes(b"bit rot")
    fetch_file(remote, tmp_path, retries=0)
    assert (tmp_path / "good.txt").read_bytes() == PAYLOAD
    assert handler.hits["good.txt"] == 2


def test_unpinned_hash_is_recorded(server, tmp_path, caplog):
    base, handler = server
    handler.files["new.txt"] = PAYLOAD
    record = fetch_file(RemoteFile(f"{base}/new.txt"), tmp_path, retries=0)
    assert record["sha256"] == _sha(PAYLOAD) and not record["pinned"]
    assert _sha(PAYLOAD) in caplog.text


def test_missing_file_is_reported(server, tmp_path):
    base, _ = server
    with pytest.raises(DownloadError, match="could not download"):
        fetch_file(RemoteFile(f"{base}/nope.txt", _sha(b"")), tmp_path, retries=0)


def test_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RECALIGN_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"


def test_prepare_downloads_into_the_cache(server, tmp_path, monkeypatch):
    base, handler = server
    source = write_ml100k(
        tmp_path / "build" / "ml-100k",
        [(1, 1, 5, 1), (1, 2, 4, 2), (1, 3, 3, 3)],
        [(1, "A (1990)"), (2, "B (1991)"), (3, "C (1992)")],
    )
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in source.iterdir():
            bundle.write(path, f"ml-100k/{path.name}")
    data = archive.read_bytes()
    handler.files["ml-100k.zip"] = data
    spec = dataclasses.replace(
        registry.DATASETS["movielens-100k"],
        downloads=(RemoteFile(f"{base}/ml-100k.zip", _sha(data), unzip=True),),
    )
    monkeypatch.setitem(registry.DATASETS, "movielens-100k", spec)
    monkeypatch.setenv("RECALIGN_CACHE", str(tmp_path / "cache"))
    ds = prepare_dataset("movielens-100k", tmp_path / "out")
    assert ds.sequences["items"].to_list() == [[1, 2, 3]]
    assert (tmp_path / "cache" / "movielens-100k" / "ml-100k" / "u.data").is_file()
    downloads = ds.manifest["source"]["downloads"]
    assert downloads[0]["sha256"] == _sha(data)
