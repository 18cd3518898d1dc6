"""The HTTP API over a `Recommender` (FastAPI).

    GET  /health                  model, what its scores mean, catalogue size, limits, batching
    GET  /items?query=&limit=     title search (substring, then fuzzy)
    POST /items                   {"items": [{"text": ...}]} -> new items, recommendable
                                  at once (an LLM run shown titles or semantic ids; off
                                  unless `max_new_items` > 0)
    POST /recommend               {"history": [...], "k": 10} -> top-k with scores
    POST /rank                    {"history": [...], "candidates": [...]} -> candidates ranked
    POST /rate                    {"history": [...], "item": ...} -> predicted rating
    GET  /                        the try-it page;  GET /docs, /redoc, /openapi.json: API docs

Every limit (history length, k, candidates, body size, text and query length, fuzzy
lookups) is configurable (`ServeLimits`) and enforced before the model is touched;
breaking one, malformed or non-strict JSON (NaN, 1e999, lone surrogates, control
characters in texts), or naming an unknown item is a 422 whose `message` says what to
change. Concurrent requests share model calls through `MicroBatcher`; the model runs
in a worker thread, never on the event loop.

Load is shed, not queued (see `admission`): at most `max_queue` requests are in
progress at once and the next gets a 503 with `Retry-After`; each has a deadline
(`request_timeout_s`) — a request whose deadline passed while it waited is never
started (503), one still running at its deadline gets a 504. A body that is not
received within `read_timeout_s` gets a 408. Errors inside a request never stop the
server, and no response names a path on the server's disk.

This module deliberately has no `from __future__ import annotations`: the request
models are built per app (their limits are configuration), and FastAPI must see them
as real classes, not strings.
"""

import asyncio
import json
import logging
import re
from collections.abc import Hashable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from recalign.errors import RecalignError
from recalign.serving.admission import AdmissionGate, DeadlineExceeded, Overloaded
from recalign.serving.batching import MicroBatcher
from recalign.serving.inputs import StrictJSONRoute, check_text, printable
from recalign.serving.limits import CAPACITY, ServeLimits
from recalign.serving.recommender import Recommender
from recalign.serving.resolve import FuzzyBudget, UnknownItemsError
from recalign.version import __version__

logger = logging.getLogger(__name__)


def _error(
    status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    # `printable`: an error may echo hostile input (a lone surrogate, inf) that JSON
    # encoding would otherwise choke on, turning a 422 into a 500.
    body = printable({"message": message, "detail": detail or message})
    return JSONResponse(body, status_code=status, headers=headers)


# Location parts pydantic adds for the branches of a union (`StrictInt | item_text`).
_BRANCH = re.compile(r"int|str|constrained-str|function-[a-z]+\[.*\]")
_WRONG_TYPE = ("int_type", "string_type")


def _where(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p != "body" and not _BRANCH.fullmatch(str(p))]
    return ".".join(parts) or "body"


def _describe_validation(errors: Sequence[dict[str, Any]]) -> str:
    """One line naming each bad field; an item entry's two union errors become one."""
    parts = []
    by_place: dict[str, list[dict[str, Any]]] = {}
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            parts.append(f"body: not valid JSON ({reason})")
        else:
            by_place.setdefault(_where(error.get("loc", ())), []).append(error)
    for where, found in by_place.items():
        specific = (
            [e for e in found if e.get("type") not in _WRONG_TYPE] if len(found) > 1 else found
        )
        if not specific:
            parts.append(f"{where}: should be an item id (integer) or an item text (string)")
        parts.extend(f"{where}: {e.get('msg', 'invalid')}" for e in specific)
    more = f" (and {len(parts) - 5} more)" if len(parts) > 5 else ""
    return "; ".join(parts[:5]) + more


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` before they are parsed (pure ASGI).

    Checks Content-Length when given, and counts streamed (chunked) bodies too, so a
    client cannot make the server buffer an unbounded body; a body not complete within
    `read_timeout_s` gets a 408, so a client cannot hold a request open by trickling it.
    """

    def __init__(self, app: Any, max_bytes: int, read_timeout_s: float = 10.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s

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
        stop_at = asyncio.get_running_loop().time() + self.read_timeout_s
        while more:
            try:
                message = await asyncio.wait_for(
                    receive(), stop_at - asyncio.get_running_loop().time()
                )
            except asyncio.TimeoutError:
                response = _error(
                    408,
                    f"the request body did not arrive within {self.read_timeout_s:g} s; "
                    "send it in one go",
                    headers={"Connection": "close"},  # the rest of the body is not awaited
                )
                await response(scope, receive, send)
                return
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


# The statuses load shedding adds, for the API docs.
_SHED_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"description": "The server is full, or the request waited past its deadline and "
          "was not started; retry after `Retry-After` seconds"},
    504: {"description": "The model did not answer within the request deadline"},
}  # fmt: skip


class ShedWhenFull:
    """Answer requests for `paths` with a 503 at once while `gate` is full (pure ASGI).

    The handlers' `gate.admit()` is what bounds the work; this only makes a refusal
    cheap — no routing, JSON parsing or validation — so a crowd of clients retrying
    against a full server does not take the CPU the model needs.
    """

    def __init__(self, app: Any, gate: AdmissionGate, paths: frozenset[str]) -> None:
        self.app = app
        self.gate = gate
        self.paths = paths

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths and self.gate.full():
            refusal = self.gate.refuse()
            headers = {"Retry-After": str(refusal.retry_after_s)}
            await _error(503, str(refusal), headers=headers)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _public_description(recommender: Recommender) -> dict[str, Any]:
    """What the served model is, without where it lives: /health is not a path oracle."""
    described = recommender.describe()
    public = {
        key: described[key]
        for key in (
            "kind",
            "model",
            "dataset",
            "family",
            "num_items",
            "added_items",
            "can_rate",
            "score",
            "served",
            "models",
        )
        if key in described
    }
    model = str(public.get("model", ""))
    # A model loaded from a local directory is named by its path: keep the last part.
    # (A hub id like "google/flan-t5-small" is no path on this machine and stays whole.)
    if model and (Path(model).is_absolute() or Path(model).exists()):
        public["model"] = Path(model).name
    return public


def create_app(
    recommender: Recommender,
    limits: ServeLimits | None = None,
    *,
    batch_window_ms: float = CAPACITY.batch_window_ms,
    max_batch: int = CAPACITY.max_batch,
    max_queue: int = CAPACITY.max_queue,
    request_timeout_s: float = CAPACITY.request_timeout_s,
    read_timeout_s: float = CAPACITY.read_timeout_s,
    retry_after_s: int = 1,
) -> FastAPI:
    """Build the FastAPI app serving `recommender` under `limits`.

    `max_queue` requests may be in progress at once (more get a 503 with
    `Retry-After: retry_after_s`); each must be answered within `request_timeout_s`;
    a request body must arrive within `read_timeout_s`.
    """
    limits = limits or ServeLimits()
    item_text = Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.max_text_length),
        AfterValidator(check_text),
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

    class NewItemText(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: item_text

    class AddItemsRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        items: Annotated[list[NewItemText], Field(min_length=1, max_length=limits.max_history)]

    class RateRequest(_Request):
        item: ItemRef
        ratings: (
            Annotated[
                list[Annotated[float, Field(allow_inf_nan=False)]],
                Field(max_length=limits.max_history),
            ]
            | None
        ) = Field(None, description="the user's ratings of the history items, aligned with it")

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
    gate = AdmissionGate(max_queue, timeout_s=request_timeout_s, retry_after_s=retry_after_s)

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
    app.state.gate = gate
    # Bodies are parsed by `inputs.parse_json` (strict numbers, strict UTF-8).
    app.router.route_class = StrictJSONRoute
    # The last added runs first: bodies are read (bounded) before a full server refuses.
    work = frozenset({"/recommend", "/rank", "/rate", "/items"})
    app.add_middleware(ShedWhenFull, gate=gate, paths=work)
    app.add_middleware(
        BodySizeLimit, max_bytes=limits.max_body_bytes, read_timeout_s=read_timeout_s
    )

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

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, error: Overloaded) -> JSONResponse:
        return _error(503, str(error), headers={"Retry-After": str(error.retry_after_s)})

    @app.exception_handler(DeadlineExceeded)
    async def _too_slow(request: Request, error: DeadlineExceeded) -> JSONResponse:
        return _error(504, str(error))

    @app.exception_handler(Exception)
    async def _crashed(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error serving %s", request.url.path)
        return _error(500, f"internal error ({type(error).__name__}); the server is still running")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        page = resources.files("recalign.serving").joinpath("static/index.html").read_text()
        return HTMLResponse(page)

    @app.get("/health", summary="Liveness, the served model, the limits and the load")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            **_public_description(recommender),
            "limits": limits.model_dump(),
            "load": {
                **gate.stats(),
                "expired_in_queue": batcher.expired,
                "timed_out": batcher.timed_out,
                "fuzzy_lookups": recommender.catalog.fuzzy_lookups,
            },
            "batches": batcher.batches,
            "batched_requests": batcher.requests,
        }

    default_limit = min(10, limits.max_search_results)

    @app.get("/items", summary="Search items by text", responses={503: _SHED_RESPONSES[503]})
    async def items(
        query: Annotated[
            str, Query(max_length=limits.max_query_length), AfterValidator(check_text)
        ] = "",
        limit: Annotated[int, Query(ge=1, le=limits.max_search_results)] = default_limit,
    ) -> dict[str, Any]:
        with gate.admit():
            hits = await run_in_threadpool(recommender.search_items, query, limit)
        return {"query": query, "items": [hit.to_dict() for hit in hits]}

    async def _resolve(
        entries: list, fuzzy: bool, budget: FuzzyBudget, field: str = "history"
    ) -> list:
        # Fuzzy search scans the catalogue: keep it off the event loop.
        return await run_in_threadpool(
            lambda: recommender.resolve(entries, fuzzy=fuzzy, field=field, budget=budget)
        )

    preloaded = recommender.added  # items the operator added at start do not count

    @app.post(
        "/items",
        summary="Add items by their text, recommendable at once",
        status_code=201,
        responses={
            403: {"description": "This server does not take new items"},
            **_SHED_RESPONSES,
        },
    )
    async def add_items(body: AddItemsRequest) -> Any:
        if limits.max_new_items == 0:
            return _error(
                403,
                "this server does not take new items (its operator starts it with "
                "--max-new-items N to allow N)",
            )
        with gate.admit():
            texts = [item.text for item in body.items]
            added = await run_in_threadpool(
                lambda: recommender.add_items(texts, up_to=preloaded + limits.max_new_items)
            )
        return {
            "items": [item.to_dict() for item in added],
            "num_items": len(recommender.catalog),
            "new_items_left": preloaded + limits.max_new_items - recommender.added,
        }

    @app.post("/recommend", summary="Top-k items after a history", responses=_SHED_RESPONSES)
    async def recommend(body: RecommendRequest) -> dict[str, Any]:
        with gate.admit() as deadline:
            budget = FuzzyBudget(limits.max_fuzzy_texts)
            history = await _resolve(body.history, body.fuzzy, budget)
            ids = [h.item_id for h in history]
            key = ("recommend", body.k, body.exclude_history)
            items = await batcher.submit(key, ids, deadline)
        return {"items": [r.to_dict() for r in items], "history": [h.to_dict() for h in history]}

    @app.post("/rank", summary="Rank candidate items for a history", responses=_SHED_RESPONSES)
    async def rank(body: RankRequest) -> dict[str, Any]:
        with gate.admit() as deadline:
            budget = FuzzyBudget(limits.max_fuzzy_texts)
            history = await _resolve(body.history, body.fuzzy, budget)
            candidates = await _resolve(body.candidates, body.fuzzy, budget, field="candidates")
            payload = ([h.item_id for h in history], [c.item_id for c in candidates])
            items = await batcher.submit(("rank",), payload, deadline)
        return {
            "items": [r.to_dict() for r in items],
            "history": [h.to_dict() for h in history],
            "candidates": [c.to_dict() for c in candidates],
        }

    @app.post("/rate", summary="Predict the rating of an item", responses=_SHED_RESPONSES)
    async def rate(body: RateRequest) -> dict[str, Any]:
        with gate.admit() as deadline:
            budget = FuzzyBudget(limits.max_fuzzy_texts)
            history = await _resolve(body.history, body.fuzzy, budget)
            item = (await _resolve([body.item], body.fuzzy, budget, field="item"))[0]
            if body.ratings is not None and len(body.ratings) != len(history):
                return _error(
                    422,
                    f"ratings must align with history ({len(body.ratings)} ratings for "
                    f"{len(history)} items)",
                )
            payload = ([h.item_id for h in history], item.item_id, body.ratings)
            value = await batcher.submit(("rate",), payload, deadline)
        return {"item": item.to_dict(), "rating": value, "history": [h.to_dict() for h in history]}

    return app
