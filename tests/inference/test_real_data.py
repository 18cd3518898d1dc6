"""The item trie over a real catalogue with the real T5 tokenizer (skips without them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recalign.inference.trie import item_trie_for

TOKENIZER = Path(__file__).resolve().parents[2].parent / "shared" / "models" / "t5-small-tokenizer"


@pytest.mark.data
def test_beauty_catalogue_with_the_t5_tokenizer(real_data_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    if not TOKENIZER.is_dir():
        pytest.skip(f"no T5 tokenizer at {TOKENIZER}")
    from recalign.data.prepare import prepare_dataset
    from recalign.models.tokenization import encode_answer

    source = real_data_dir / "amazon2014" / "beauty"
    dataset = prepare_dataset("amazon2014-beauty", tmp_path / "beauty", source=source)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(TOKENIZER))
    ids = dataset.items["item_id"].to_list()
    texts = dataset.items["text"].to_list()
    # Distinct texts must stay distinct after tokenisation, or the build refuses.
    trie = item_trie_for(tokenizer, "seq2seq", ids, texts, cache_dir=tmp_path / "cache")
    assert trie.num_items == 12101
    for item, text in list(zip(ids, texts, strict=True))[::97]:
        assert trie.item_at(encode_answer(tokenizer, "seq2seq", text)) == item
