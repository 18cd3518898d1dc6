"""Constrained retrieval: catalogue items only, K distinct, history banned inside the
search, and the same top-K lists as `generate(prefix_allowed_tokens_fn=...)`."""

from __future__ import annotations

import numpy as np
import pytest

from recalign.errors import ConfigError
from recalign.inference.reference import reference_retrieval
from recalign.inference.retrieval import constrained_retrieval
from tests.inference.conftest import prompts_for, trie_of
from tests.tolerances import assert_same_ranking

torch = pytest.importorskip("torch")


@pytest.mark.parametrize(("length_penalty", "ban"), [(0.0, True), (1.0, False)])
def test_fast_equals_reference(lm, texts, length_penalty, ban):
    """Both implement transformers' beam search (early_stopping=False) exactly, so the
    lists and their scores agree; length_penalty 1.0 exercises the length rule too."""
    model, tokenizer, family = lm
    trie = trie_of(tokenizer, family, texts)
    prompts, histories = prompts_for(tokenizer, family, texts, 4)
    banned = histories if ban else None
    kwargs = dict(k=8, num_beams=10, length_penalty=length_penalty)
    fast = constrained_retrieval(
        model, tokenizer, family, trie, prompts, banned, batch_size=3, **kwargs
    )
    ref = reference_retrieval(model, tokenizer, family, trie, prompts, banned, **kwargs)
    for f, r in zip(fast, ref, strict=True):
        # Two implementations batching users and beams differently (generate() keeps
        # beam scores in float32): equal up to float32 batching noise.
        assert_same_ranking(f.items, f.scores, r.items, r.scores)


def test_only_distinct_catalogue_items_and_no_history(lm, texts):
    model, tokenizer, family = lm
    trie = trie_of(tokenizer, family, texts)
    prompts, histories = prompts_for(tokenizer, family, texts, 6, seed=3)
    found = constrained_retrieval(
        model, tokenizer, family, trie, prompts, histories, k=20, num_beams=20
    )
    for result, history in zip(found, histories, strict=True):
        assert len(result.items) == 20 == len(set(result.items))
        assert set(result.items) <= set(range(1, len(texts) + 1))
        assert not set(result.items) & set(history)
        assert result.scores == sorted(result.scores, reverse=True)


def test_scores_are_answer_log_likelihoods(t5, texts):
    """A retrieved item's score (length_penalty 0) is its answer's log-likelihood."""
    from recalign.inference.scoring import score_candidates
    from recalign.models.tokenization import encode_answer

    model, tokenizer, family = t5
    trie = trie_of(tokenizer, family, texts)
    prompts, _ = prompts_for(tokenizer, family, texts, 2)
    for prompt, result in zip(
        prompts,
        constrained_retrieval(model, tokenizer, family, trie, prompts, k=5, num_beams=5),
        strict=True,
    ):
        answers = [encode_answer(tokenizer, family, texts[i - 1]) for i in result.items]
        direct = score_candidates(model, tokenizer, family, prompt, answers)
        assert result.scores == pytest.approx(direct.tolist(), abs=1e-9)


def test_batching_does_not_change_results(t5, texts):
    model, tokenizer, family = t5
    trie = trie_of(tokenizer, family, texts)
    prompts, histories = prompts_for(tokenizer, family, texts, 7, seed=5)
    one = constrained_retrieval(
        model, tokenizer, family, trie, prompts, histories, k=10, num_beams=10, batch_size=1
    )
    many = constrained_retrieval(
        model, tokenizer, family, trie, prompts, histories, k=10, num_beams=10, batch_size=7
    )
    for alone, together in zip(one, many, strict=True):
        assert_same_ranking(together.items, together.scores, alone.items, alone.scores)


def test_t5_session_equals_the_model_forward(t5, texts):
    """The T5 fast session (shared cross-attention) gives the logits of the HF forward,
    through fan-out, beam reorders and multi-token (fused) steps."""
    from recalign.inference.session import Seq2SeqSession, T5Session

    model, tokenizer, _ = t5
    prompts, _ = prompts_for(tokenizer, "seq2seq", texts, 3)
    fast = T5Session(model, pad_token_id=0, decoder_start_token_id=0)
    slow = Seq2SeqSession(model, pad_token_id=0, decoder_start_token_id=0)
    rng = np.random.default_rng(0)
    with torch.inference_mode():
        assert torch.allclose(fast.start(prompts), slow.start(prompts), atol=1e-10)
        rows = 3
        for m in (1, 3, 1, 2):
            users = np.sort(rng.integers(0, rows, size=int(rng.integers(2, 8))))
            parents = torch.as_tensor(users)
            tokens = torch.as_tensor(rng.integers(3, 50, size=(len(users), m)))
            assert torch.allclose(
                fast.advance(tokens, parents), slow.advance(tokens, parents), atol=1e-10
            )
            rows = len(users)


@pytest.mark.parametrize(
    ("k", "beams", "message"),
    [(61, 61, "above the catalogue size"), (0, 5, "at least 1"), (10, 5, "must be >= K")],
)
def test_bad_sizes(t5, texts, k, beams, message):
    model, tokenizer, family = t5
    trie = trie_of(tokenizer, family, texts)
    with pytest.raises(ConfigError, match=message):
        constrained_retrieval(model, tokenizer, family, trie, [[5, 1]], k=k, num_beams=beams)


@pytest.mark.parametrize("tie", [True, False])
def test_t5_session_handles_tied_and_untied_heads(tie):
    """Tied T5 heads rescale the decoder output by d_model**-0.5; the fast session must too."""
    from transformers import T5Config, T5ForConditionalGeneration

    from recalign.inference.session import Seq2SeqSession, T5Session

    config = T5Config(
        vocab_size=50,
        d_model=16,
        d_ff=32,
        d_kv=4,
        num_heads=4,
        num_layers=1,
        num_decoder_layers=2,
        decoder_start_token_id=0,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config).double().eval()
    fast = T5Session(model, pad_token_id=0, decoder_start_token_id=0)
    slow = Seq2SeqSession(model, pad_token_id=0, decoder_start_token_id=0)
    with torch.inference_mode():
        prompts = [[3, 4, 5, 1], [6, 1]]
        assert torch.allclose(fast.start(prompts), slow.start(prompts), atol=1e-12)
        parents, tokens = torch.tensor([0, 1, 1]), torch.tensor([[7, 8], [9, 10], [11, 12]])
        assert torch.allclose(
            fast.advance(tokens, parents), slow.advance(tokens, parents), atol=1e-12
        )


def test_bans_that_leave_fewer_than_k_items(t5, texts):
    """Banning all but 3 items returns exactly those 3 (no padding, no banned item)."""
    model, tokenizer, family = t5
    trie = trie_of(tokenizer, family, texts)
    keep = {4, 17, 42}
    banned = [set(range(1, len(texts) + 1)) - keep]
    prompts, _ = prompts_for(tokenizer, family, texts, 1)
    (result,) = constrained_retrieval(
        model, tokenizer, family, trie, prompts, banned, k=10, num_beams=10
    )
    assert sorted(result.items) == sorted(keep)
