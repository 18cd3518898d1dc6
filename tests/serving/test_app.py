"""The HTTP API through httpx (FastAPI's TestClient): every endpoint, limit and error."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from fastapi.testclient import TestClient

from recalign.serving.app import ServeLimits, create_app
from tests.serving.conftest import TEXTS

LIMITS = ServeLimits(
    max_history=5, max_k=4, max_candidates=6, max_body_bytes=600, max_text_length=40,
    max_query_length=20, max_search_results=3,
)  # fmt: skip


@pytest.fixture
def client(rec):
    with TestClient(create_app(rec, LIMITS)) as test_client:
        yield test_client


@pytest.fixture
def fake_client(fake_rec):
    with TestClient(create_app(fake_rec, LIMITS)) as test_client:
        yield test_client


def assert_422(response, *needles):
    assert response.status_code == 422, response.text
    body = response.json()
    assert isinstance(body["message"], str) and body["message"]
    for needle in needles:
        assert needle in body["message"], body["message"]
    return body


# --- endpoints -------------------------------------------------------------------------


def test_health(client):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert (body["model"], body["num_items"], body["can_rate"]) == ("pop", len(TEXTS), False)
    assert body["limits"]["max_k"] == 4
    # the page explains the scores in words
    assert (
        body["score"]
        == "the item's number of interactions in the training data; higher is more popular"
    )


def test_health_explains_llm_scores(fake_client):
    assert "log-likelihood" in fake_client.get("/health").json()["score"]


@pytest.mark.parametrize("k", [0, -3])
def test_k_below_one_is_refused_with_the_reason(client, k):
    assert_422(
        client.post("/recommend", json={"history": [1], "k": k}), "k", "greater than or equal to 1"
    )


def test_items_search(client):
    body = client.get("/items", params={"query": "face", "limit": 2}).json()
    assert [i["item_id"] for i in body["items"]] == [6, 8]
    assert body["items"][0]["text"] == "Rose Face Cream"
    # no query: the first items by id, as many as the default limit (capped by the limits)
    assert [i["item_id"] for i in client.get("/items").json()["items"]] == [1, 2, 3]


def test_recommend(client):
    response = client.post("/recommend", json={"history": [3, "red velvet lipstick"], "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert [i["item_id"] for i in body["items"]] == [2, 4, 5]
    assert [i["score"] for i in body["items"]] == [2.0, 1.0, 1.0]
    assert body["items"][0] == {"item_id": 2, "text": TEXTS[1], "score": 2.0, "rank": 1}
    assert [h["match"] for h in body["history"]] == ["id", "casefold"]


def test_recommend_include_history_and_fuzzy_report(client):
    body = client.post(
        "/recommend", json={"history": ["Green Nail Polsh"], "k": 1, "exclude_history": False}
    ).json()
    assert [i["item_id"] for i in body["items"]] == [3]
    assert body["history"][0]["match"] == "fuzzy"
    assert body["history"][0]["similarity"] < 1.0


def test_rank(client):
    body = client.post(
        "/rank", json={"history": [7], "candidates": [12, "Blue Waterproof Mascara", 3]}
    ).json()
    assert [i["item_id"] for i in body["items"]] == [3, 2, 12]
    assert [c["item_id"] for c in body["candidates"]] == [12, 2, 3]


def test_rate(fake_client):
    body = fake_client.post("/rate", json={"history": [1, 2], "item": 9, "ratings": [4, 5]}).json()
    assert body["rating"] == 5.0  # 1 + 9 % 5
    assert body["item"]["item_id"] == 9


def test_rate_unsupported_is_a_clear_422(client):
    assert_422(client.post("/rate", json={"history": [1], "item": 2}), "does not predict ratings")


def test_page_and_docs(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>recalign" in page.text
    schema = client.get("/openapi.json").json()
    assert {"/health", "/items", "/recommend", "/rank", "/rate"} <= set(schema["paths"])
    # the configured limits are visible in the schema
    assert "maximum" in str(schema["components"]["schemas"]["RecommendRequest"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    # Swagger UI's files are served locally (the docs work offline), not from a CDN.
    assert "cdn." not in docs.text and "swagger-ui-bundle.js" in docs.text
    script = re.search(r"src=.(/[^'\"]*swagger-ui-bundle\.js)", docs.text).group(1)
    assert client.get(script).status_code == 200
    redoc = client.get("/redoc")
    assert redoc.status_code == 200 and "cdn." not in redoc.text


# --- limits and bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/recommend", {"history": [1, 2, 3, 4, 5, 6]}, "history"),  # max_history 5
        ("/recommend", {"history": []}, "history"),
        ("/recommend", {"history": [1], "k": 5}, "k"),  # max_k 4
        ("/recommend", {"history": [1], "k": 0}, "k"),
        ("/recommend", {"history": [1], "k": "ten"}, "k"),
        ("/recommend", {"history": ["x" * 41]}, "history"),  # max_text_length 40
        ("/recommend", {"history": [1.5]}, "history"),
        ("/recommend", {"history": [True]}, "history"),
        ("/recommend", {"history": "1,2"}, "history"),
        ("/recommend", {"k": 3}, "history"),
        ("/recommend", {"history": [1], "surprise": 1}, "surprise"),
        ("/rank", {"history": [1], "candidates": list(range(1, 8))}, "candidates"),  # max 6
        ("/rank", {"history": [1], "candidates": []}, "candidates"),
        ("/rank", {"history": [1], "candidates": [2, 2]}, "duplicate"),
        ("/rate", {"history": [1]}, "item"),
        ("/rate", {"history": [1, 2], "item": 3, "ratings": [5]}, "align"),
    ],
)
def test_limits_and_bad_bodies(client, path, body, needle):
    assert_422(client.post(path, json=body), needle)


def test_unknown_items_are_named(client):
    body = assert_422(
        client.post("/recommend", json={"history": [1, 999, "flux capacitor"]}),
        "999",
        "flux capacitor",
    )
    assert body["detail"][0]["input"] == [999, "flux capacitor"]
    assert body["detail"][0]["type"] == "unknown_item"
    assert_422(
        client.post("/rank", json={"history": [1], "candidates": [2, 404]}), "candidates", "404"
    )
    assert_422(
        client.post("/recommend", json={"history": ["Green Nail Polsh"], "fuzzy": False}), "Polsh"
    )


@pytest.mark.parametrize(
    "raw", [b"{bad json", b"", b"[1, 2]", b'{"history": [1,]}', b"\xff\xfe", b"null"]
)
def test_malformed_json(client, raw):
    response = client.post("/recommend", content=raw, headers={"content-type": "application/json"})
    assert_422(response)


def test_search_limits(client):
    assert_422(client.get("/items", params={"limit": 4}), "limit")
    assert_422(client.get("/items", params={"limit": 0}), "limit")
    assert_422(client.get("/items", params={"query": "q" * 21}), "query")
    assert_422(client.get("/items", params={"limit": "many"}), "limit")


def test_body_size_limit_declared_and_streamed(client):
    big = b'{"history": [' + b"1, " * 300 + b"1]}"
    assert_422(
        client.post("/recommend", content=big, headers={"content-type": "application/json"}),
        "too large",
    )

    def chunks():  # no Content-Length: the middleware must count the stream
        for _ in range(10):
            yield b" " * 100

    response = client.post(
        "/recommend", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_422(response, "too large")


def test_server_survives_bad_input_and_crashes(rec):
    """A backend that raises a non-recalign error gives a 500 for that request only."""

    class Exploding:
        kind, name, can_rate = "llm", "boom", True

        def recommend(self, histories, k, exclude_history):
            raise RuntimeError("CUDA out of memory (simulated)")

        rank = rate = recommend

    from recalign.serving import Recommender

    app = create_app(Recommender(Exploding(), rec.catalog), LIMITS)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/recommend", json={"history": [1]})
        assert response.status_code == 500
        assert "still running" in response.json()["message"]
        assert client.get("/health").json()["status"] == "ok"
        assert client.get("/items", params={"query": "lip"}).status_code == 200


# --- micro-batching -------------------------------------------------------------------------


def test_concurrent_requests_share_model_calls(fake_rec):
    """16 simultaneous requests with the same k go through fewer model calls, each
    getting its own correct answer; a different k is never mixed into a batch."""
    app = create_app(fake_rec, LIMITS, batch_window_ms=50, max_batch=32)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            histories = [[i] for i in range(1, 13)] + [[1, 12], [2, 11], [3, 10], [4, 9]]
            requests = [http.post("/recommend", json={"history": h, "k": 3}) for h in histories]
            requests.append(http.post("/recommend", json={"history": [1], "k": 2}))
            responses = await asyncio.gather(*requests)
        return histories, responses

    histories, responses = asyncio.run(main())
    assert all(r.status_code == 200 for r in responses)
    for history, response in zip(histories, responses, strict=False):
        expected = [i for i in range(12, 0, -1) if i not in history][:3]
        assert [i["item_id"] for i in response.json()["items"]] == expected
    assert [i["item_id"] for i in responses[-1].json()["items"]] == [12, 11]
    calls = fake_rec.backend.calls
    assert sum(calls) == 17
    assert len(calls) < 17 and max(calls) > 1  # batched
    assert app.state.batcher.batches == len(calls)


def test_one_bad_request_does_not_fail_its_batch(fake_rec):
    """If a batched call fails, each request is retried alone: only the culprit fails."""
    original = fake_rec.backend.recommend

    def picky(histories, k, exclude_history):
        if any(h == [5] for h in histories):
            raise ValueError("cannot handle item 5")
        return original(histories, k, exclude_history)

    fake_rec.backend.recommend = picky
    app = create_app(fake_rec, LIMITS, batch_window_ms=50)

    async def main():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(
                *[http.post("/recommend", json={"history": [i], "k": 2}) for i in (4, 5, 6)]
            )

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200, 500, 200]
