"""Fitting prompts to a token budget: whole history items go, oldest first; the
instruction, the candidates, the chat frame, BOS and EOS stay."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recalign.data.domain import DOMAINS
from recalign.errors import DataFormatError
from recalign.models.tiny import train_tokenizer
from recalign.models.tokenization import FittedPrompts, encode_prompts, fit_prompt, fit_prompts
from recalign.samples import build_eval_samples, build_prompt, generate_samples

from .conftest import RATINGS, SEQUENCES, item_text, make_dataset

SMOLLM2 = Path(os.environ.get("RECALIGN_SMOLLM2", "/work/models/smollm2-135m"))
SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHAT = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WORDS = ["red", "matte", "gentle", "daily", "travel", "organic", "silk", "fresh", "crème", "brûlée"]
CORPUS = [item_text(i) for i in range(1, 41)] + WORDS * 5 + ["interacted with items history"]


def _tiny(family: str, chat: bool = False):
    tok = train_tokenizer(CORPUS, vocab_size=300, family=family)
    if chat:
        tok.chat_template = CHAT
    return tok


@pytest.fixture(scope="module", params=["t5", "causal-chat", "smollm2"])
def tokenizer(request):
    """(tokenizer, family): tiny ones built here, and the real SmolLM2 one when present."""
    if request.param == "t5":
        return _tiny("seq2seq"), "seq2seq"
    if request.param == "causal-chat":
        return _tiny("causal", chat=True), "causal"
    if not (SMOLLM2 / "tokenizer.json").is_file():
        pytest.skip(f"no SmolLM2 tokenizer at {SMOLLM2} (set RECALIGN_SMOLLM2)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(SMOLLM2)), "causal"


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> pl.DataFrame:
    root = tmp_path_factory.mktemp("fit")
    dataset = make_dataset(root / "d", SEQUENCES, 40, RATINGS)
    generate_samples(dataset, root / "s", config={"tasks": {"ranking": {"num_candidates": 5}}})
    return pl.read_parquet(root / "s" / "train.parquet")


def _drop(text: str, bounds: list[int], k: int) -> str:
    """The text without its k oldest history items (bounds are UTF-8 byte offsets)."""
    data, starts, resume = text.encode(), bounds[:-2], bounds[-1]
    return (data[: starts[0]] + data[starts[k] if k < len(starts) else resume :]).decode()


def _part(text: str, start: int, stop: int | None = None) -> str:
    return text.encode()[start:stop].decode()


def _frame_ok(tok, family: str, ids: list[int]) -> None:
    if family == "seq2seq":
        assert ids[-1] == tok.eos_token_id and ids.count(tok.eos_token_id) == 1
        return
    text = tok.decode(ids)
    # The system prompt, the user turn and the generation prompt all survive.
    assert "".join(text.split()).startswith("".join(SYSTEM.split()))
    assert "<|im_start|>user" in text.replace(" ", "")
    assert "".join(text.split()).endswith("<|im_end|><|im_start|>assistant")


def test_over_budget_prompt_keeps_instruction_and_frame_and_drops_oldest(tokenizer, samples):
    tok, family = tokenizer
    rows = samples.filter(
        pl.col("task").is_in(["retrieval", "ranking", "rating", "bpr"])
        & (pl.col("history_bounds").list.len() >= 5)  # at least 3 history items
    )
    assert rows.height >= 8
    texts = rows.get_column("input").to_list()
    bounds = rows.get_column("history_bounds").to_list()
    full = encode_prompts(tok, family, texts)
    bare = encode_prompts(
        tok, family, [_drop(t, b, len(b) - 2) for t, b in zip(texts, bounds, strict=True)]
    )
    for text, row_bounds, whole, none in zip(texts, bounds, full, bare, strict=True):
        budget = len(none) + (len(whole) - len(none)) // 2  # room for part of the history
        fitted = fit_prompts(tok, family, [text], [row_bounds], budget)
        ids, kept, k = fitted.ids[0], fitted.texts[0], int(fitted.dropped[0])
        assert len(ids) <= budget < len(whole)
        assert 1 <= k < len(row_bounds) - 2 and not fitted.shortened[0]
        assert kept == _drop(text, row_bounds, k)  # the k oldest items, nothing else
        # Instruction before and after the history, candidates included, are intact.
        assert kept.startswith(_part(text, 0, row_bounds[0]))
        assert kept.endswith(_part(text, row_bounds[-1]))
        assert ids == encode_prompts(tok, family, [kept])[0]
        _frame_ok(tok, family, ids)
        # The fewest items: keeping one more would be over budget.
        longer = encode_prompts(tok, family, [_drop(text, row_bounds, k - 1)])[0]
        assert len(longer) > budget


def test_masked_items_are_never_dropped(tokenizer, samples):
    tok, family = tokenizer
    rows = samples.filter(
        pl.col("task").is_in(["mim", "mlm"]) & (pl.col("history_bounds").list.len() >= 3)
    )
    texts = rows.get_column("input").to_list()
    fitted = fit_prompts(tok, family, texts, rows.get_column("history_bounds").to_list(), 8)
    for text, kept in zip(texts, fitted.texts, strict=True):
        masks = ("[MASK]", "<extra_id_")
        assert [kept.count(m) for m in masks] == [text.count(m) for m in masks]
    assert fitted.over.all()  # 8 tokens cannot hold any of these instructions


def test_prompt_that_cannot_fit_is_kept_whole_and_counted(caplog):
    tok = _tiny("seq2seq")
    prompt = build_prompt("ranking", ["A", "B"], candidates=[item_text(i) for i in range(1, 9)])
    with caplog.at_level(logging.WARNING, logger="recalign.models.tokenization"):
        fitted = fit_prompts(tok, "seq2seq", [prompt.text], [prompt.bounds], 10)
    assert fitted.over[0] and int(fitted.dropped[0]) == 2
    assert fitted.texts[0] == _drop(prompt.text, prompt.bounds, 2)
    assert all(item_text(i) in fitted.texts[0] for i in range(1, 9))  # candidates kept
    assert fitted.summary()["cannot_fit"] == 1
    assert "even without their history" in caplog.text and "Raise max_source_length" in caplog.text


def test_newest_item_loses_its_end_only_when_it_alone_is_too_long():
    tok = _tiny("seq2seq")
    newest = " ".join(WORDS * 3)
    prompt = build_prompt("retrieval", ["old one", newest])
    bare = encode_prompts(tok, "seq2seq", [_drop(prompt.text, prompt.bounds, 2)])[0]
    fitted = fit_prompts(tok, "seq2seq", [prompt.text], [prompt.bounds], len(bare) + 6)
    kept = fitted.texts[0]
    assert fitted.shortened[0] and int(fitted.dropped[0]) == 1
    assert "old one" not in kept and len(fitted.ids[0]) <= len(bare) + 6
    shown = kept[len(_part(prompt.text, 0, prompt.bounds[0])) : kept.index(". Which")]
    assert shown and newest.startswith(shown) and newest[len(shown)] == " "  # whole words


def test_samples_without_bounds_are_cut_as_before_with_a_warning(caplog):
    tok = _tiny("causal")
    text = "A user has interacted with these items, in order: " + "; ".join(CORPUS[:12])
    with caplog.at_level(logging.WARNING, logger="recalign.models.tokenization"):
        fitted = fit_prompts(tok, "causal", [text, "short"], None, 16)
    whole = encode_prompts(tok, "causal", [text])[0]
    before = [whole[0], *whole[-15:]]  # the old cut: 16 ids from the left, BOS kept
    assert fitted.ids[0] == before and fitted.cut.tolist() == [True, False]
    assert "no history bounds" in caplog.text and "Regenerate" in caplog.text


def test_bounds_that_do_not_match_the_input_are_an_error():
    tok = _tiny("seq2seq")
    with pytest.raises(DataFormatError, match="history_bounds"):
        fit_prompts(tok, "seq2seq", ["a b c d e f g h i j"], [[5, 2, 9, 9]], 3)
    with pytest.raises(DataFormatError, match="history_bounds"):
        fit_prompts(tok, "seq2seq", ["a b c d e f g h i j"], [[0, 50, 50]], 3)


def test_no_budget_means_no_fitting():
    tok = _tiny("seq2seq")
    prompt = build_prompt("retrieval", [item_text(i) for i in range(1, 30)])
    assert (
        fit_prompt(tok, "seq2seq", prompt.text, prompt.bounds, None)
        == encode_prompts(tok, "seq2seq", [prompt.text])[0]
    )


def test_eval_samples_and_served_prompts_share_bounds(tiny):
    for task in ("retrieval", "ranking", "rating"):
        row = build_eval_samples(tiny, task, "test").row(0, named=True)
        texts = [item_text(i) for i in row["history"]]
        extra = {}
        if task == "ranking":
            extra["candidates"] = [item_text(i) for i in row["candidates"]]
        if task == "rating":
            user = tiny.sequences.filter(pl.col("user_id") == row["user_id"]).row(0, named=True)
            extra = {"item": item_text(row["item"]), "ratings": user["ratings"][:-1][-20:]}
        prompt = build_prompt(task, texts, **extra)
        assert (prompt.text, prompt.bounds) == (row["input"], row["history_bounds"])


# --- property -----------------------------------------------------------------------
_TOK = None


def _property_tokenizer():
    global _TOK
    if _TOK is None:
        _TOK = _tiny("causal", chat=True)
    return _TOK


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=st.lists(
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join),
        min_size=1,
        max_size=8,
    ),
    task=st.sampled_from(["retrieval", "ranking", "rating"]),
    template=st.sampled_from(["default", "unseen"]),
    slack=st.integers(-6, 40),
)
def test_fitted_prompts_fit_when_the_bare_prompt_does_and_keep_a_suffix(
    history, task, template, slack
):
    tok, family = _property_tokenizer(), "causal"
    extra = {}
    if task == "ranking":
        extra["candidates"] = ["red silk", "fresh daily"]
    if task == "rating":
        extra = {"item": "matte crème", "ratings": [float(1 + i % 5) for i in range(len(history))]}
    prompt = build_prompt(task, history, template=template, domain=DOMAINS["movies"], **extra)
    bare = encode_prompts(tok, family, [_drop(prompt.text, prompt.bounds, len(history))])[0]
    budget = max(1, len(bare) + slack)
    fitted = fit_prompts(tok, family, [prompt.text], [prompt.bounds], budget, quiet=True)
    ids, kept, k = fitted.ids[0], fitted.texts[0], int(fitted.dropped[0])
    if len(bare) <= budget:
        assert len(ids) <= budget and not fitted.over[0]
    else:
        assert fitted.over[0] and ids == bare
    assert ids == encode_prompts(tok, family, [kept])[0]
    # What is kept of the history is a suffix of it (its first item possibly cut short).
    prefix, suffix = _part(prompt.text, 0, prompt.bounds[0]), _part(prompt.text, prompt.bounds[-1])
    assert kept.startswith(prefix) and kept.endswith(suffix)
    shown = kept[len(prefix) : len(kept) - len(suffix)]
    full = prompt.text[len(prefix) : len(prompt.text) - len(suffix)]
    if fitted.shortened[0]:
        assert k == len(history) - 1 and full.split("; ")[-1].startswith(shown)
    else:
        assert shown == "; ".join(full.split("; ")[k:])


# --- the three places that encode prompts -------------------------------------------
def _roomy_budget(tok, family: str, frame: pl.DataFrame) -> tuple[int, FittedPrompts]:
    """A budget every prompt fits without history but most do not with it."""
    texts, bounds = frame.get_column("input").to_list(), frame["history_bounds"].to_list()
    bare = encode_prompts(
        tok, family, [_drop(t, b, len(b) - 2) for t, b in zip(texts, bounds, strict=True)]
    )
    budget = max(map(len, bare)) + 4
    fitted = fit_prompts(tok, family, texts, bounds, budget)
    assert fitted.dropped.sum() > 0 and not fitted.over.any()
    return budget, fitted


def test_training_fits_prompts_and_keeps_the_frame(samples):
    from recalign.training.data import Lengths, encode_batch

    tok = _tiny("causal", chat=True)
    frame = samples.filter(pl.col("task") == "ranking")
    budget, fitted = _roomy_budget(tok, "causal", frame)
    encoded = encode_batch(
        tok,
        "causal",
        frame.get_column("input").to_list(),
        frame.get_column("target").to_list(),
        Lengths(budget, 16),
        frame.get_column("history_bounds").to_list(),
    )
    assert encoded.fit["shortened"] == fitted.summary()["shortened"] > 0
    for row, ids in zip(encoded.input_ids, fitted.ids, strict=True):
        assert len(ids) <= budget and row[: len(ids)] == ids  # prompt, answer
        _frame_ok(tok, "causal", ids)


def test_evaluation_fits_to_the_budget(tiny, tmp_path):
    """Prompts are fitted to `max_source_length` (a run's own, from its manifest, unless
    one is given: `_run_protocol`), and left whole without one."""
    from types import SimpleNamespace

    from recalign.evaluation.llm import EvalOptions, _prompts

    tok = _tiny("seq2seq")
    samples = build_eval_samples(tiny, "ranking", "test", num_candidates=3)
    budget, fitted = _roomy_budget(tok, "seq2seq", samples)
    loaded = SimpleNamespace(tokenizer=tok, family="seq2seq", spec={})
    assert _prompts(loaded, samples, EvalOptions(max_source_length=budget)) == fitted.ids
    texts = samples.get_column("input").to_list()
    assert _prompts(loaded, samples, EvalOptions()) == encode_prompts(tok, "seq2seq", texts)


def test_serving_fits_like_evaluation(tiny, monkeypatch, tmp_path):
    from recalign.serving.llm_backend import LLMBackend

    monkeypatch.setenv("RECALIGN_CACHE", str(tmp_path / "cache"))
    tok = _tiny("seq2seq")
    samples = build_eval_samples(tiny, "retrieval", "test")
    budget, fitted = _roomy_budget(tok, "seq2seq", samples)
    backend = LLMBackend(None, tok, "seq2seq", tiny, max_source_length=budget)
    for history, ids in zip(samples["history"].to_list(), fitted.ids, strict=True):
        assert backend._encode("retrieval", history) == ids
