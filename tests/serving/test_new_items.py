"""Items added while serving: recommendable at once, without retraining.

Oracles: a trie built from scratch over the grown catalogue (what a fresh server over
a dataset holding the new items would build), the codebook's own assignment, and the
state before a refused or failed addition (unchanged).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from recalign.cli import app as cli_app  # noqa: E402
from recalign.errors import DataFormatError, RecalignError  # noqa: E402
from recalign.inference.trie import build_trie  # noqa: E402
from recalign.models.tokenization import encode_answers  # noqa: E402
from recalign.samples import semantic  # noqa: E402
from recalign.samples.semantic import CODE_TOKEN, hashing_embedder  # noqa: E402
from recalign.serving import Recommender  # noqa: E402
from recalign.serving.app import create_app  # noqa: E402
from recalign.serving.backends import UnsupportedOperationError  # noqa: E402
from recalign.serving.bulk import read_item_texts  # noqa: E402
from recalign.serving.limits import ServeLimits  # noqa: E402
from recalign.serving.recommender import InvalidRequestError  # noqa: E402
from recalign.training.config import make_config  # noqa: E402
from recalign.training.run import train  # noqa: E402
from tests.factories import tiny_llm_run  # noqa: E402
from tests.serving.conftest import TEXTS  # noqa: E402
from tests.tiny import TINY_OVERRIDES  # noqa: E402

NEW = ["Cherry Lip Gloss", "Peach Blush Powder"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RECALIGN_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def title_rec(tmp_path, data_dir):
    return Recommender.load(tiny_llm_run(tmp_path / "t5-run", data_dir, "seq2seq"))


def _whole_trie(backend):
    """The trie a server would build over every item it now holds."""
    ids = list(range(1, backend.num_items + 1))
    answers = encode_answers(backend.tokenizer, backend.family, backend.reprs[1:])
    return build_trie(answers, ids, backend.tokenizer.eos_token_id)


def _same_trie(a, b):
    names = ("child_ptr", "child_token", "parent", "node_item", "item_leaf")
    return all(np.array_equal(getattr(a, n), getattr(b, n)) for n in names)


def test_new_titles_are_recommended_ranked_and_found(title_rec):
    added = title_rec.add_items(NEW)
    first = len(TEXTS) + 1
    assert [(a.item_id, a.text, a.shown_as) for a in added] == [
        (first, NEW[0], NEW[0]),
        (first + 1, NEW[1], NEW[1]),
    ]
    backend = title_rec.backend
    assert _same_trie(backend.trie, _whole_trie(backend))
    # The whole catalogue, best first: the new items are in it, as any other item.
    every = title_rec.recommend([1, 2], k=len(TEXTS) + 2, exclude_history=False).item_ids
    assert sorted(every) == list(range(1, first + 2))
    ranked = title_rec.rank([NEW[0]], [first + 1, 3]).items
    assert {r.item_id for r in ranked} == {first + 1, 3}
    resolved = title_rec.resolve(["cherry lip  gloss"])[0]
    assert (resolved.item_id, resolved.match) == (first, "casefold")
    assert title_rec.search_items("Peach")[0].item_id == first + 1
    info = title_rec.describe()
    assert (info["num_items"], info["added_items"]) == (first + 1, 2)


def test_a_new_item_is_excluded_from_its_own_history(title_rec):
    (new,) = title_rec.add_items([NEW[0]])
    every = title_rec.recommend([new.item_id], k=len(TEXTS) + 1).item_ids
    assert new.item_id not in every and len(every) == len(TEXTS)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([], "no items"),
        (["  "], "must not be empty"),
        ([TEXTS[0].upper()], "already in the catalogue"),
        ([NEW[0], NEW[0].lower()], "same text"),
    ],
)
def test_refused_additions_change_nothing(title_rec, texts, message):
    before = (len(title_rec.catalog), title_rec.backend.num_items, title_rec.backend.trie)
    with pytest.raises(InvalidRequestError, match=message):
        title_rec.add_items(texts)
    after = (len(title_rec.catalog), title_rec.backend.num_items, title_rec.backend.trie)
    assert after == before


def test_a_failed_trie_build_changes_nothing(title_rec, monkeypatch):
    backend = title_rec.backend
    before = (len(title_rec.catalog), backend.num_items, len(backend.reprs), backend.trie)

    def broken(*args):
        raise DataFormatError("tokenise alike")

    monkeypatch.setattr(type(backend.trie), "with_items", broken)
    with pytest.raises(DataFormatError):
        title_rec.add_items(NEW)
    assert (len(title_rec.catalog), backend.num_items, len(backend.reprs), backend.trie) == before


def test_baselines_and_id_tokens_cannot_take_new_items(rec, title_rec):
    with pytest.raises(UnsupportedOperationError, match="fitted on"):
        rec.add_items(NEW)  # popularity
    backend = title_rec.backend
    backend.item_repr = "id"  # what a run shown random id tokens has
    with pytest.raises(UnsupportedOperationError, match="id tokens"):
        title_rec.add_items(NEW)
    assert len(title_rec.catalog) == len(TEXTS)


def test_the_cap_counts_every_addition(title_rec):
    title_rec.add_items([NEW[0]], up_to=2)
    with pytest.raises(InvalidRequestError, match="only 1 more"):
        title_rec.add_items(["a", "b"], up_to=2)
    title_rec.add_items([NEW[1]], up_to=2)
    assert title_rec.added == 2


# --- over HTTP ----------------------------------------------------------------------
def test_http_adds_items_only_when_the_operator_allows(title_rec):
    closed = TestClient(create_app(title_rec, ServeLimits()))
    refused = closed.post("/items", json={"items": [{"text": NEW[0]}]})
    assert refused.status_code == 403 and "--max-new-items" in refused.json()["message"]

    client = TestClient(create_app(title_rec, ServeLimits(max_new_items=2)))
    made = client.post("/items", json={"items": [{"text": NEW[0]}]})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["items"][0]["item_id"] == len(TEXTS) + 1
    assert (body["num_items"], body["new_items_left"]) == (len(TEXTS) + 1, 1)
    too_many = client.post("/items", json={"items": [{"text": "x"}, {"text": "y"}]})
    assert too_many.status_code == 422 and "only 1 more" in too_many.json()["message"]
    again = client.post("/items", json={"items": [{"text": NEW[0]}]})
    assert again.status_code == 422 and "already in the catalogue" in again.json()["message"]
    bad = client.post("/items", json={"items": [{"text": NEW[1], "price": 3}]})
    assert bad.status_code == 422
    # the new item by its text, in a history and as a candidate
    answer = client.post("/rank", json={"history": [NEW[0]], "candidates": [1, NEW[0]]})
    assert answer.status_code == 200
    assert client.get("/health").json()["num_items"] == len(TEXTS) + 1


def test_http_says_why_a_baseline_takes_no_items(rec):
    client = TestClient(create_app(rec, ServeLimits(max_new_items=5)))
    answer = client.post("/items", json={"items": [{"text": NEW[0]}]})
    assert answer.status_code == 422 and "fitted on" in answer.json()["message"]
    assert client.get("/health").status_code == 200


# --- a file of new items (`recalign serve --new-items FILE`) ------------------------
def test_item_texts_file(tmp_path):
    path = tmp_path / "new.txt"
    path.write_text(f"{NEW[0]}\n\n  {NEW[1]}  \n", encoding="utf-8")
    assert read_item_texts(path, 100) == NEW
    path.write_text(f"{NEW[0]}\n{NEW[0].upper()}\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"line 2.*same item text as line 1"):
        read_item_texts(path, 100)
    path.write_bytes(b"ok\n\xff\n")
    with pytest.raises(DataFormatError, match=r"line 2.*UTF-8"):
        read_item_texts(path, 100)
    path.write_text("x" * 11 + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"line 1.*11 characters"):
        read_item_texts(path, 10)
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="no item texts"):
        read_item_texts(path, 10)
    with pytest.raises(RecalignError, match="does not exist"):
        read_item_texts(tmp_path / "none.txt", 10)


def test_serve_adds_the_file_before_it_listens(tmp_path, data_dir, monkeypatch):
    import recalign.serving.server as server

    seen = {}
    monkeypatch.setattr(
        server, "run_server", lambda web, *a, **k: seen.update(rec=web.state.recommender)
    )
    run = tiny_llm_run(tmp_path / "t5-run", data_dir, "seq2seq")
    items = tmp_path / "new.txt"
    items.write_text("\n".join(NEW) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli_app, ["serve", str(run), "--new-items", str(items)])
    assert result.exit_code == 0, result.output
    assert "added 2 new item(s)" in result.output
    assert seen["rec"].describe()["num_items"] == len(TEXTS) + 2


# --- semantic ids --------------------------------------------------------------------
@pytest.fixture
def semantic_rec(tmp_path, monkeypatch):
    monkeypatch.setitem(semantic.EMBEDDERS, semantic.MINILM, lambda cfg: hashing_embedder(32))
    data, samples, run = tmp_path / "shop", tmp_path / "samples", tmp_path / "trained"
    runner = CliRunner()
    for args in (
        ["data", "prepare", "synthetic", "--out", data, "--num-users", "40", "--num-items", "60"],
        ["samples", "generate", data, "--out", samples, "--item-repr", "semantic"],
    ):
        result = runner.invoke(cli_app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    config = make_config(
        {
            "max_steps": 2,
            "batch_size": 8,
            "eval_steps": 2,
            "max_eval_samples": 8,
            "vocab_size": 300,
            "model_overrides": TINY_OVERRIDES["seq2seq"],
        }
    )
    train(data, samples, "tiny-t5", run, config=config, progress=False)
    assert (run / semantic.SEMANTIC_CODEBOOK_FILE).is_file()
    return Recommender.load(run)


def test_new_items_get_codes_from_the_codebook(semantic_rec):
    backend = semantic_rec.backend
    vocab_before = set(backend.tokenizer.get_vocab())
    text = "a brand new item nobody has bought"
    (new,) = semantic_rec.add_items([text])
    assert new.item_id == 61 and len(CODE_TOKEN.findall(new.shown_as)) == 4
    run = Path(semantic_rec.info["run_dir"])
    codebook = semantic.Codebook.load(run / semantic.SEMANTIC_CODEBOOK_FILE)
    prefix = codebook.base_codes([text], hashing_embedder(32))[0].tolist()
    assert semantic.parse_code(new.shown_as)[:-1] == tuple(prefix)
    assert new.shown_as not in backend.reprs[:61]
    # every level but the (uniqueness) last is a token the model was trained on
    levels = semantic.code_tokens([new.shown_as])  # in level order
    assert len(levels) == 4 and all(t in vocab_before for t in levels[:-1])
    assert _same_trie(backend.trie, _whole_trie(backend))
    every = semantic_rec.recommend([1], k=61, exclude_history=False).item_ids
    assert sorted(every) == list(range(1, 62))


def test_a_crowded_prefix_gets_a_new_last_token(semantic_rec):
    """More new items on one prefix than any prefix had: the last level runs past the
    trained tokens; they are added (mean-initialised) and the items stay reachable."""
    backend = semantic_rec.backend
    semantic_rec.add_items(["first of many"])  # loads the codebook and embedder
    one = np.asarray(backend._embedder(["first of many"]))
    backend._embedder = lambda texts: np.repeat(one, len(texts), axis=0)
    vocab_before = len(backend.tokenizer)
    added = semantic_rec.add_items([f"twin {n}" for n in range(40)])
    prefixes = {semantic.parse_code(a.shown_as)[:-1] for a in added}
    assert len(prefixes) == 1 and len({a.shown_as for a in added}) == 40
    assert len(backend.tokenizer) > vocab_before
    assert backend.model.get_input_embeddings().num_embeddings == len(backend.tokenizer)
    assert _same_trie(backend.trie, _whole_trie(backend))
    every = semantic_rec.recommend([1], k=60 + 41, exclude_history=False).item_ids
    assert len(every) == 101 and set(every) == set(range(1, 102))
