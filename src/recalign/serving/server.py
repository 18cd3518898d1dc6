"""Running the app under uvicorn with limits on what clients may hold open.

uvicorn 0.54 (h11 protocol) offers `timeout_keep_alive` (idle time between
requests), `limit_concurrency` (connections + running requests beyond which a request
gets uvicorn's plain 503) and `h11_max_incomplete_event_size` (largest request head),
but no timeout on *receiving* a request: its keep-alive timer starts only after a
response and stops at the first byte of the next request, so a client that opens a
socket and sends nothing, or trickles a header a byte at a time, holds the socket for
ever (an operator saw 2,000 of them). `TimedH11Protocol` adds that timeout: a
connection whose request head is not complete within `header_timeout_s` of opening
(or of its previous response) is closed. The body has its own timeout in the app
(`BodySizeLimit`, a 408).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from recalign.serving.limits import CAPACITY

logger = logging.getLogger(__name__)


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections that do not send a request head in time."""

    header_timeout_s: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_timer()  # the next request's head is due in time too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        if not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request head arrived in time and is being served
        if not self.transport.is_closing():
            logger.info(
                "closing a connection that sent no complete request in %.3g s",
                self.header_timeout_s,
            )
            with contextlib.suppress(h11.LocalProtocolError):
                self.conn.send(h11.ConnectionClosed())
            self.transport.close()


@dataclass(frozen=True)
class ServerLimits:
    """What one client connection may hold: sockets, idle time, time to send a request."""

    max_connections: int = CAPACITY.max_connections  # open connections; then a 503
    keep_alive_s: int = CAPACITY.keep_alive_s  # idle time between requests on one connection
    header_timeout_s: float = CAPACITY.read_timeout_s  # time to send a complete request head
    max_header_bytes: int = 16 * 1024  # an incomplete request head buffered beyond it: a 400


def uvicorn_config(app: Any, host: str, port: int, limits: ServerLimits) -> Any:
    """A `uvicorn.Config` serving `app` under `limits`."""
    import uvicorn

    protocol = type(
        "TimedH11Protocol", (TimedH11Protocol,), {"header_timeout_s": limits.header_timeout_s}
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=limits.keep_alive_s,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        log_level="warning",
    )


def run_server(
    app: Any,
    host: str,
    port: int,
    limits: ServerLimits,
    *,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Serve `app` until interrupted (blocking)."""
    import uvicorn

    uvicorn.Server(uvicorn_config(app, host, port, limits)).run(sockets=sockets)
