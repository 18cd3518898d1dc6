"""What one HTTP request may ask for: the server's request limits, with their defaults.

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
