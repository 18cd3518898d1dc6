"""A real uvicorn server on a loopback port: slow clients are cut off, connections are
capped, hostile bytes get 4xx, and the server keeps serving through all of it."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from recalign.serving import ItemCatalog, Recommender
from recalign.serving.app import create_app
from recalign.serving.server import ServerLimits, uvicorn_config
from tests.serving.conftest import TEXTS, FakeLLMBackend

HEADER_TIMEOUT = 0.5
MAX_CONNECTIONS = 6


@pytest.fixture(scope="module")
def server_url():
    import uvicorn

    rec = Recommender(FakeLLMBackend(len(TEXTS)), ItemCatalog(list(range(1, 13)), TEXTS))
    app = create_app(rec, read_timeout_s=HEADER_TIMEOUT)
    limits = ServerLimits(
        max_connections=MAX_CONNECTIONS, keep_alive_s=2, header_timeout_s=HEADER_TIMEOUT
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, limits))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    stop = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < stop and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=5)
    return conn


def seconds_until_closed(conn: socket.socket, trickle: bytes = b"") -> float:
    """Send `trickle` a byte every 50 ms (or nothing) until the server closes the socket."""
    started = time.monotonic()
    conn.settimeout(0.05)
    for byte in [trickle[i : i + 1] for i in range(len(trickle))] or [b""] * 100:
        try:
            if byte:
                conn.sendall(byte)
            if conn.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
    raise AssertionError("the server kept the connection open")


def test_silent_connection_is_closed_after_the_header_timeout(server_url):
    with connect(server_url) as conn:
        elapsed = seconds_until_closed(conn)
    assert HEADER_TIMEOUT * 0.8 <= elapsed < HEADER_TIMEOUT + 2


def test_trickled_request_head_is_cut_off(server_url):
    """A slowloris client: a header byte every 50 ms never completes a request."""
    head = b"POST /recommend HTTP/1.1\r\nHost: test\r\nX-Padding: " + b"a" * 200
    with connect(server_url) as conn:
        elapsed = seconds_until_closed(conn, trickle=head)
    assert elapsed < HEADER_TIMEOUT + 2


def test_trickled_body_gets_a_408_and_the_connection_closes(server_url):
    with connect(server_url) as conn:
        conn.sendall(
            b"POST /recommend HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"history": '
        )
        started = time.monotonic()
        reply = b""
        while chunk := conn.recv(4096):  # until the server closes the connection
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408"), reply
    assert b"did not arrive within" in reply
    assert time.monotonic() - started < HEADER_TIMEOUT + 2


def test_connections_beyond_the_cap_get_503_until_they_close(server_url):
    idle = [connect(server_url) for _ in range(MAX_CONNECTIONS)]
    try:
        refused = httpx.get(server_url + "/health", timeout=5)
    finally:
        for conn in idle:
            conn.close()
    assert refused.status_code == 503
    time.sleep(0.1)  # the server notices the closed sockets
    assert httpx.get(server_url + "/health", timeout=5).status_code == 200


def test_raw_hostile_bytes_over_http_get_4xx_and_the_server_stays_up(server_url):
    bodies = [
        rb'{"history": ["\ud800"]}',
        b'{"history": [1], "k": NaN}',
        b'{"history": [1], "item": 2, "ratings": [1e999]}',
        b'{"history": [' + b"[" * 3000 + b"]" * 3000 + b"]}",
        b"\xff\xfe\x00",
    ]
    with httpx.Client(base_url=server_url, timeout=10) as http:
        for raw in bodies:
            response = http.post(
                "/recommend", content=raw, headers={"content-type": "application/json"}
            )
            assert response.status_code == 422, (raw[:40], response.text)
        assert http.get("/health").json()["status"] == "ok"
        assert http.post("/recommend", json={"history": [1], "k": 2}).status_code == 200


def test_oversized_request_head_is_a_400(server_url):
    """h11 buffers at most `max_header_bytes` of an incomplete request head."""
    with connect(server_url) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20_000)
        reply = conn.recv(1024)
    assert reply.startswith(b"HTTP/1.1 400"), reply
    assert httpx.get(server_url + "/health", timeout=5).status_code == 200


def test_serve_command_passes_its_limits_to_the_app_and_uvicorn(data_dir, monkeypatch):
    from typer.testing import CliRunner

    import recalign.serving.server as server_module
    from recalign.cli.serve import app as cli

    seen = {}

    def fake_run_server(app, host, port, limits):
        seen.update(app=app, host=host, port=port, limits=limits)

    monkeypatch.setattr(server_module, "run_server", fake_run_server)
    args = ["serve", str(data_dir), "--port", "0", "--max-queue", "3", "--request-timeout", "2.5"]
    args += ["--read-timeout", "4", "--keep-alive", "7", "--max-connections", "9"]
    args += ["--max-fuzzy-texts", "5"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    gate = seen["app"].state.gate
    assert (gate.capacity, gate.timeout_s) == (3, 2.5)
    assert seen["app"].state.limits.max_fuzzy_texts == 5
    assert seen["limits"] == ServerLimits(
        max_connections=9, keep_alive_s=7, header_timeout_s=4.0, max_header_bytes=16 * 1024
    )
    config = uvicorn_config(seen["app"], "127.0.0.1", 0, seen["limits"])
    assert (config.limit_concurrency, config.timeout_keep_alive) == (9, 7)
    assert config.http.header_timeout_s == 4.0
