"""Tiny catalogues, tokenizers and random-init models built in the test (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.factories import tiny_llm_run, write_dataset

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

WORDS = [
    "red",
    "blue",
    "green",
    "rose",
    "mint",
    "lip",
    "gloss",
    "shampoo",
    "cream",
    "soap",
    "brush",
    "nail",
    "polish",
    "matte",
    "gel",
    "hair",
    "oil",
    "serum",
    "mask",
    "face",
    "body",
    "wash",
    "kit",
    "mini",
]


def catalogue(n: int = 60, seed: int = 0) -> list[str]:
    """`n` distinct item texts of 1-5 words, deterministic."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    while len(texts) < n:
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 6))))
        if text not in texts:
            texts.append(text)
    return texts


@pytest.fixture(autouse=True)
def _trie_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RECALIGN_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def texts() -> list[str]:
    return catalogue()


def _tokenizer(texts: list[str], family: str):
    from recalign.models.tiny import train_tokenizer

    return train_tokenizer([*texts, "user bought next item"] * 2, vocab_size=300, family=family)


def _model(tokenizer, family: str, seed: int = 0):
    from recalign.models.tiny import build_tiny_causal, build_tiny_t5

    torch.manual_seed(seed)
    if family == "seq2seq":
        model = build_tiny_t5(
            tokenizer, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2, num_decoder_layers=2
        )
    else:
        model = build_tiny_causal(
            tokenizer,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
        )
    # float64: near-ties between beams cannot flip between two exact implementations.
    return model.double().eval()


@pytest.fixture(scope="session", params=["seq2seq", "causal"])
def lm(request, texts):
    """(model, tokenizer, family) for both model families."""
    tokenizer = _tokenizer(texts, request.param)
    return _model(tokenizer, request.param), tokenizer, request.param


@pytest.fixture(scope="session")
def t5(texts):
    tokenizer = _tokenizer(texts, "seq2seq")
    return _model(tokenizer, "seq2seq"), tokenizer, "seq2seq"


def trie_of(tokenizer, family: str, texts: list[str]):
    from recalign.inference.trie import build_trie
    from recalign.models.tokenization import encode_answer

    ids = list(range(1, len(texts) + 1))
    return build_trie(
        [encode_answer(tokenizer, family, t) for t in texts], ids, tokenizer.eos_token_id
    )


def prompts_for(tokenizer, family: str, texts: list[str], n: int, seed: int = 1):
    from recalign.models.tokenization import encode_prompt

    rng = np.random.default_rng(seed)
    histories = [sorted(set(rng.integers(1, len(texts) + 1, size=4).tolist())) for _ in range(n)]
    prompts = [
        encode_prompt(tokenizer, family, "user bought " + "; ".join(texts[i - 1] for i in h))
        for h in histories
    ]
    return prompts, histories


# --- a prepared dataset and a run directory ----------------------------------------------
SEQUENCES = [
    [1, 3, 2, 11, 12],
    [3, 1, 4, 9, 10],
    [3, 2, 1, 7, 8],
    [3, 5, 6, 7],
    [2, 4, 6, 8, 10, 12],
    [5, 9, 13, 14, 15],
]


def write_fixture_data(out: Path, texts: list[str], *, ratings: bool = True) -> Path:
    """`SEQUENCES` over `texts` (with ratings 1..5 that vary by user and item)."""
    scores = [[1 + (u + i) % 5 for i in seq] for u, seq in enumerate(SEQUENCES)]
    write_dataset(out, SEQUENCES, texts, ratings=scores if ratings else None)
    return out


@pytest.fixture
def data_dir(tmp_path, texts) -> Path:
    return write_fixture_data(tmp_path / "data", texts[:20])


@pytest.fixture
def run_dir(tmp_path, data_dir) -> Path:
    return tiny_llm_run(tmp_path / "run", data_dir)
