"""Decoder sessions: run a prompt once, then extend many answer rows with a KV cache.

Beam search and candidate scoring share one need: encode (or prefill) each prompt once,
fan it out to `width` answer rows, and feed those rows new tokens — one or several per
call — reusing cached keys and values. A session hides the difference between the two
model families:

- seq2seq: the encoder runs once per prompt; the first decoder step runs on one row per
  prompt (computing the cross-attention keys/values once), then the cache is repeated
  to the rows. Beam reordering only ever moves rows *within* a prompt's block, where the
  cross-attention cache is identical, so only the self-attention cache is reordered —
  the cross-attention cache is never copied per step (`transformers`' beam search does).
- causal: the prompt is prefilled once (left padding, explicit positions) and the whole
  cache is repeated; answer tokens extend it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _pad(rows: Sequence[Sequence[int]], pad_id: int, *, left: bool) -> tuple[Any, Any]:
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if not row:
            continue
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.as_tensor(list(row), dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def _log_softmax(logits: Any) -> Any:
    import torch

    return torch.log_softmax(logits.float(), dim=-1)


class Seq2SeqSession:
    """Encoder once per prompt; `width` decoder rows per prompt (row = prompt * width + j)."""

    def __init__(self, model: Any, *, pad_token_id: int, decoder_start_token_id: int) -> None:
        self.model = model
        self.pad_token_id = pad_token_id
        self.start_id = decoder_start_token_id
        self.device = next(model.parameters()).device
        self.cache: Any = None
        self.hidden: Any = None
        self.mask: Any = None

    def start(self, prompts: Sequence[Sequence[int]], width: int) -> Any:
        """Log-probabilities of the first answer token, shape (len(prompts) * width, V)."""
        import torch
        from transformers import DynamicCache, EncoderDecoderCache

        ids, mask = _pad(prompts, self.pad_token_id, left=False)
        ids, mask = ids.to(self.device), mask.to(self.device)
        encoder = self.model.get_encoder()
        hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        self.cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        self.hidden, self.mask = hidden, mask
        start = torch.full((len(prompts), 1), self.start_id, dtype=torch.long, device=self.device)
        logp = self._forward(start)[:, -1]
        if width > 1:
            self.cache.batch_repeat_interleave(width)
            self.hidden = hidden.repeat_interleave(width, dim=0)
            self.mask = mask.repeat_interleave(width, dim=0)
            logp = logp.repeat_interleave(width, dim=0)
        return logp

    def _forward(self, tokens: Any) -> Any:
        from transformers.modeling_outputs import BaseModelOutput

        out = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=self.hidden),
            attention_mask=self.mask,
            decoder_input_ids=tokens,
            cache=self.cache,
            use_cache=True,
        )
        self.cache = out.cache
        return _log_softmax(out.logits)

    def advance(self, tokens: Any, parents: Any | None = None) -> Any:
        """Feed (rows, m) tokens; row r continues row `parents[r]` of the previous call.

        Returns log-probabilities (rows, m, V): position j is the distribution of the
        token after `tokens[:, j]`.
        """
        if parents is not None:
            # Parents lie in the same prompt block, whose cross-attention rows are equal.
            self.cache.self_attention_cache.reorder_cache(parents)
        return self._forward(tokens)

    def keep(self, rows: Any) -> None:
        """Drop every row not in `rows` (e.g. users whose search has finished)."""
        self.cache.batch_select_indices(rows)
        self.hidden = self.hidden[rows]
        self.mask = self.mask[rows]


class CausalSession:
    """Prompt prefilled once (left-padded); `width` answer rows per prompt."""

    def __init__(self, model: Any, *, pad_token_id: int) -> None:
        self.model = model
        self.pad_token_id = pad_token_id
        self.device = next(model.parameters()).device
        self.cache: Any = None
        self.mask: Any = None
        self.next_pos: Any = None

    def start(self, prompts: Sequence[Sequence[int]], width: int) -> Any:
        from transformers import DynamicCache

        ids, mask = _pad(prompts, self.pad_token_id, left=True)
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        self.cache = DynamicCache()
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.cache = out.cache
        logp = _log_softmax(out.logits[:, -1])
        self.mask = mask
        self.next_pos = mask.sum(-1)
        if width > 1:
            self.cache.batch_repeat_interleave(width)
            self.mask = mask.repeat_interleave(width, dim=0)
            self.next_pos = self.next_pos.repeat_interleave(width, dim=0)
            logp = logp.repeat_interleave(width, dim=0)
        return logp

    def advance(self, tokens: Any, parents: Any | None = None) -> Any:
        import torch

        if parents is not None:
            # Rows of one prompt share the prompt's mask and positions: only the cache moves.
            self.cache.reorder_cache(parents)
        rows, m = tokens.shape
        self.mask = torch.cat([self.mask, self.mask.new_ones((rows, m))], dim=-1)
        positions = self.next_pos[:, None] + torch.arange(m, device=self.device)[None, :]
        out = self.model(
            input_ids=tokens,
            attention_mask=self.mask,
            position_ids=positions,
            cache=self.cache,
            use_cache=True,
        )
        self.cache = out.cache
        self.next_pos = self.next_pos + m
        return _log_softmax(out.logits)

    def keep(self, rows: Any) -> None:
        self.cache.batch_select_indices(rows)
        self.mask = self.mask[rows]
        self.next_pos = self.next_pos[rows]


def open_session(model: Any, family: str, tokenizer: Any) -> Seq2SeqSession | CausalSession:
    """The session for `family`, with the pad and start ids of `model`/`tokenizer`."""
    from recalign.errors import ConfigError

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if family == "seq2seq":
        config = getattr(model, "config", None)
        start = getattr(config, "decoder_start_token_id", None)
        return Seq2SeqSession(
            model, pad_token_id=pad, decoder_start_token_id=pad if start is None else start
        )
    if family == "causal":
        return CausalSession(model, pad_token_id=pad)
    raise ConfigError(f"unknown model family {family!r}; expected 'seq2seq' or 'causal'")
