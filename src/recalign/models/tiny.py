"""Small models built from a config, and tokenizers trained on the dataset's own text.

These are the offline defaults: no weights to download, sized so that a CPU trains a
few hundred samples per second (see docs/MACHINE.md: d_model 128, 2+2 layers).
"""

from __future__ import annotations

import itertools
import logging
import string
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger(__name__)

NUM_SENTINELS = 100  # T5's <extra_id_0..99>, used by the MLM task's masks

# The defaults of the presets; tests and configs override any key.
TINY_T5_DEFAULTS: dict[str, Any] = {
    "d_model": 128,
    "d_ff": 512,
    "d_kv": 32,
    "num_heads": 4,
    "num_layers": 2,
    "num_decoder_layers": 2,
    "dropout_rate": 0.1,
    "feed_forward_proj": "gated-gelu",  # as FLAN-T5
    # transformers 5 always ties T5's output layer to the embedding; `True` keeps the
    # original T5's d_model**-0.5 rescaling of the decoder output (`False` is FLAN-T5's
    # unscaled head). A model trained from scratch needs it: unscaled, the N(0, 1)
    # embedding init gives logits of std ~sqrt(d_model) and a first loss of ~70 instead
    # of ln(vocab) ~9; on Beauty `paper` samples the valid loss after 400 steps was 10.14
    # unscaled vs 6.88 scaled (below the unscaled run's 7.06 after 1,000 steps).
    "tie_word_embeddings": True,
}
TINY_CAUSAL_DEFAULTS: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,  # as SmolLM2
}


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8000, family: str = "seq2seq") -> Any:
    """A BPE tokenizer with SentencePiece-style word marks (`▁`) trained on `texts`.

    seq2seq: T5 layout, pad=0, eos=1, unk=2, the EOS appended to every encoding and
    `<extra_id_0..99>` sentinels at the end of the vocabulary. causal: pad=0, eos=1,
    unk=2, bos=3, the BOS put in front of every encoding (Llama layout).

    BPE rather than T5's Unigram: on a catalogue's text the Unigram trainer (tokenizers
    0.23) kept ~600 pieces whatever the vocabulary size and cut most words into letters
    (a synthetic-shop title: 37 pieces; BPE: 12), which made prompts three times longer
    and copying an item's name much harder to learn. Punctuation is split off words, so
    an item's words are the same tokens before a comma, a semicolon or the end.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    from recalign.errors import ConfigError

    if family not in ("seq2seq", "causal"):
        raise ConfigError(f"unknown model family {family!r}; expected 'seq2seq' or 'causal'")
    specials = ["<pad>", "</s>", "<unk>"] + (["<s>"] if family == "causal" else [])
    sentinels = [f"<extra_id_{i}>" for i in range(NUM_SENTINELS)] if family == "seq2seq" else []
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()]
    )
    tokenizer.decoder = decoders.Metaspace()
    trainer = BpeTrainer(
        vocab_size=max(vocab_size - len(sentinels), len(specials) + 50),
        special_tokens=specials,
        show_progress=False,
    )
    # Every printable ASCII character and the newline appear once, so prompt punctuation
    # and the causal answer separator never fall to <unk> on a small corpus.
    alphabet = " ".join(string.printable.strip()) + "\n"
    tokenizer.train_from_iterator(
        itertools.chain([alphabet], (t for t in texts if t)), trainer=trainer
    )
    if sentinels:
        # Sentinels go last, in reverse, so <extra_id_0> is the last id as in T5.
        tokenizer.add_special_tokens(list(reversed(sentinels)))
    eos_id = tokenizer.token_to_id("</s>")
    if family == "seq2seq":
        tokenizer.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos_id)]
        )
        extra: dict[str, Any] = {"extra_special_tokens": sentinels}
    else:
        bos_id = tokenizer.token_to_id("<s>")
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
        )
        extra = {"bos_token": "<s>"}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=4096,
        **extra,
    )
    logger.info("trained a %s tokenizer with %d tokens", family, len(fast))
    return fast


def build_tiny_t5(tokenizer: Any, **overrides: Any) -> Any:
    """A randomly initialised small T5 matched to `tokenizer`."""
    from transformers import T5Config, T5ForConditionalGeneration

    settings = {**TINY_T5_DEFAULTS, **overrides}
    config = T5Config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,  # T5 starts decoding from <pad>
        **settings,
    )
    return T5ForConditionalGeneration(config)


def build_tiny_causal(tokenizer: Any, **overrides: Any) -> Any:
    """A randomly initialised small Llama matched to `tokenizer`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    settings = {**TINY_CAUSAL_DEFAULTS, **overrides}
    settings.setdefault("head_dim", settings["hidden_size"] // settings["num_attention_heads"])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        **settings,
    )
    return LlamaForCausalLM(config)
