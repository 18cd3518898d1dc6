"""A decoder session for Llama-family models whose rows share their prompt's keys/values.

`CausalSession` keeps one KV cache row per beam (or per candidate): every
`advance` re-indexes the whole cache — the prompt's keys and values copied once per row,
at every step — and appends the new tokens with another full copy. With 20 beams over a
~250-token chat prompt that copying, not the arithmetic, is much of a step's time on CPU.

Here the prompt is prefilled once (through the model's own forward, left-padded) and
its keys/values stay one per *prompt*; a row holds only the keys/values of the tokens
generated after it. Each layer attends in two parts — all rows of a prompt against that
prompt's keys in one batched matmul (as `T5Session` does for cross-attention), each row
against its own generated keys — and one softmax over both, so the result is the
attention over the concatenated sequence, as in the model's eager attention.

The decoder layer is the Llama one (pre-RMSNorm, rotary positions, grouped-query
attention, gated MLP), called through the model's own modules (so LoRA layers apply);
`supports_prefix_sharing` admits Llama (SmolLM2, TinyLlama, Llama 2/3), and Mistral /
Qwen2 without sliding windows. Anything else uses `CausalSession`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recalign.inference.tensors import model_device, pad_rows, softmax, upcast

# Architectures whose decoder layer is exactly the one `LlamaSession._layer` computes.
_LLAMA_LIKE = ("llama", "mistral", "qwen2")


def _base(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supports_prefix_sharing(model: Any) -> bool:
    """Whether `model` is a Llama-family causal LM `LlamaSession` reproduces exactly."""
    base = _base(model)
    config = getattr(base, "config", None)
    if getattr(config, "model_type", None) not in _LLAMA_LIKE:
        return False
    if getattr(config, "sliding_window", None) is not None and (
        config.model_type == "mistral"
        or "sliding_attention" in (getattr(config, "layer_types", None) or ())
    ):
        return False
    inner = getattr(base, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None or not hasattr(inner, "rotary_emb") or not hasattr(base, "lm_head"):
        return False
    attn = layers[0].self_attn
    # Extra per-head norms (Qwen3, OLMo2) would be skipped by `_layer`.
    return not any(hasattr(attn, name) for name in ("q_norm", "k_norm"))


def _rotate_half(x: Any) -> Any:
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rope(x: Any, cos: Any, sin: Any) -> Any:
    """Rotary positions, as the model's `apply_rotary_pos_emb` (x: rows, heads, m, d)."""
    return x * cos[:, None] + _rotate_half(x) * sin[:, None]


class LlamaSession:
    """Prompt keys/values shared by all rows of a prompt (module docstring)."""

    def __init__(self, model: Any, *, pad_token_id: int) -> None:
        self.model = _base(model)
        self.pad_token_id = pad_token_id
        self.device = model_device(self.model)
        inner = self.model.model
        self.layers = list(inner.layers[: self.model.config.num_hidden_layers])
        self.embed, self.norm, self.rotary = inner.embed_tokens, inner.norm, inner.rotary_emb
        attn = self.layers[0].self_attn
        self.head_dim, self.scaling = attn.head_dim, attn.scaling
        self.groups = attn.num_key_value_groups

    def start(self, prompts: Sequence[Sequence[int]]) -> Any:
        """Prefill the prompts; logits of the first answer token, one row per prompt."""
        import torch
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
        layers = out.cache.layers
        self.prompt_k = [layer.keys for layer in layers]  # (prompts, kv heads, P, d)
        self.prompt_v = [layer.values for layer in layers]
        dtype = self.prompt_k[0].dtype
        blocked = torch.full(mask.shape, torch.finfo(dtype).min, dtype=dtype, device=self.device)
        self.prompt_bias = torch.where(mask.bool(), 0.0, blocked)[:, None, None, :]
        self.gen_k: list[Any] = [None] * len(self.layers)
        self.gen_v: list[Any] = [None] * len(self.layers)
        self.row_prompt = torch.arange(len(prompts), device=self.device)
        self.next_pos = mask.sum(-1)
        self.generated = 0
        return upcast(out.logits[:, -1])

    def advance(self, tokens: Any, parents: Any) -> Any:
        """Feed (rows, m) tokens, row r continuing previous row `parents[r]`;
        logits (rows, m, V)."""
        self.row_prompt = self.row_prompt[parents]
        self.next_pos = self.next_pos[parents]
        if self.generated:
            self.gen_k = [k[parents] for k in self.gen_k]
            self.gen_v = [v[parents] for v in self.gen_v]
        self._drop_unused_prompts()
        return self._decode(tokens)

    def _drop_unused_prompts(self) -> None:
        """Forget prompts no row uses any more (users whose search is over), now and then."""
        import torch

        used = torch.unique(self.row_prompt)
        if used.numel() > 0.75 * self.prompt_bias.shape[0]:
            return
        self.prompt_k = [k[used] for k in self.prompt_k]
        self.prompt_v = [v[used] for v in self.prompt_v]
        self.prompt_bias = self.prompt_bias[used]
        self.row_prompt = torch.searchsorted(used, self.row_prompt)

    def _slots(self, rows: int) -> tuple[Any, int]:
        """Slot of each row within its prompt's block (rows are grouped by prompt)."""
        import torch

        n_prompts = self.prompt_bias.shape[0]
        counts = torch.bincount(self.row_prompt, minlength=n_prompts)
        first = torch.cumsum(counts, 0) - counts
        slot = torch.arange(rows, device=self.device) - first[self.row_prompt]
        return slot, int(counts.max())

    def _attention(self, q: Any, k_new: Any, v_new: Any, layer: int, slot: Any, width: int) -> Any:
        """q (rows, H, m, d); the new tokens' k/v (rows, Hkv, m, d) -> (rows, m, H*d)."""
        import torch

        rows, heads, m, d = q.shape
        kv_heads = heads // self.groups
        if self.gen_k[layer] is None:
            self.gen_k[layer], self.gen_v[layer] = k_new, v_new
        else:
            self.gen_k[layer] = torch.cat([self.gen_k[layer], k_new], dim=2)
            self.gen_v[layer] = torch.cat([self.gen_v[layer], v_new], dim=2)
        gen_k, gen_v = self.gen_k[layer], self.gen_v[layer]
        # Query head h reads key head h // groups: fold the groups into the query axis.
        q = q.reshape(rows, kv_heads, self.groups * m, d)
        n_prompts = self.prompt_bias.shape[0]
        grouped = q.new_zeros((n_prompts, width, kv_heads, self.groups * m, d))
        grouped[self.row_prompt, slot] = q
        grouped = grouped.transpose(1, 2).reshape(n_prompts, kv_heads, width * self.groups * m, d)
        prompt_scores = torch.matmul(grouped, self.prompt_k[layer].transpose(-1, -2))
        prompt_scores = prompt_scores * self.scaling + self.prompt_bias
        prompt_len = prompt_scores.shape[-1]
        prompt_scores = prompt_scores.view(n_prompts, kv_heads, width, self.groups * m, prompt_len)
        prompt_scores = prompt_scores.transpose(1, 2)[self.row_prompt, slot]
        gen_scores = torch.matmul(q, gen_k.transpose(-1, -2)) * self.scaling
        total = gen_k.shape[2]
        # New token j (at generated position total - m + j) sees generated positions <= it.
        future = torch.arange(total, device=q.device)[None, :] > (
            total - m + torch.arange(m, device=q.device)[:, None]
        )
        future = future.repeat(self.groups, 1)  # rows of q are (group, token)
        gen_scores = gen_scores.masked_fill(future, torch.finfo(gen_scores.dtype).min)
        probs = softmax(torch.cat([prompt_scores, gen_scores], dim=-1))
        out = torch.matmul(probs[..., prompt_len:], gen_v)
        prompt_probs = q.new_zeros((n_prompts, width, kv_heads, self.groups * m, prompt_len))
        prompt_probs[self.row_prompt, slot] = probs[..., :prompt_len]
        prompt_probs = prompt_probs.transpose(1, 2).reshape(
            n_prompts, kv_heads, width * self.groups * m, prompt_len
        )
        from_prompt = torch.matmul(prompt_probs, self.prompt_v[layer])
        from_prompt = from_prompt.view(n_prompts, kv_heads, width, self.groups * m, d)
        out = out + from_prompt.transpose(1, 2)[self.row_prompt, slot]
        return out.reshape(rows, heads, m, d).transpose(1, 2).reshape(rows, m, heads * d)

    def _decode(self, tokens: Any) -> Any:
        import torch

        rows, m = tokens.shape
        positions = self.next_pos[:, None] + torch.arange(m, device=self.device)[None, :]
        x = self.embed(tokens)
        cos, sin = self.rotary(x, positions)
        slot, width = self._slots(rows)
        for index, layer in enumerate(self.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q = attn.q_proj(h).view(rows, m, -1, self.head_dim).transpose(1, 2)
            k = attn.k_proj(h).view(rows, m, -1, self.head_dim).transpose(1, 2)
            v = attn.v_proj(h).view(rows, m, -1, self.head_dim).transpose(1, 2)
            q, k = _rope(q, cos, sin), _rope(k, cos, sin)
            x = x + attn.o_proj(self._attention(q, k, v, index, slot, width))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        self.next_pos = self.next_pos + m
        self.generated += m
        return upcast(self.model.lm_head(self.norm(x)))
