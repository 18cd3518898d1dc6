"""Decoder sessions: run prompts once, then extend answer rows with a KV cache.

Beam search and candidate scoring share one need: encode (or prefill) each prompt once,
then grow many answer rows from it — one or several tokens per call — reusing cached
keys and values. Rows are flat: `start(prompts)` gives one row per prompt, and every
`advance(tokens, parents)` says which previous row each new row continues (a beam
reorder, a fan-out to candidates, or both). Rows of one prompt must stay contiguous and
in prompt order (the search and the scorer both produce them that way).

Four implementations:
- `T5Session` (T5 / FLAN-T5, also with LoRA layers): its own decoder step over the
  model's modules. Cross-attention keys and values are computed once per *prompt* and
  all rows of that prompt attend to them together, so nothing of size (rows x source
  length) is copied or even read per row — HF's beam search copies the cross-attention
  cache for every beam at every step.
- `Seq2SeqSession`: any other encoder-decoder through the model's forward.
- `CausalSession`: decoder-only models; the prompt is prefilled once (left padding,
  explicit positions) and rows extend the cache (which copies the prompt's part per row).
- `LlamaSession` (llama_session.py): Llama-family decoders with the prompt's keys and
  values shared by all its rows, as `T5Session` shares cross-attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recalign.inference.tensors import model_device, pad_rows, softmax, upcast


class Seq2SeqSession:
    """Any encoder-decoder through its forward (the cache is reordered per row)."""

    def __init__(self, model: Any, *, pad_token_id: int, decoder_start_token_id: int) -> None:
        self.model = model
        self.pad_token_id = pad_token_id
        self.start_id = decoder_start_token_id
        self.device = model_device(model)

    def start(self, prompts: Sequence[Sequence[int]]) -> Any:
        """Logits of the first answer token, one row per prompt: (len(prompts), V)."""
        import torch
        from transformers import DynamicCache, EncoderDecoderCache

        ids, mask = pad_rows(prompts, self.pad_token_id, left=False, device=self.device)
        self.hidden = self.model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        self.mask = mask
        self.cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        start = torch.full((len(prompts), 1), self.start_id, dtype=torch.long, device=self.device)
        return self._forward(start)[:, -1]

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
        return upcast(out.logits)

    def advance(self, tokens: Any, parents: Any) -> Any:
        """Feed (rows, m) tokens, row r continuing previous row `parents[r]`.

        Returns logits (rows, m, V): position j scores the token after `tokens[:, j]`.
        """
        self.cache.reorder_cache(parents)
        self.hidden = self.hidden[parents]
        self.mask = self.mask[parents]
        return self._forward(tokens)


class CausalSession:
    """Decoder-only models: prompts prefilled once (left-padded), rows extend the cache."""

    def __init__(self, model: Any, *, pad_token_id: int) -> None:
        self.model = model
        self.pad_token_id = pad_token_id
        self.device = model_device(model)

    def start(self, prompts: Sequence[Sequence[int]]) -> Any:
        from transformers import DynamicCache

        ids, mask = pad_rows(prompts, self.pad_token_id, left=True, device=self.device)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            cache=DynamicCache(),
            use_cache=True,
            logits_to_keep=1,
        )
        self.cache = out.cache
        self.mask = mask
        self.next_pos = mask.sum(-1)
        return upcast(out.logits[:, -1])

    def advance(self, tokens: Any, parents: Any) -> Any:
        import torch

        self.cache.reorder_cache(parents)
        rows, m = tokens.shape
        self.mask = torch.cat([self.mask[parents], self.mask.new_ones((rows, m))], dim=-1)
        self.next_pos = self.next_pos[parents]
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
        return upcast(out.logits)


def _t5_model(model: Any) -> Any | None:
    """The T5ForConditionalGeneration inside `model` (also under a peft wrapper), or None."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if getattr(config, "model_type", None) != "t5" or not hasattr(base, "decoder"):
        return None
    return base


class T5Session:
    """T5 decoding with cross-attention shared by all rows of a prompt (module docstring)."""

    def __init__(self, model: Any, *, pad_token_id: int, decoder_start_token_id: int) -> None:
        self.model = _t5_model(model)
        if self.model is None:
            raise TypeError("T5Session needs a T5 model")
        config = self.model.config
        self.pad_token_id = pad_token_id
        self.start_id = decoder_start_token_id
        self.device = model_device(self.model)
        self.heads, self.head_dim = config.num_heads, config.d_kv
        # transformers >= 5.2x names the rescaling of tied T5 heads; older ones key it on
        # the tying itself.
        scale = getattr(config, "scale_decoder_outputs", None)
        if scale is None:
            scale = getattr(config, "tie_word_embeddings", False)
        self.scale_output = config.d_model**-0.5 if scale else None
        self.blocks = list(self.model.decoder.block)
        self.relative = self.blocks[0].layer[0].SelfAttention

    def _heads(self, x: Any) -> Any:
        """(..., L, H*D) -> (..., H, L, D)."""
        return x.view(*x.shape[:-1], self.heads, self.head_dim).transpose(-3, -2)

    def start(self, prompts: Sequence[Sequence[int]]) -> Any:
        import torch

        ids, mask = pad_rows(prompts, self.pad_token_id, left=False, device=self.device)
        hidden = self.model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        self.cross_k = [self._heads(b.layer[1].EncDecAttention.k(hidden)) for b in self.blocks]
        self.cross_v = [self._heads(b.layer[1].EncDecAttention.v(hidden)) for b in self.blocks]
        dtype = hidden.dtype
        blocked = torch.full(mask.shape, torch.finfo(dtype).min, dtype=dtype, device=self.device)
        self.cross_bias = torch.where(mask.bool(), 0.0, blocked)[:, None, None, :]
        self.self_k: list[Any] = [None] * len(self.blocks)
        self.self_v: list[Any] = [None] * len(self.blocks)
        self.row_prompt = torch.arange(len(prompts), device=self.device)
        self.length = 0
        start = torch.full((len(prompts), 1), self.start_id, dtype=torch.long, device=self.device)
        return self._decode(start)[:, -1]

    def advance(self, tokens: Any, parents: Any) -> Any:
        self.row_prompt = self.row_prompt[parents]
        self.self_k = [k[parents] for k in self.self_k]
        self.self_v = [v[parents] for v in self.self_v]
        self._drop_unused_prompts()
        return self._decode(tokens)

    def _drop_unused_prompts(self) -> None:
        """Forget prompts no row uses any more (users whose search is over), now and then."""
        import torch

        used = torch.unique(self.row_prompt)
        if used.numel() > 0.75 * self.cross_bias.shape[0]:
            return
        self.cross_k = [k[used] for k in self.cross_k]
        self.cross_v = [v[used] for v in self.cross_v]
        self.cross_bias = self.cross_bias[used]
        self.row_prompt = torch.searchsorted(used, self.row_prompt)

    def _cross_attention(self, attn: Any, x: Any, layer: int) -> Any:
        """All rows of a prompt query that prompt's keys/values in one batched matmul."""
        import torch

        rows, m, _ = x.shape
        n_prompts = self.cross_bias.shape[0]
        q = attn.q(x).view(rows, m, self.heads, self.head_dim)
        # Slot of each row within its prompt's block (rows are grouped by prompt).
        counts = torch.bincount(self.row_prompt, minlength=n_prompts)
        first = torch.cumsum(counts, 0) - counts
        slot = torch.arange(rows, device=x.device) - first[self.row_prompt]
        width = int(counts.max())
        grouped = q.new_zeros((n_prompts, width, m, self.heads, self.head_dim))
        grouped[self.row_prompt, slot] = q
        grouped = grouped.view(n_prompts, width * m, self.heads, self.head_dim).transpose(1, 2)
        scores = torch.matmul(grouped, self.cross_k[layer].transpose(-1, -2)) + self.cross_bias
        out = torch.matmul(softmax(scores), self.cross_v[layer])
        out = out.transpose(1, 2).reshape(n_prompts, width, m, self.heads * self.head_dim)
        return attn.o(out[self.row_prompt, slot])

    def _decode(self, tokens: Any) -> Any:
        import torch

        rows, m = tokens.shape
        past, total = self.length, self.length + m
        x = self.model.decoder.embed_tokens(tokens)
        bias = self.relative.compute_bias(m, total, device=x.device, past_seen_tokens=past)
        causal = torch.arange(total, device=x.device)[None, :] > (
            past + torch.arange(m, device=x.device)[:, None]
        )
        bias = bias.masked_fill(causal, torch.finfo(bias.dtype).min).to(x.dtype)
        for layer, block in enumerate(self.blocks):
            sa = block.layer[0]
            h = sa.layer_norm(x)
            attn = sa.SelfAttention
            q, k, v = self._heads(attn.q(h)), self._heads(attn.k(h)), self._heads(attn.v(h))
            if self.self_k[layer] is not None:
                k = torch.cat([self.self_k[layer], k], dim=2)
                v = torch.cat([self.self_v[layer], v], dim=2)
            self.self_k[layer], self.self_v[layer] = k, v
            # T5 does not scale q.k: the scale is folded into its initialisation.
            scores = torch.matmul(q, k.transpose(-1, -2)) + bias
            out = torch.matmul(softmax(scores), v)
            x = x + attn.o(out.transpose(1, 2).reshape(rows, m, -1))
            ca = block.layer[1]
            x = x + self._cross_attention(ca.EncDecAttention, ca.layer_norm(x), layer)
            x = block.layer[-1](x)
        x = self.model.decoder.final_layer_norm(x)
        if self.scale_output is not None:
            x = x * self.scale_output
        self.length = total
        return upcast(self.model.lm_head(x))


def open_session(model: Any, family: str, tokenizer: Any, *, fast: bool = True) -> Any:
    """The session for `family`: with `fast`, `T5Session` for T5 models and
    `LlamaSession` for Llama-family causal models; else the generic ones."""
    from recalign.errors import ConfigError

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if family == "seq2seq":
        config = getattr(model, "config", None)
        start = getattr(config, "decoder_start_token_id", None)
        start = pad if start is None else start
        if fast and _t5_model(model) is not None:
            return T5Session(model, pad_token_id=pad, decoder_start_token_id=start)
        return Seq2SeqSession(model, pad_token_id=pad, decoder_start_token_id=start)
    if family == "causal":
        from recalign.inference.llama_session import LlamaSession, supports_prefix_sharing

        if fast and supports_prefix_sharing(model):
            return LlamaSession(model, pad_token_id=pad)
        return CausalSession(model, pad_token_id=pad)
    raise ConfigError(f"unknown model family {family!r}; expected 'seq2seq' or 'causal'")
