"""The language-model backend on tiny random-init models built in the test.

Oracles: the evaluation samples' own prompt through the inference stage's retrieval
(what `recalign evaluate` runs for a test user), and a direct forward-pass
log-likelihood for candidate scores.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from fastapi.testclient import TestClient  # noqa: E402

from recalign.data import load_prepared  # noqa: E402
from recalign.serving import Recommender  # noqa: E402
from recalign.serving.app import create_app  # noqa: E402
from tests.factories import tiny_llm_run  # noqa: E402
from tests.serving.conftest import TEXTS  # noqa: E402
from tests.tolerances import BATCH_ATOL, BATCH_RTOL, assert_same_ranking  # noqa: E402


@pytest.fixture(autouse=True)
def _trie_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RECALIGN_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def t5_run(tmp_path, data_dir):
    return tiny_llm_run(tmp_path / "t5-run", data_dir, "seq2seq")


def test_load_reports_the_model(t5_run):
    rec = Recommender.load(t5_run)
    info = rec.describe()
    assert (info["kind"], info["model"], info["family"], info["num_items"]) == (
        "llm",
        "tiny-t5",
        "seq2seq",
        len(TEXTS),
    )


def test_served_top_k_equals_the_evaluation_protocol(t5_run, data_dir):
    """For every test user: the evaluation prompt + constrained retrieval with the
    history banned (the evaluator's path) gives the list `recommend` serves."""
    from recalign.inference.retrieval import constrained_retrieval
    from recalign.models.tokenization import encode_prompt
    from recalign.samples.evaluation import build_eval_samples

    rec = Recommender.load(t5_run)
    backend = rec.backend
    dataset = load_prepared(data_dir)
    samples = build_eval_samples(dataset, "retrieval", "test")
    prompts = [encode_prompt(backend.tokenizer, "seq2seq", text) for text in samples["input"]]
    bans = [set(h) for h in samples["full_history"]]
    expected = constrained_retrieval(
        backend.model, backend.tokenizer, "seq2seq", backend.trie, prompts, bans, k=5, num_beams=20
    )
    for history, want in zip(samples["full_history"].to_list(), expected, strict=True):
        got = rec.recommend(history, k=5)
        # The expected lists were decoded in batches, the served ones one at a time.
        assert_same_ranking(got.item_ids, [r.score for r in got.items], want.items, want.scores)
        assert not set(got.item_ids) & set(history)
        assert len(set(got.item_ids)) == 5


def test_batched_equals_single(t5_run):
    rec = Recommender.load(t5_run)
    histories = [[1, 2], [3], ["Argan Hair Oil", 12, 5]]
    batched = rec.recommend_batch(histories, k=4)
    for history, together in zip(histories, batched, strict=True):
        alone = rec.recommend(history, k=4)
        assert_same_ranking(
            together.item_ids,
            [r.score for r in together.items],
            alone.item_ids,
            [r.score for r in alone.items],
        )


def test_k_up_to_the_catalogue(t5_run):
    rec = Recommender.load(t5_run)
    got = rec.recommend([1, 2], k=50)  # more than the 10 items left
    assert sorted(got.item_ids) == list(range(3, len(TEXTS) + 1))
    assert len(rec.recommend([1], k=50, exclude_history=False).item_ids) == len(TEXTS)


def test_rank_scores_are_the_answer_log_likelihood(t5_run):
    """Score = sum of log p(answer token) under teacher forcing, from a plain forward pass."""
    from recalign.models.tokenization import encode_answer, encode_prompt
    from recalign.samples.evaluation import render_prompt

    rec = Recommender.load(t5_run)
    backend = rec.backend
    history, candidates = [1, 3], [2, 7, 12]
    result = rec.rank(history, candidates)
    texts = [TEXTS[c - 1] for c in candidates]
    prompt = encode_prompt(
        backend.tokenizer,
        "seq2seq",
        render_prompt("ranking", [TEXTS[0], TEXTS[2]], candidates=texts),
    )
    expected = {}
    with torch.no_grad():
        for item, text in zip(candidates, texts, strict=True):
            labels = torch.tensor([encode_answer(backend.tokenizer, "seq2seq", text)])
            out = backend.model(input_ids=torch.tensor([prompt]), labels=labels)
            expected[item] = float(-out.loss * labels.shape[1])  # loss is the token mean
    # One forward pass per candidate here, all candidates in one batch in the backend.
    assert {r.item_id: r.score for r in result.items} == pytest.approx(
        expected, rel=BATCH_RTOL, abs=BATCH_ATOL
    )
    want = sorted(candidates, key=lambda c: -expected[c])
    assert_same_ranking(
        result.item_ids, [r.score for r in result.items], want, [expected[c] for c in want]
    )


def test_rating_needs_a_rating_model(t5_run):
    rec = Recommender.load(t5_run)
    with TestClient(create_app(rec)) as client:
        response = client.post("/rate", json={"history": [1], "item": 2, "ratings": [5]})
        assert response.status_code == 422
        assert "rating" in response.json()["message"]


def test_http_serves_the_llm_lists(t5_run):
    rec = Recommender.load(t5_run)
    want = rec.recommend([1, 3], k=3)
    with TestClient(create_app(rec)) as client:
        body = client.post("/recommend", json={"history": [1, "Green Nail Polish"], "k": 3}).json()
    assert [i["item_id"] for i in body["items"]] == want.item_ids
    assert [i["score"] for i in body["items"]] == pytest.approx([r.score for r in want.items])


def test_causal_run(tmp_path, data_dir):
    rec = Recommender.load(tiny_llm_run(tmp_path / "causal-run", data_dir, "causal"))
    got = rec.recommend([4, 5], k=6)
    assert len(set(got.item_ids)) == 6 and not {4, 5} & set(got.item_ids)
    assert all(1 <= i <= len(TEXTS) for i in got.item_ids)
    scores = [r.score for r in got.items]
    assert scores == sorted(scores, reverse=True)


def test_served_top_k_equals_recalign_evaluate(t5_run, data_dir, tmp_path):
    """`evaluate_run` (what `recalign evaluate` runs) writes per-user lists; serving the
    same user's test history gives the same list, scores included."""
    import json

    evaluation = pytest.importorskip("recalign.evaluation.llm")
    options = evaluation.EvalOptions(protocol="retrieval", k=5)
    evaluation.evaluate_run(t5_run, data_dir, tmp_path / "eval", options)
    predictions = [
        json.loads(line)
        for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()
    ]
    dataset = load_prepared(data_dir)
    histories = dict(
        zip(
            dataset.split.test["user_id"].to_list(),
            dataset.split.test["history"].to_list(),
            strict=True,
        )
    )
    rec = Recommender.load(t5_run)
    assert len(predictions) == len(histories)
    for prediction in predictions:
        served = rec.recommend(histories[prediction["user_id"]], k=5)
        assert_same_ranking(
            served.item_ids,
            [r.score for r in served.items],
            prediction["ranked"],
            prediction["scores"],
        )
