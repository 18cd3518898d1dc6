"""load_model: presets, local directories, and the offline hub error."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import torch

from recalign.data.store import write_prepared
from recalign.errors import RecalignError
from recalign.models.loading import load_model

SMALL_T5 = {"d_model": 32, "d_ff": 64, "d_kv": 8, "num_heads": 4}
SMALL_CAUSAL = {"hidden_size": 32, "intermediate_size": 64}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    items = pl.DataFrame(
        {
            "item_id": [1, 2, 3],
            "source_id": ["a", "b", "c"],
            "text": ["Red lipstick", "Blue gel", "Dry shampoo"],
        }
    )
    sequences = pl.DataFrame({"user_id": [1, 2], "items": [[1, 2, 3], [3, 2, 1]]})
    return write_prepared(tmp_path_factory.mktemp("ds"), "fx", sequences, items)


@pytest.mark.parametrize(("spec", "family"), [("tiny-t5", "seq2seq"), ("tiny-causal", "causal")])
def test_presets_build_from_dataset(dataset, spec, family):
    overrides = SMALL_T5 if family == "seq2seq" else SMALL_CAUSAL
    loaded = load_model(spec, dataset=dataset, vocab_size=200, overrides=overrides)
    assert loaded.family == family
    assert loaded.model.config.vocab_size == len(loaded.tokenizer)
    # The item texts are in the vocabulary: no <unk> when encoding them.
    ids = loaded.tokenizer("Dry shampoo", add_special_tokens=False)["input_ids"]
    assert loaded.tokenizer.unk_token_id not in ids
    assert loaded.spec["preset"] == spec


def test_local_directory_round_trip(dataset, tmp_path):
    loaded = load_model("tiny-causal", dataset=dataset, vocab_size=200, overrides=SMALL_CAUSAL)
    loaded.model.save_pretrained(tmp_path)
    loaded.tokenizer.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    assert again.family == "causal"
    ids = torch.tensor([[3, 5, 6, 7]])
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.eval()(ids).logits, again.model.eval()(ids).logits)


def test_unknown_hub_name_offline_says_how_to_pass_a_path(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RecalignError) as error:
        load_model("no-such-org/no-such-model-xyz")
    message = str(error.value)
    assert "cannot be downloaded here" in message
    assert "--model DIR" in message


def test_missing_local_path_is_named(tmp_path):
    with pytest.raises(RecalignError, match="does not exist"):
        load_model(str(tmp_path / "nothing" / "here"))


def test_tiny_without_text_asks_for_data():
    from recalign.errors import ConfigError

    with pytest.raises(ConfigError, match="--data"):
        load_model("tiny-t5")


def test_given_tokenizer_path(tmp_path, dataset):
    t5_dir = Path(__file__).resolve().parents[3] / "shared" / "models" / "t5-small-tokenizer"
    if not t5_dir.is_dir():
        pytest.skip("shared T5 tokenizer not present")
    loaded = load_model("tiny-t5", tokenizer_path=t5_dir, overrides=SMALL_T5)
    assert len(loaded.tokenizer) == 32100
    assert loaded.model.config.vocab_size == 32100
