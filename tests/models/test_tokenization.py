"""Prompt/answer ids: the contract the evaluator's trie and the training labels share."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recalign.models.tiny import NUM_SENTINELS, build_tiny_causal, build_tiny_t5, train_tokenizer
from recalign.models.tokenization import (
    CAUSAL_SEPARATOR,
    encode_answer,
    encode_answers,
    encode_prompt,
    encode_prompts,
)

CORPUS = ["red lipstick matte", "blue nail polish", "dry shampoo for hair", "What next?"] * 20
T5_TOKENIZER = Path(__file__).resolve().parents[3] / "shared" / "models" / "t5-small-tokenizer"


@pytest.fixture(scope="module")
def t5_tok():
    return train_tokenizer(CORPUS, vocab_size=300, family="seq2seq")


@pytest.fixture(scope="module")
def causal_tok():
    return train_tokenizer(CORPUS, vocab_size=300, family="causal")


def test_t5_layout(t5_tok):
    assert (t5_tok.pad_token_id, t5_tok.eos_token_id, t5_tok.unk_token_id) == (0, 1, 2)
    last = len(t5_tok) - 1
    assert t5_tok.convert_ids_to_tokens(last) == "<extra_id_0>"
    assert t5_tok.convert_ids_to_tokens(last - NUM_SENTINELS + 1) == "<extra_id_99>"
    # A sentinel in the text is one token, not split into pieces.
    ids = t5_tok("red <extra_id_0> lipstick", add_special_tokens=False)["input_ids"]
    assert last in ids


def test_causal_layout(causal_tok):
    assert (causal_tok.pad_token_id, causal_tok.eos_token_id, causal_tok.unk_token_id) == (0, 1, 2)
    assert causal_tok.bos_token_id == 3
    assert causal_tok("red")["input_ids"][0] == 3


def test_seq2seq_prompt_and_answer_end_with_eos(t5_tok):
    prompt = encode_prompt(t5_tok, "seq2seq", "red lipstick")
    answer = encode_answer(t5_tok, "seq2seq", "red lipstick")
    assert prompt == answer == t5_tok("red lipstick")["input_ids"]
    assert answer[-1] == 1 and answer.count(1) == 1


def test_causal_plain_prompt_has_bos_and_separator(causal_tok):
    prompt = encode_prompt(causal_tok, "causal", "red lipstick")
    answer = encode_answer(causal_tok, "causal", "blue nail polish")
    assert prompt[0] == causal_tok.bos_token_id and prompt.count(causal_tok.bos_token_id) == 1
    assert causal_tok.decode(prompt, skip_special_tokens=True).endswith(CAUSAL_SEPARATOR)
    assert answer[-1] == causal_tok.eos_token_id
    assert causal_tok.bos_token_id not in answer
    assert causal_tok.decode(answer, skip_special_tokens=True) == "blue nail polish"


def test_causal_prompt_uses_chat_template(causal_tok):
    tok = train_tokenizer(CORPUS, vocab_size=300, family="causal")
    tok.chat_template = (
        "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    prompt = encode_prompt(tok, "causal", "red lipstick")
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "red lipstick"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == tok(rendered, add_special_tokens=False)["input_ids"]
    assert prompt.count(tok.bos_token_id) == 1  # no second BOS from add_special_tokens
    assert tok.decode(prompt).endswith("<|assistant|>")


def test_unknown_family_is_an_error(t5_tok):
    from recalign.errors import ConfigError

    with pytest.raises(ConfigError, match="family"):
        encode_prompt(t5_tok, "encoder", "x")


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.text(alphabet="abcdefghij lmnop", min_size=1, max_size=30), min_size=1, max_size=5)
)
def test_batch_equals_single(texts):
    tok = _CAUSAL_CACHE.setdefault("tok", train_tokenizer(CORPUS, vocab_size=300, family="causal"))
    for family in ("seq2seq", "causal"):
        assert encode_prompts(tok, family, texts) == [encode_prompt(tok, family, t) for t in texts]
        assert encode_answers(tok, family, texts) == [encode_answer(tok, family, t) for t in texts]


_CAUSAL_CACHE: dict = {}


@pytest.mark.skipif(not T5_TOKENIZER.is_dir(), reason="shared T5 tokenizer not present")
def test_real_t5_tokenizer_answer_ids():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(T5_TOKENIZER)
    ids = encode_answer(tok, "seq2seq", "Red lipstick")
    assert ids == tok("Red lipstick")["input_ids"] and ids[-1] == 1


def test_tiny_models_match_tokenizer(t5_tok, causal_tok):
    t5 = build_tiny_t5(t5_tok, d_model=32, d_ff=64, d_kv=8, num_heads=4)
    assert t5.config.vocab_size == len(t5_tok)
    assert t5.config.decoder_start_token_id == 0 and t5.config.num_layers == 2
    llama = build_tiny_causal(causal_tok, hidden_size=32, intermediate_size=64)
    assert llama.config.vocab_size == len(causal_tok)
    assert llama.config.bos_token_id == 3 and llama.config.num_hidden_layers == 2


def test_trained_tokenizer_is_deterministic():
    """A resumed run or a second process must get the same ids for the same text."""
    texts = [f"{c} item {i} (size {i % 7})" for i, c in enumerate("abcdefgh" * 30)]
    first = train_tokenizer(texts, vocab_size=300).backend_tokenizer.to_str()
    for _ in range(3):
        assert train_tokenizer(texts, vocab_size=300).backend_tokenizer.to_str() == first
