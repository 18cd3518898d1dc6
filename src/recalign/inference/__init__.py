"""Inference: the item trie, constrained retrieval, candidate scoring and ratings.

    trie.py        ItemTrie / build_trie / item_trie_for (cached per tokenizer + catalogue)
    session.py     decoder sessions: prompt once, many answer rows (T5 fast path)
    retrieval.py   constrained_retrieval: batched trie-constrained beam search
    reference.py   reference_retrieval: generate(prefix_allowed_tokens_fn=...)
    scoring.py     score_candidates, predict_ratings, expected_rating

Heavy libraries (torch, transformers) are imported inside the functions that need them.
"""
