"""The reference retrieval: `model.generate(prefix_allowed_tokens_fn=...)` over the trie.

This is how constrained generation is usually written with `transformers`: a Python
callback per beam per step returns the admitted tokens. It is slow (and HF's beam search
copies the whole cache, cross-attention included, every step), but it is the yardstick
the fast search in `retrieval.py` must match list for list and beat on speed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from recalign.inference.retrieval import Retrieved, check_retrieval_sizes
from recalign.inference.tensors import pad_rows
from recalign.inference.trie import ItemTrie


def reference_retrieval(
    model: Any,
    tokenizer: Any,
    family: str,
    trie: ItemTrie,
    prompts: Sequence[Sequence[int]],
    banned: Sequence[Collection[int]] | None = None,
    *,
    k: int = 20,
    num_beams: int = 20,
    batch_size: int = 4,
    length_penalty: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> list[Retrieved]:
    """Top-`k` items per prompt with `generate`'s beam search and a per-beam callback."""
    import torch

    check_retrieval_sizes(k, num_beams, trie.num_items)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = trie.eos_token_id
    max_new = int(trie.depth.max()) + 1
    results: list[Retrieved] = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(range(start, min(start + batch_size, len(prompts))))
        bans = [
            set(trie.banned_nodes(list(banned[i])).tolist()) if banned is not None else set()
            for i in chunk
        ]
        ids, mask = pad_rows([prompts[i] for i in chunk], pad, left=family != "seq2seq")
        # seq2seq outputs start with the decoder start token; causal ones with the prompt.
        skip = 1 if family == "seq2seq" else ids.shape[1]

        def allowed(
            batch_id: int, sent: Any, bans: list[set[int]] = bans, skip: int = skip
        ) -> list[int]:
            node = 0
            for token in sent[skip:].tolist():
                node = trie.step(node, token)
                if node < 0 or trie.node_item[node]:
                    # A finished (or dead) beam: any token keeps it going; its score is
                    # already out of the running.
                    return [pad]
            children = trie.child_node[trie.child_ptr[node] : trie.child_ptr[node + 1]]
            tokens = trie.allowed(node)
            if bans[batch_id]:
                tokens = tokens[[c not in bans[batch_id] for c in children.tolist()]]
            return tokens.tolist() or [pad]

        with torch.inference_mode():
            out = model.generate(
                input_ids=ids.to(model.device),
                attention_mask=mask.to(model.device),
                num_beams=num_beams,
                num_return_sequences=num_beams,
                length_penalty=length_penalty,
                early_stopping=False,
                do_sample=False,
                max_new_tokens=max_new,
                min_new_tokens=0,
                pad_token_id=pad,
                eos_token_id=eos,
                prefix_allowed_tokens_fn=allowed,
                return_dict_in_generate=True,
                output_scores=True,
            )
        sequences = out.sequences[:, skip:].tolist()
        scores = out.sequences_scores.double().cpu().numpy()
        for n, _ in enumerate(chunk):
            items, item_scores = [], []
            for b in range(n * num_beams, (n + 1) * num_beams):
                seq = sequences[b]
                end = seq.index(eos) + 1 if eos in seq else len(seq)
                item = trie.item_at(seq[:end])
                # Beams that never completed an item keep generate's placeholder score.
                if item and scores[b] > -1.0e8 and item not in items:
                    items.append(item)
                    item_scores.append(float(scores[b]))
            results.append(Retrieved(items=items[:k], scores=item_scores[:k]))
        if progress is not None:
            progress(len(chunk))
    return results
