"""Prompt and answer token ids: the one definition training and inference share.

The evaluator builds its item trie from `encode_answer(item_text)` and scores candidates
with it, so training labels must be exactly these ids: a model trained on other ids
(a missing EOS, a BOS in the middle, a different leading space) would be scored on
sequences it never learnt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# For causal models without a chat template the answer follows the prompt after this
# separator; it ends with a newline so the answer's first token is a word start, the
# same token it is when the answer is encoded on its own.
CAUSAL_SEPARATOR = "\nAnswer:\n"


def _check_family(family: str) -> None:
    if family not in ("seq2seq", "causal"):
        from recalign.errors import ConfigError

        raise ConfigError(f"unknown model family {family!r}; expected 'seq2seq' or 'causal'")


def _ids(tokenizer: Any, text: str, *, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def _batch_ids(tokenizer: Any, texts: list[str], *, special: bool) -> list[list[int]]:
    if not texts:
        return []
    return [list(row) for row in tokenizer(texts, add_special_tokens=special)["input_ids"]]


def uses_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer puts BOS in front of a plain encoding (Llama does, GPT-2 not)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = _ids(tokenizer, "a", special=True)
    return bool(ids) and ids[0] == bos


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def encode_prompts(tokenizer: Any, family: str, texts: Sequence[str]) -> list[list[int]]:
    """Ids of the model input that precedes the answer, for many texts at once.

    seq2seq: the encoder input, with the tokenizer's EOS. causal: the user turn plus the
    generation prompt through the chat template when the tokenizer has one, else BOS (if
    the model uses one) + text + `CAUSAL_SEPARATOR`.
    """
    _check_family(family)
    texts = list(texts)
    if family == "seq2seq":
        return _batch_ids(tokenizer, texts, special=True)
    if has_chat_template(tokenizer):
        rendered = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
            )
            for text in texts
        ]
        # The rendered template already carries any BOS text; adding special tokens
        # again would put a second BOS in front.
        return _batch_ids(tokenizer, rendered, special=False)
    ids = _batch_ids(tokenizer, [text + CAUSAL_SEPARATOR for text in texts], special=False)
    if uses_bos(tokenizer):
        return [[tokenizer.bos_token_id, *row] for row in ids]
    return ids


def encode_answers(tokenizer: Any, family: str, texts: Sequence[str]) -> list[list[int]]:
    """Ids the model must produce for each text, each ending with EOS."""
    _check_family(family)
    eos = tokenizer.eos_token_id
    if eos is None:
        from recalign.errors import ConfigError

        raise ConfigError("the tokenizer has no EOS token; answers need one to end")
    if family == "seq2seq":
        rows = _batch_ids(tokenizer, list(texts), special=True)
        return [row if row and row[-1] == eos else [*row, eos] for row in rows]
    return [[*row, eos] for row in _batch_ids(tokenizer, list(texts), special=False)]


def encode_prompt(tokenizer: Any, family: str, text: str) -> list[int]:
    """`encode_prompts` for one text."""
    return encode_prompts(tokenizer, family, [text])[0]


def encode_answer(tokenizer: Any, family: str, text: str) -> list[int]:
    """`encode_answers` for one text: the ids the model must produce, ending with EOS."""
    return encode_answers(tokenizer, family, [text])[0]
