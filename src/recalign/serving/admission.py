"""Load shedding: a bounded number of requests in the server, each with a deadline.

A model thread serves a few requests per second; an unbounded queue in front of it
turns a burst into minutes of latency for everyone (and work done for clients that
gave up long ago). So the server admits at most `capacity` requests at once — being
resolved, waiting for the model or in a model call — and answers the next one at once
with a 503 and a `Retry-After`, and every admitted request carries a deadline: work
whose deadline passed while it waited is never started (503), and a request still
unanswered at its deadline gets a 504 instead of its late result.

Everything here runs on the event loop thread, so the counters need no lock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Overloaded(Exception):
    """The server is full or a request waited past its deadline: retry later (503)."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, int(retry_after_s))


class DeadlineExceeded(Exception):
    """A started request did not finish before its deadline (504)."""


class Deadline:
    """A point in time (monotonic clock) by which a request must be answered."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.at = self.started + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def waited(self) -> float:
        return time.monotonic() - self.started


class AdmissionGate:
    """Admit at most `capacity` requests at once; refuse the rest with `Overloaded`."""

    def __init__(self, capacity: int, *, timeout_s: float, retry_after_s: int = 1) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if not (timeout_s > 0 and math.isfinite(timeout_s)):
            raise ValueError("timeout_s must be a positive number of seconds")
        self.capacity = capacity
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.active = 0
        # Counters for /health and the tests.
        self.admitted = 0
        self.shed = 0  # refused at the door: the server was full

    def full(self) -> bool:
        return self.active >= self.capacity

    def refuse(self) -> Overloaded:
        """Count a request turned away, and the error that tells it to come back."""
        self.shed += 1
        return Overloaded(
            f"the server is busy ({self.active} requests in progress, the limit is "
            f"{self.capacity}); retry in {self.retry_after_s} s",
            self.retry_after_s,
        )

    @contextmanager
    def admit(self) -> Iterator[Deadline]:
        """Hold one of the `capacity` places for the duration of a request."""
        if self.full():
            raise self.refuse()
        self.active += 1
        self.admitted += 1
        try:
            yield Deadline(self.timeout_s)
        finally:
            self.active -= 1

    def stats(self) -> dict[str, float | int]:
        return {
            "max_queue": self.capacity,
            "in_progress": self.active,
            "request_timeout_s": self.timeout_s,
            "admitted": self.admitted,
            "shed_busy": self.shed,
        }
