"""Sizes of the tiny random-init models that tests build (fast on a 2-core CPU)."""

from __future__ import annotations

TINY_OVERRIDES = {
    "seq2seq": {
        "d_model": 32,
        "d_ff": 64,
        "num_layers": 2,
        "num_decoder_layers": 2,
        "num_heads": 2,
        "d_kv": 16,
    },
    "causal": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
    },
}

# One encoder and one decoder layer: the smallest T5 a pipeline test trains in seconds.
ONE_LAYER_T5 = {**TINY_OVERRIDES["seq2seq"], "num_layers": 1, "num_decoder_layers": 1}
