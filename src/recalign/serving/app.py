"""The HTTP API over a `Recommender` (FastAPI).

    GET  /health                  model, what its scores mean, catalogue size, limits, batching
    GET  /items?query=&limit=     title search (substring, then fuzzy)
    POST /recommend               {"history": [...], "k": 10} -> top-k with scores
    POST /rank                    {"history": [...], "candidates": [...]} -> candidates ranked
    POST /rate                    {"history": [...], "item": ...} -> predicted rating
    GET  /                        the try-it page;  GET /docs, /redoc, /openapi.json: API docs

Every limit (history length, k, candidates, body size, query length) is configurable
(`ServeLimits`) and enforced before the model is touched; breaking one, malformed JSON,
or naming an unknown item is a 422 whose `message` says what to change. Concurrent
requests share model calls through `MicroBatcher`; the model runs in a worker thread,
never on the event loop. Errors inside a request never stop the server.

This module deliberately has no `from __future__ import annotations`: the request
models are built per app (their limits are configuration), and FastAPI must see them
as real classes, not strings.
"""

import json
import logging
from collections.abc import Hashable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from recalign import __version__
from recalign.errors import RecalignError
from recalign.serving.batching import MicroBatcher
from recalign.serving.recommender import Recommender
from recalign.serving.resolve import UnknownItemsError

logger = logging.getLogger(__name__)


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


def _error(status: int, message: str, detail: Any = None) -> JSONResponse:
    return JSONResponse({"message": message, "detail": detail or message}, status_code=status)


def _describe_validation(errors: Sequence[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` before they are parsed (pure ASGI).

    Checks Content-Length when given, and counts streamed (chunked) bodies too, so a
    client cannot make the server buffer an unbounded body.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, int(declared))
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, size)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: dict, receive: Any, send: Any, size: int) -> None:
        response = _error(
            422,
            f"request body too large ({size} bytes > limit {self.max_bytes}); "
            "send a shorter history or fewer candidates",
        )
        await response(scope, receive, send)


def create_app(
    recommender: Recommender,
    limits: ServeLimits | None = None,
    *,
    batch_window_ms: float = 2.0,
    max_batch: int = 32,
) -> FastAPI:
    """Build the FastAPI app serving `recommender` under `limits`."""
    limits = limits or ServeLimits()
    item_text = Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.max_text_length),
    ]
    # An entry is an item id (JSON integer) or an item text (JSON string).
    ItemRef = StrictInt | item_text
    History = Annotated[
        list[ItemRef],
        Field(min_length=1, max_length=limits.max_history, description="oldest first"),
    ]

    class _Request(BaseModel):
        model_config = ConfigDict(extra="forbid")
        history: History
        fuzzy: bool = Field(
            True, description="resolve texts that are not exact titles: a typo or part of a title"
        )

    class RecommendRequest(_Request):
        k: int = Field(10, ge=1, le=limits.max_k)
        exclude_history: bool = Field(True, description="never recommend history items")

    class RankRequest(_Request):
        candidates: Annotated[list[ItemRef], Field(min_length=1, max_length=limits.max_candidates)]

    class RateRequest(_Request):
        item: ItemRef
        ratings: Annotated[list[float], Field(max_length=limits.max_history)] | None = Field(
            None, description="the user's ratings of the history items, aligned with it"
        )

    def run_batch(key: Hashable, payloads: Sequence[Any]) -> list[Any]:
        op = key[0]
        if op == "recommend":
            _, k, exclude = key
            return recommender.recommend_ids(payloads, k, exclude_history=exclude)
        if op == "rank":
            return recommender.rank_ids([p[0] for p in payloads], [p[1] for p in payloads])
        if op == "rate":
            return recommender.rate_ids(
                [p[0] for p in payloads], [p[1] for p in payloads], ratings=[p[2] for p in payloads]
            )
        raise ValueError(f"unknown operation {op!r}")

    batcher = MicroBatcher(run_batch, window_ms=batch_window_ms, max_batch=max_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await batcher.close()

    # FastAPIOffline: FastAPI with /docs and /redoc served from bundled Swagger UI 5 and
    # ReDoc files instead of a CDN, so the API docs work on an offline machine too.
    app = FastAPIOffline(
        title="recalign",
        version=__version__,
        description="Top-K recommendations, candidate ranking and rating prediction "
        "from a recalign run. Item entries are ids (integers) or item texts (strings).",
        lifespan=lifespan,
    )
    app.state.recommender = recommender
    app.state.limits = limits
    app.state.batcher = batcher
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        # Round-trip through JSON: pydantic puts exception objects in `ctx`.
        errors = json.loads(json.dumps(error.errors(), default=str))
        return _error(422, _describe_validation(errors), errors)

    @app.exception_handler(UnknownItemsError)
    async def _unknown(request: Request, error: UnknownItemsError) -> JSONResponse:
        detail = [
            {
                "loc": ["body", error.field],
                "msg": str(error),
                "type": "unknown_item",
                "input": error.unknown,
            }
        ]
        return _error(422, str(error), detail)

    @app.exception_handler(RecalignError)
    async def _refused(request: Request, error: RecalignError) -> JSONResponse:
        return _error(422, str(error))

    @app.exception_handler(Exception)
    async def _crashed(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error serving %s", request.url.path)
        return _error(500, f"internal error ({type(error).__name__}); the server is still running")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        page = resources.files("recalign.serving").joinpath("static/index.html").read_text()
        return HTMLResponse(page)

    @app.get("/health", summary="Liveness, the served model and the limits")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            **recommender.describe(),
            "limits": limits.model_dump(),
            "batches": batcher.batches,
            "batched_requests": batcher.requests,
        }

    default_limit = min(10, limits.max_search_results)

    @app.get("/items", summary="Search items by text")
    async def items(
        query: Annotated[str, Query(max_length=limits.max_query_length)] = "",
        limit: Annotated[int, Query(ge=1, le=limits.max_search_results)] = default_limit,
    ) -> dict[str, Any]:
        hits = await run_in_threadpool(recommender.search_items, query, limit)
        return {"query": query, "items": [hit.to_dict() for hit in hits]}

    async def _resolve(entries: list, fuzzy: bool, field: str = "history") -> list:
        # Fuzzy search is pure Python over the catalogue: keep it off the event loop.
        return await run_in_threadpool(recommender.resolve, entries, fuzzy=fuzzy, field=field)

    @app.post("/recommend", summary="Top-k items after a history")
    async def recommend(body: RecommendRequest) -> dict[str, Any]:
        history = await _resolve(body.history, body.fuzzy)
        ids = [h.item_id for h in history]
        items = await batcher.submit(("recommend", body.k, body.exclude_history), ids)
        return {"items": [r.to_dict() for r in items], "history": [h.to_dict() for h in history]}

    @app.post("/rank", summary="Rank candidate items for a history")
    async def rank(body: RankRequest) -> dict[str, Any]:
        history = await _resolve(body.history, body.fuzzy)
        candidates = await _resolve(body.candidates, body.fuzzy, field="candidates")
        payload = ([h.item_id for h in history], [c.item_id for c in candidates])
        items = await batcher.submit(("rank",), payload)
        return {
            "items": [r.to_dict() for r in items],
            "history": [h.to_dict() for h in history],
            "candidates": [c.to_dict() for c in candidates],
        }

    @app.post("/rate", summary="Predict the rating of an item")
    async def rate(body: RateRequest) -> dict[str, Any]:
        history = await _resolve(body.history, body.fuzzy)
        item = (await _resolve([body.item], body.fuzzy, field="item"))[0]
        if body.ratings is not None and len(body.ratings) != len(history):
            return _error(
                422,
                f"ratings must align with history ({len(body.ratings)} ratings for "
                f"{len(history)} items)",
            )
        payload = ([h.item_id for h in history], item.item_id, body.ratings)
        value = await batcher.submit(("rate",), payload)
        return {"item": item.to_dict(), "rating": value, "history": [h.to_dict() for h in history]}

    return app
