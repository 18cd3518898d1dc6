"""Hostile request bodies, sent as raw bytes: every one is a 422 with a message, none a 5xx,
and the server answers normally afterwards."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recalign.serving.app import ServeLimits, create_app
from recalign.serving.inputs import check_text, parse_json

JSON = {"content-type": "application/json"}
LIMITS = ServeLimits(max_history=5, max_candidates=6, max_text_length=40, max_query_length=20)


@pytest.fixture(scope="module")
def client():
    from recalign.serving import ItemCatalog, Recommender
    from tests.serving.conftest import TEXTS, FakeLLMBackend

    rec = Recommender(FakeLLMBackend(len(TEXTS)), ItemCatalog(list(range(1, 13)), TEXTS))
    with TestClient(create_app(rec, LIMITS), raise_server_exceptions=False) as test_client:
        yield test_client


def post_raw(client, path: str, raw: bytes):
    return client.post(path, content=raw, headers=JSON)


@pytest.mark.parametrize(
    ("path", "raw", "needle"),
    [
        # A lone surrogate: legal JSON escape syntax, no character; used to crash the
        # 422 handler itself (UnicodeEncodeError when echoing it) and give a 500.
        ("/recommend", rb'{"history": ["\ud800"]}', "surrogate"),
        ("/recommend", rb'{"history": ["Red Velvet \udfff Lipstick"]}', "surrogate"),
        ("/rank", rb'{"history": [1], "candidates": [2, "\udc80"]}', "candidates.1"),
        ("/recommend", rb'{"history": [1], "\ud800": 1}', "a key"),
        ("/recommend", b'{"history": ["\xed\xa0\x80"]}', "not UTF-8"),  # raw encoded surrogate
        ("/recommend", b"\xff", "not UTF-8"),
        # control characters inside an item text
        ("/recommend", rb'{"history": ["Red\u0000Velvet"]}', "control character (U+0000)"),
        ("/recommend", rb'{"history": ["Red\nVelvet Lipstick"]}', "control character (U+000A)"),
        ("/recommend", rb'{"history": ["Mint\u009bLip Balm"]}', "U+009B"),
        ("/rate", rb'{"history": [1], "item": "Mint\u0007Lip"}', "control character"),
        # non-finite numbers, anywhere
        ("/rate", b'{"history": [1], "item": 2, "ratings": [NaN]}', "NaN"),
        ("/rate", b'{"history": [1], "item": 2, "ratings": [Infinity]}', "Infinity"),
        ("/rate", b'{"history": [1], "item": 2, "ratings": [-Infinity]}', "-Infinity"),
        ("/rate", b'{"history": [1], "item": 2, "ratings": [1e999]}', "1e999"),
        ("/rate", b'{"history": [1], "item": 2, "ratings": [-1e999]}', "infinity"),
        ("/recommend", b'{"history": [1], "k": 1e999}', "1e999"),
        ("/recommend", b'{"history": [1], "k": NaN}', "NaN"),
        ("/recommend", b'{"history": [NaN]}', "NaN"),
        ("/recommend", b'{"history": [1], "extra": 1e400}', "1e400"),
        # numbers and nesting the parser would choke on
        ("/recommend", b'{"history": [' + b"9" * 5000 + b"]}", "5000 digits"),
        ("/recommend", b'{"history": [12345678901234567890]}', "20 digits"),
        ("/recommend", b'{"history": ' + b"[" * 20 + b"]" * 20 + b"}", "nested deeper"),
        ("/recommend", b'{"history": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested"),
        # over-long texts
        ("/recommend", b'{"history": ["' + b"x" * 41 + b'"]}', "40 characters"),
    ],
)
def test_hostile_bodies_are_422_with_a_message(client, path, raw, needle):
    response = post_raw(client, path, raw)
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert needle in message, message
    response.content.decode("utf-8")  # the echo itself is valid UTF-8


def test_a_valid_surrogate_pair_is_an_ordinary_character(client):
    """An emoji escaped as a surrogate pair is text, not an error (here: a fuzzy match)."""
    response = post_raw(client, "/recommend", rb'{"history": ["Rose \ud83c\udf39 Cream"]}')
    assert response.status_code == 200, response.text
    entry = response.json()["history"][0]
    assert (entry["query"], entry["text"]) == ("Rose \U0001f339 Cream", "Rose Face Cream")


@pytest.mark.parametrize(
    ("query", "status"),
    [("lip", 200), ("a\x00b", 422), ("lip\nbalm", 422), ("\u00e9t\u00e9", 200)],
)
def test_items_query_refuses_control_characters(client, query, status):
    assert client.get("/items", params={"query": query}).status_code == status


def test_server_answers_normally_after_hostile_input(client):
    for raw in (rb'{"history": ["\ud800"]}', b'{"history": [NaN]}', b"[" * 5000):
        assert post_raw(client, "/recommend", raw).status_code == 422
    assert client.get("/health").json()["status"] == "ok"
    response = client.post("/recommend", json={"history": [1, "Mint Lip Balm"], "k": 2})
    assert response.status_code == 200


# --- property: no body whatsoever gets a 5xx ---------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(codec=None), max_size=12),  # surrogates and controls too
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(codec=None), max_size=6), inner, max_size=4
        )
    ),
    max_leaves=12,
)
_field_names = st.sampled_from(["history", "candidates", "item", "ratings", "k", "fuzzy", "x"])
_bodies = st.one_of(
    st.binary(max_size=200),
    _values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(_field_names, _values, max_size=4).map(lambda d: json.dumps(d).encode()),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.sampled_from(["/recommend", "/rank", "/rate"]), raw=_bodies)
def test_no_body_gets_a_5xx(client, path, raw):
    response = post_raw(client, path, raw)
    assert response.status_code in (200, 422), (raw, response.text)
    if response.status_code == 422:
        assert response.json()["message"]


# --- the pieces --------------------------------------------------------------------------


def test_parse_json_accepts_strict_json():
    assert parse_json(b'{"a": [1, -2, 3.5e2, "\\u00e9", true, null]}') == {
        "a": [1, -2, 350.0, "\u00e9", True, None]
    }


@pytest.mark.parametrize("text", ["Red Velvet Lipstick", "Crème brûlée", "Rose 🌹", "a\u200db"])
def test_check_text_keeps_ordinary_text(text):
    assert check_text(text) == text
