"""`LlamaSession` (prompt keys/values shared by a prompt's rows) equals `CausalSession`."""

from __future__ import annotations

import numpy as np
import pytest

from recalign.inference.llama_session import LlamaSession, supports_prefix_sharing
from recalign.inference.session import CausalSession, open_session
from tests.inference.conftest import _tokenizer, prompts_for

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SIZES = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}


def _model(kind: str, vocab: int, **extra):
    configs = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
        "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
        "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM),
        "gpt2": (transformers.GPT2Config, transformers.GPT2LMHeadModel),
    }
    config_cls, model_cls = configs[kind]
    if kind == "gpt2":
        config = config_cls(vocab_size=vocab, n_embd=32, n_layer=2, n_head=2)
    else:
        config = config_cls(vocab_size=vocab, **SIZES, **extra)
    torch.manual_seed(0)
    return model_cls(config).double().eval()


@pytest.fixture(scope="module")
def tokenizer(texts):
    return _tokenizer(texts, "causal")


@pytest.mark.parametrize(
    ("kind", "heads", "kv_heads"),
    [("llama", 4, 4), ("llama", 4, 2), ("qwen2", 4, 1), ("mistral", 2, 2)],
)
def test_shared_prompt_session_equals_the_model_forward(tokenizer, texts, kind, heads, kv_heads):
    """Same logits through fan-out, beam reorders, dropped prompts and fused steps."""
    extra = {"sliding_window": None} if kind == "mistral" else {}
    model = _model(
        kind, len(tokenizer), num_attention_heads=heads, num_key_value_heads=kv_heads, **extra
    )
    assert supports_prefix_sharing(model)
    prompts, _ = prompts_for(tokenizer, "causal", texts, 4)  # different lengths: left padding
    pad = tokenizer.pad_token_id
    fast, slow = LlamaSession(model, pad_token_id=pad), CausalSession(model, pad_token_id=pad)
    rng = np.random.default_rng(1)
    with torch.inference_mode():
        assert torch.allclose(fast.start(prompts), slow.start(prompts), atol=1e-10)
        rows = len(prompts)
        for m in (1, 3, 1, 2, 1):
            parents = np.sort(rng.integers(0, rows, size=int(rng.integers(2, 9))))
            parents_t = torch.as_tensor(parents)
            tokens = torch.as_tensor(rng.integers(3, 50, size=(len(parents), m)))
            assert torch.allclose(
                fast.advance(tokens, parents_t), slow.advance(tokens, parents_t), atol=1e-10
            )
            rows = len(parents)


def test_other_architectures_use_the_generic_session(tokenizer):
    vocab = len(tokenizer)
    assert not supports_prefix_sharing(_model("gpt2", vocab))
    assert not supports_prefix_sharing(
        _model("qwen3", vocab, num_attention_heads=2, num_key_value_heads=2, head_dim=16)
    )
    sliding = _model("mistral", vocab, num_attention_heads=2, num_key_value_heads=2)
    assert sliding.config.sliding_window  # Mistral's default: a 4,096-token window
    assert not supports_prefix_sharing(sliding)
    assert isinstance(open_session(sliding, "causal", tokenizer), CausalSession)
    llama = _model("llama", vocab, num_attention_heads=2, num_key_value_heads=2)
    assert isinstance(open_session(llama, "causal", tokenizer), LlamaSession)
    assert isinstance(open_session(llama, "causal", tokenizer, fast=False), CausalSession)


def test_lora_layers_apply(tokenizer, texts):
    peft = pytest.importorskip("peft")
    base = _model("llama", len(tokenizer), num_attention_heads=2, num_key_value_heads=2)
    config = peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    from recalign.models.loading import peft_checkpointing_warning_silenced

    with peft_checkpointing_warning_silenced():
        model = peft.get_peft_model(base, config).double().eval()
    assert supports_prefix_sharing(model)
    prompts, _ = prompts_for(tokenizer, "causal", texts, 2)
    pad = tokenizer.pad_token_id
    fast, slow = LlamaSession(model, pad_token_id=pad), CausalSession(model, pad_token_id=pad)
    parents = torch.as_tensor([0, 0, 1])
    tokens = torch.as_tensor([[5, 6], [7, 8], [9, 10]])
    with torch.inference_mode():
        assert torch.allclose(fast.start(prompts), slow.start(prompts), atol=1e-10)
        assert torch.allclose(
            fast.advance(tokens, parents), slow.advance(tokens, parents), atol=1e-10
        )
