"""Load shedding: a full server answers 503 + Retry-After, deadlines drop stale work,
fuzzy matching has a per-request budget, and /health names no path."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from recalign.serving import ItemCatalog, Recommender
from recalign.serving.admission import Deadline, DeadlineExceeded, Overloaded
from recalign.serving.app import ServeLimits, create_app
from recalign.serving.batching import MicroBatcher, _Job
from tests.serving.conftest import TEXTS, FakeLLMBackend

JSON = {"content-type": "application/json"}


class GatedBackend(FakeLLMBackend):
    """The fake model, but every call waits until the test opens the gate."""

    def __init__(self, num_items: int) -> None:
        super().__init__(num_items)
        self.gate = threading.Event()
        self.histories: list[list[int]] = []  # what reached the model, call by call

    def recommend(self, histories, k, exclude_history):
        self.histories.extend(list(h) for h in histories)
        if not self.gate.wait(timeout=20):
            raise RuntimeError("the test never opened the gate")
        return super().recommend(histories, k, exclude_history)


def gated_rec() -> Recommender:
    catalog = ItemCatalog(list(range(1, len(TEXTS) + 1)), TEXTS)
    return Recommender(GatedBackend(len(TEXTS)), catalog)


async def until(condition, timeout: float = 10.0) -> None:
    stop = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > stop:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def asgi_client(app) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


# --- the bounded queue ------------------------------------------------------------------


def test_full_server_answers_503_with_retry_after_and_recovers():
    rec = gated_rec()
    app = create_app(rec, batch_window_ms=0, max_batch=1, max_queue=2, request_timeout_s=30)

    async def main():
        async with asgi_client(app) as http:
            admitted = [
                asyncio.create_task(http.post("/recommend", json={"history": [i], "k": 2}))
                for i in (1, 2)
            ]
            await until(lambda: app.state.gate.active == 2)
            refused = await http.post("/recommend", json={"history": [3], "k": 2})
            searched = await http.get("/items", params={"query": "lip"})  # work too: refused
            # refused before parsing: a full server spends nothing on a request's body
            unparsed = await http.post("/rank", content=b"{not json", headers=JSON)
            health = await http.get("/health")  # never refused: it is how operators look
            rec.backend.gate.set()
            return await asyncio.gather(*admitted), refused, searched, unparsed, health

    admitted, refused, searched, unparsed, health = asyncio.run(main())
    assert [r.status_code for r in admitted] == [200, 200]
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "busy" in refused.json()["message"] and "limit is 2" in refused.json()["message"]
    assert searched.status_code == 503 and unparsed.status_code == 503
    load = health.json()["load"]
    assert (load["max_queue"], load["in_progress"], load["shed_busy"]) == (2, 2, 3)
    assert [3] not in rec.backend.histories  # the refused request never reached the model
    with TestClient(app) as client:  # the server goes on serving
        assert client.post("/recommend", json={"history": [3], "k": 2}).status_code == 200
        assert client.get("/health").json()["load"]["in_progress"] == 0


def test_deadline_passed_in_queue_is_never_started_and_a_slow_call_is_a_504():
    """Request A holds the model past its deadline (504); B waits behind it past its own
    deadline and is dropped unstarted (503): the model never sees B's history."""
    rec = gated_rec()
    # 1 s: long enough for A to reach the model even on a loaded machine
    app = create_app(rec, batch_window_ms=0, max_batch=1, max_queue=8, request_timeout_s=1.0)

    async def main():
        async with asgi_client(app) as http:
            first = asyncio.create_task(http.post("/recommend", json={"history": [1], "k": 2}))
            await until(lambda: rec.backend.histories == [[1]])
            second = await http.post("/recommend", json={"history": [2], "k": 2})
            slow = await first
            rec.backend.gate.set()
            after = await http.post("/recommend", json={"history": [4], "k": 2})
            health = (await http.get("/health")).json()
            return slow, second, after, health

    slow, second, after, health = asyncio.run(main())
    assert slow.status_code == 504
    assert "did not answer within the 1 s deadline" in slow.json()["message"]
    assert second.status_code == 503 and second.headers["retry-after"] == "1"
    assert "not started" in second.json()["message"]
    assert after.status_code == 200
    assert [2] not in rec.backend.histories
    assert rec.backend.histories == [[1], [4]]
    assert (health["load"]["expired_in_queue"], health["load"]["timed_out"]) == (1, 1)


def test_worker_drops_a_job_whose_deadline_passed_while_it_waited():
    """The batcher checks the deadline when it takes a job, not only the waiting client."""

    async def main():
        batcher = MicroBatcher(lambda key, payloads: list(payloads))
        future = asyncio.get_running_loop().create_future()
        deadline = Deadline(0.001)
        await asyncio.sleep(0.01)
        started = batcher._start(_Job(("k",), 1, future, deadline))
        fresh = batcher._start(_Job(("k",), 2, asyncio.get_running_loop().create_future(), None))
        await batcher.close()
        return started, fresh, future, batcher.expired

    started, fresh, future, expired = asyncio.run(main())
    assert (started, fresh, expired) == (False, True, 1)
    assert isinstance(future.exception(), Overloaded)


def test_a_job_too_close_to_its_deadline_for_a_model_call_is_not_started():
    """Once model calls take ~0.3 s, a job that waited until 0.15 s of its 2 s were left
    would only produce a 504 after wasting a call: it is dropped unstarted instead. A
    fresh job always starts, even with a deadline shorter than a recent call: else one
    slow call could make the server refuse everything for good."""

    def slow(key, payloads):
        time.sleep(0.3)
        return list(payloads)

    async def main():
        batcher = MicroBatcher(slow, window_ms=0)
        first = await batcher.submit(("k",), "first", Deadline(30))
        waited = Deadline(2.0)
        waited.at = time.monotonic() + 0.15  # as if it had queued for 1.85 s
        try:
            await batcher.submit(("k",), "late", waited)
        except Overloaded as error:
            refused = str(error)
        fresh = await batcher.submit(("k",), "fresh", Deadline(2.0))
        with pytest.raises(DeadlineExceeded):  # started, and so a 504, not a 503
            await batcher.submit(("k",), "short", Deadline(0.2))
        await batcher.close()
        return first, refused, fresh, batcher

    first, refused, fresh, batcher = asyncio.run(main())
    assert (first, fresh) == ("first", "fresh")
    assert "too close to its 2 s deadline" in refused and "not started" in refused
    assert 0.25 < batcher.call_s < 2.0
    assert (batcher.batches, batcher.expired, batcher.timed_out) == (3, 1, 1)


# --- fuzzy matching on a budget -----------------------------------------------------------

WORDS = [
    *[
        "velvet",
        "matte",
        "gloss",
        "lash",
        "volume",
        "curl",
        "serum",
        "cream",
        "balm",
        "tonic",
        "mist",
        "clay",
        "rose",
        "mint",
    ],
    *[
        "argan",
        "coconut",
        "vanilla",
        "lavender",
        "charcoal",
        "citrus",
        "amber",
        "jasmine",
        "cedar",
        "honey",
        "oat",
    ],
    *[
        "shea",
        "cocoa",
        "aloe",
        "pearl",
        "silk",
        "satin",
        "glow",
        "shimmer",
        "radiant",
        "hydra",
        "repair",
        "night",
        "day",
    ],
    *["sheer", "bold", "nude", "coral"],
]


def near_miss_catalog(size: int = 400, seed: int = 0) -> tuple[ItemCatalog, list[str]]:
    """`size` distinct 5-word titles, and each with one character dropped (a typo)."""
    rng = np.random.default_rng(seed)
    titles: list[str] = []
    while len(titles) < size:
        title = " ".join(rng.choice(WORDS, size=5, replace=False)).title()
        if title not in titles:
            titles.append(title)
    typos = []
    for title in titles:
        cut = int(rng.integers(1, len(title) - 1))
        typos.append(title[:cut] + title[cut + 1 :])
    return ItemCatalog(list(range(1, size + 1)), titles), typos


def near_miss_rank_body(typos: list[str]) -> dict:
    return {"history": typos[:100], "candidates": typos[100:300]}


def test_rank_with_300_near_miss_titles_is_refused_before_any_fuzzy_lookup():
    """The operator's 15 KB /rank with 300 near-miss titles: over the default budget of
    64 fuzzy lookups, it is a 422 naming the way out, and no lookup is made at all."""
    catalog, typos = near_miss_catalog()
    rec = Recommender(FakeLLMBackend(len(catalog)), catalog)
    limits = ServeLimits(max_history=100, max_candidates=200)
    with TestClient(create_app(rec, limits)) as client:
        response = client.post("/rank", json=near_miss_rank_body(typos))
        assert response.status_code == 422
        message = response.json()["message"]
        assert "100 text(s) in history" in message and "at most 64" in message
        assert "/items?query=" in message
        assert catalog.fuzzy_lookups == 0
        # the budget is per request and shared by its fields: 40 + 30 > 64
        body = {"history": typos[:40], "candidates": typos[40:70]}
        response = client.post("/rank", json=body)
        assert response.status_code == 422
        assert "30 text(s) in candidates" in response.json()["message"]
        assert "40 used by earlier fields" in response.json()["message"]
        assert catalog.fuzzy_lookups == 40  # the history's, then the refusal
        assert client.get("/health").json()["load"]["fuzzy_lookups"] == 40


def test_rank_with_300_near_miss_titles_within_a_raised_budget_makes_300_lookups():
    catalog, typos = near_miss_catalog()
    rec = Recommender(FakeLLMBackend(len(catalog)), catalog)
    limits = ServeLimits(max_history=100, max_candidates=200, max_fuzzy_texts=300)
    with TestClient(create_app(rec, limits)) as client:
        response = client.post("/rank", json=near_miss_rank_body(typos))
    assert response.status_code == 200, response.text
    body = response.json()
    resolved = body["history"] + body["candidates"]
    assert [r["item_id"] for r in resolved] == list(range(1, 301))  # each typo -> its title
    assert {r["match"] for r in resolved} == {"fuzzy"}
    assert catalog.fuzzy_lookups == 300  # one per text: bounded by the budget


def test_exact_and_casefold_texts_cost_no_fuzzy_lookup():
    catalog, _ = near_miss_catalog(size=50)
    rec = Recommender(FakeLLMBackend(len(catalog)), catalog)
    limits = ServeLimits(max_history=100, max_fuzzy_texts=0)
    texts = [*catalog.texts[:10], *(t.upper() for t in catalog.texts[10:20]), 21, "22"]
    with TestClient(create_app(rec, limits)) as client:
        response = client.post("/recommend", json={"history": texts, "k": 1})
        assert response.status_code == 200, response.text
        assert client.post("/recommend", json={"history": ["Velvt"], "k": 1}).status_code == 422
    assert catalog.fuzzy_lookups == 0


# --- /health names no path ------------------------------------------------------------------


def test_health_reports_model_and_dataset_but_no_path(data_dir, rec):
    with TestClient(create_app(rec)) as client:
        response = client.get("/health")
    body = response.json()
    assert (body["model"], body["dataset"]) == ("pop", "fixture")
    assert str(data_dir) not in response.text
    assert "run_dir" not in body and "/" not in str(body.get("dataset"))


def test_health_names_a_model_loaded_from_a_directory_by_its_last_part(tmp_path):
    model_dir = tmp_path / "models" / "flan-t5-small"
    model_dir.mkdir(parents=True)
    backend = FakeLLMBackend(len(TEXTS))
    backend.name = str(model_dir)
    catalog = ItemCatalog(list(range(1, len(TEXTS) + 1)), TEXTS)
    rec = Recommender(backend, catalog, info={"run_dir": str(tmp_path), "dataset": "beauty"})
    with TestClient(create_app(rec)) as client:
        response = client.get("/health")
    assert response.json()["model"] == "flan-t5-small"
    assert str(tmp_path) not in response.text


@pytest.mark.parametrize("hub_id", ["google/flan-t5-small", "tiny-t5"])
def test_health_keeps_a_hub_model_id(hub_id):
    backend = FakeLLMBackend(len(TEXTS))
    backend.name = hub_id
    rec = Recommender(backend, ItemCatalog(list(range(1, len(TEXTS) + 1)), TEXTS))
    with TestClient(create_app(rec)) as client:
        assert client.get("/health").json()["model"] == hub_id
