"""Labels, truncation, padding, config validation and the memory guard."""

from __future__ import annotations

import polars as pl
import pytest

from recalign.errors import ConfigError, IncompatibleArtifactError
from recalign.models.tiny import train_tokenizer
from recalign.models.tokenization import encode_answer, encode_prompt
from recalign.training.config import load_config, make_config
from recalign.training.data import (
    IGNORE_INDEX,
    Collator,
    Lengths,
    causal_example,
    encode_batch,
    open_samples,
    sequence_lengths,
    truncate_answer,
)
from recalign.training.memory import ModelDims, check_memory, estimate, estimate_bytes

CORPUS = ["red lipstick matte", "blue nail polish", "the user bought: what next?"] * 20


def test_causal_example_masks_the_prompt():
    ids, labels = causal_example([3, 10, 11, 12], [20, 21, 1])
    assert ids == [3, 10, 11, 12, 20, 21, 1]
    assert labels == [-100, -100, -100, -100, 20, 21, 1]


def test_answers_are_cut_keeping_their_eos():
    assert truncate_answer([5, 6, 7, 8, 1], 3) == [5, 6, 1]
    assert truncate_answer([5, 1], 3) == [5, 1]


def test_tokenized_causal_labels_are_answer_only():
    tok = train_tokenizer(CORPUS, vocab_size=200, family="causal")
    frame = pl.DataFrame(
        {
            "input": ["the user bought: red lipstick", "what next?"],
            "target": ["blue nail polish", "red"],
        }
    )
    encoded = encode_batch(tok, "causal", frame["input"], frame["target"], Lengths(64, 16))
    rows = zip(encoded.input_ids, encoded.labels, frame.iter_rows(), strict=True)
    for ids, labels, (prompt_text, answer_text) in rows:
        prompt = encode_prompt(tok, "causal", prompt_text)
        answer = encode_answer(tok, "causal", answer_text)
        assert ids == prompt + answer
        assert labels == [IGNORE_INDEX] * len(prompt) + answer
    lengths = sequence_lengths(encoded, "causal")
    assert lengths == [len(ids) for ids in encoded.input_ids]
    batch = Collator(tok, "causal", Lengths(64, 16))(frame.to_dicts())
    short = lengths.index(min(lengths))
    width = max(lengths)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, width)
    # Padding: pad id in the inputs, masked out of attention and of the loss.
    pad = slice(min(lengths), width)
    assert (batch["input_ids"][short, pad] == tok.pad_token_id).all()
    assert (batch["attention_mask"][short, pad] == 0).all()
    assert (batch["labels"][short, pad] == IGNORE_INDEX).all()
    supervised = (batch["labels"][short] != IGNORE_INDEX).sum().item()
    assert supervised == len(encode_answer(tok, "causal", frame["target"][short]))


def test_tokenized_seq2seq_truncates_prompt_keeps_eos():
    tok = train_tokenizer(CORPUS, vocab_size=200, family="seq2seq")
    frame = pl.DataFrame({"input": ["red lipstick matte " * 10], "target": ["blue nail polish"]})
    encoded = encode_batch(tok, "seq2seq", frame["input"], frame["target"], Lengths(8, 3))
    ids, labels = encoded.input_ids[0], encoded.labels[0]
    assert len(ids) == 8 and ids[-1] == tok.eos_token_id
    assert len(labels) == 3 and labels[-1] == tok.eos_token_id
    assert sequence_lengths(encoded, "seq2seq") == [11]  # both sides: the padded work


def test_samples_of_another_dataset_are_refused(tmp_path):
    from .conftest import make_dataset, make_samples

    dataset = make_dataset(tmp_path / "data", users=6, items=8)
    samples = make_samples(dataset, tmp_path / "samples")
    with pytest.raises(IncompatibleArtifactError, match="another dataset"):
        open_samples(samples, "0" * 64)
    assert open_samples(samples, dataset.data_hash).data_hash == dataset.data_hash


def test_config_unknown_keys_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'batch_sise'"):
        make_config({"batch_sise": 4})
    path = tmp_path / "train.yaml"
    path.write_text("batch_size: 4\nlora:\n  rank: 8\n")
    with pytest.raises(ConfigError, match=r"lora\.rank"):
        load_config(path)
    path.write_text("batch_size: 4\nlora:\n  r: 4\n")
    config = load_config(path, max_steps=7, lora=True, epochs=None)
    assert (config.batch_size, config.max_steps, config.lora.enabled, config.lora.r) == (
        4,
        7,
        True,
        4,
    )


def test_config_save_steps_must_follow_eval_steps():
    with pytest.raises(ConfigError, match="multiple of eval_steps"):
        make_config({"eval_steps": 10, "save_steps": 15})


def test_memory_estimate_by_hand():
    dims = ModelDims(hidden=64, layers=2, heads=4, vocab=1000, params=100, trainable=100)
    # fp32: per layer 2*10*(34*64 + 5*4*10)*2 = 95_040; 2 layers; logits 3*2*5*1000*4;
    # weights 100*4 + 100*12.
    expected = 2 * 95_040 + 120_000 + 1_600
    assert estimate_bytes(dims, batch_size=2, seq_len=10, target_len=5) == expected


def test_memory_guard_refuses_with_advice():
    dims = ModelDims(hidden=512, layers=16, heads=8, vocab=32_000, params=10**8, trainable=10**8)
    with pytest.raises(ConfigError, match="run out of memory") as error:
        check_memory(
            dims,
            batch_size=512,
            seq_len=512,
            target_len=64,
            bytes_per_value=4,
            checkpointing=False,
            available=16 << 30,
            fraction=0.8,
        )
    assert "grad_accum" in str(error.value)
    # The same batch passes with the check switched off.
    check_memory(
        dims,
        batch_size=512,
        seq_len=512,
        target_len=64,
        bytes_per_value=4,
        checkpointing=False,
        available=16 << 30,
        fraction=None,
    )


def test_memory_estimate_counts_the_data_path():
    dims = ModelDims(hidden=64, layers=2, heads=4, vocab=1000, params=100, trainable=100)
    batch = {"batch_size": 2, "seq_len": 10, "target_len": 5}
    without = estimate(dims, **batch)
    assert without.data == 0 and without.total == estimate_bytes(dims, **batch)
    small, large = estimate(dims, **batch, samples=10**5), estimate(dims, **batch, samples=10**6)
    # Linear in the samples at a few bytes each: 16 B a sample, not the ~2 KB of ids.
    assert large.data - small.data == 16 * 9 * 10**5
    assert large.weights == without.weights and large.activations == without.activations


def test_memory_guard_advises_a_subset_when_data_dominates():
    dims = ModelDims(hidden=8, layers=1, heads=1, vocab=10, params=10, trainable=10)
    with pytest.raises(ConfigError, match="--max-train-samples"):
        check_memory(
            dims,
            batch_size=1,
            seq_len=8,
            target_len=4,
            bytes_per_value=4,
            checkpointing=False,
            available=1 << 30,
            fraction=0.8,
            samples=10**8,
        )


def test_memory_guard_warns_when_free_memory_is_short(caplog):
    dims = ModelDims(hidden=512, layers=16, heads=8, vocab=32_000, params=10**8, trainable=10**8)
    kwargs = {
        "batch_size": 8,
        "seq_len": 256,
        "target_len": 64,
        "bytes_per_value": 4,
        "checkpointing": False,
        "available": 64 << 30,
        "fraction": 0.8,
    }
    with caplog.at_level("WARNING", logger="recalign.training.memory"):
        need = check_memory(dims, **kwargs, free=None)
        assert not caplog.records
        check_memory(dims, **kwargs, free=need // 2)
    assert "free now" in caplog.text and "batch_size" in caplog.text
