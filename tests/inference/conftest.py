"""Tiny catalogues, tokenizers and random-init models built in the test (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.tiny import TINY_OVERRIDES

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


def write_dataset(out: Path, texts: list[str], *, ratings: bool = True) -> Path:
    from recalign.data import write_prepared

    columns = {"user_id": list(range(1, len(SEQUENCES) + 1)), "items": SEQUENCES}
    schema = {"user_id": pl.Int64, "items": pl.List(pl.Int64)}
    if ratings:
        columns["ratings"] = [
            [float(1 + (u + i) % 5) for i in seq] for u, seq in enumerate(SEQUENCES)
        ]
        schema["ratings"] = pl.List(pl.Float64)
    sequences = pl.DataFrame(columns, schema=schema)
    items = pl.DataFrame(
        {
            "item_id": list(range(1, len(texts) + 1)),
            "source_id": [f"S{i}" for i in range(1, len(texts) + 1)],
            "text": texts,
        }
    )
    write_prepared(out, "fixture", sequences, items)
    return out


@pytest.fixture
def data_dir(tmp_path, texts) -> Path:
    return write_dataset(tmp_path / "data", texts[:20])


def make_run(
    run_dir: Path,
    data_dir: Path,
    family: str = "seq2seq",
    samples_dir: Path | None = None,
    **prompt,
) -> Path:
    """A run directory with a tiny random-init model, made from samples (without samples:
    their catalogue and prompt settings, `prompt`) in `samples_dir`, else `RUN-samples`."""
    from recalign.data import load_prepared
    from recalign.models.loading import build_tiny
    from tests.artifacts.helpers import fake_run, fake_samples

    torch.manual_seed(0)
    dataset = load_prepared(data_dir)
    preset = "tiny-t5" if family == "seq2seq" else "tiny-causal"
    overrides = TINY_OVERRIDES[family]
    loaded = build_tiny(preset, dataset=dataset, vocab_size=300, overrides=overrides)
    samples = samples_dir or run_dir.parent / f"{run_dir.name}-samples"
    fake_samples(data_dir, samples, family=family, **prompt)
    return fake_run(run_dir, data_dir, samples, loaded, model={"source": preset, "preset": preset})


@pytest.fixture
def run_dir(tmp_path, data_dir) -> Path:
    return make_run(tmp_path / "run", data_dir)
