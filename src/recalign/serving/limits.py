"""What one HTTP request may ask for, and how much work the server takes on at once:
the defaults of `recalign serve`'s limits, defined once.

A module of its own (pydantic only), so `recalign serve`'s options read their defaults
here without importing FastAPI.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServeLimits(BaseModel):
    """Request limits; anything beyond them is refused with a 422 and a message."""

    model_config = ConfigDict(extra="forbid")

    max_history: int = Field(100, ge=1, description="items in a history")
    max_k: int = Field(100, ge=1, description="largest k for /recommend")
    max_candidates: int = Field(200, ge=1, description="candidates in a /rank request")
    max_body_bytes: int = Field(64 * 1024, ge=256, description="request body size")
    max_text_length: int = Field(500, ge=1, description="characters in one item text")
    max_query_length: int = Field(200, ge=1, description="characters in an /items query")
    max_search_results: int = Field(100, ge=1, description="largest /items limit")
    max_fuzzy_texts: int = Field(
        64, ge=0, description="texts one request may resolve by fuzzy search (~1 ms each)"
    )
    max_new_items: int = Field(
        0,
        ge=0,
        description="items POST /items may add while serving, in all (0: it is refused)",
    )


class ServeCapacity(BaseModel):
    """Batching, queueing, timeouts and connections of the server: `create_app` and
    `ServerLimits` default to these, and so do `recalign serve`'s options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_window_ms: float = Field(
        2.0, ge=0.0, description="How long to gather concurrent requests."
    )
    max_batch: int = Field(32, ge=1, description="Requests per model call.")
    max_queue: int = Field(
        64, ge=1, description="Requests in progress at once; more get 503 + Retry-After."
    )
    request_timeout_s: float = Field(
        30.0, ge=0.001, description="Seconds to answer a request, else 503/504."
    )
    read_timeout_s: float = Field(
        10.0, ge=0.001, description="Seconds a client has to send headers and body."
    )
    keep_alive_s: int = Field(5, ge=1, description="Idle seconds per connection.")
    max_connections: int = Field(
        256, ge=1, description="Open connections; beyond it requests get 503."
    )


CAPACITY = ServeCapacity()  # the defaults
