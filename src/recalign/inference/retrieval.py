"""Retrieval by trie-constrained beam search: top-K catalogue items per user, fast.

The search is the beam search of `transformers` (`generate(num_beams=W,
prefix_allowed_tokens_fn=...)`, `early_stopping=False`), reproduced step for step so the
two give the same top-K lists (see `reference.py` and the tests), but organised for
speed:

- users are batched; each user owns a fixed block of W rows, so reordering beams moves
  rows only inside a block and the cross-attention cache is never copied (session.py);
- the constraint is vectorised: the trie's CSR arrays list every admitted (beam, token)
  edge of the batch at once, and only those log-probabilities are gathered — no
  vocabulary-sized mask, no Python call per beam;
- forced runs are fused: when every live beam sits on a trie node with a single
  (non-EOS) continuation, the next tokens are known, so they are fed to the decoder in
  the same call as the chosen token (one model call for m steps). Their log-probabilities
  are still read from that call's outputs, so scores are exactly those of step-by-step
  decoding;
- banned items (which ones is the history rule's business: `recalign.ranking.banned_items`)
  are removed inside the search (their leaves, and prefixes that lead only to them), so K
  other items still come back;
- users whose search is over leave the batch (the cache shrinks in occasional steps).

Scores are sums of token log-probabilities (log-likelihood of the item's answer ids)
divided by `length ** length_penalty` — `length_penalty=0` (the default here) ranks by
plain likelihood, the same quantity candidate scoring uses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recalign.errors import ConfigError
from recalign.inference.session import open_session
from recalign.inference.tensors import logsumexp
from recalign.inference.trie import ItemTrie

logger = logging.getLogger(__name__)

# When at least this fraction of the rows belongs to finished users, drop them.
_COMPACT_FRACTION = 0.25


@dataclass(frozen=True)
class Retrieved:
    """One user's top-K items, best first, and their scores."""

    items: list[int]
    scores: list[float]


def check_retrieval_sizes(k: int, num_beams: int, num_items: int) -> None:
    """Clear errors for impossible K / beam settings."""
    if k < 1:
        raise ConfigError(f"K must be at least 1, got {k}")
    if num_beams < k:
        raise ConfigError(f"the number of beams ({num_beams}) must be >= K ({k})")
    if k > num_items:
        raise ConfigError(
            f"K = {k} is above the catalogue size ({num_items} items): "
            "ask for at most as many items as the catalogue has"
        )


def constrained_retrieval(
    model: Any,
    tokenizer: Any,
    family: str,
    trie: ItemTrie,
    prompts: Sequence[Sequence[int]],
    banned: Sequence[Collection[int]] | None = None,
    *,
    k: int = 20,
    num_beams: int = 20,
    batch_size: int = 16,
    length_penalty: float = 0.0,
    max_fused: int = 64,
    progress: Callable[[int], None] | None = None,
) -> list[Retrieved]:
    """Top-`k` items for each prompt (encoded with `encode_prompt`).

    `banned[i]`: items user i must not get (`recalign.ranking.banned_items`: their
    history, with exclude_history); they are removed inside the search. `progress(n)` is called after each batch of n
    users.
    """
    import torch

    check_retrieval_sizes(k, num_beams, trie.num_items)
    if banned is not None and len(banned) != len(prompts):
        raise ConfigError(f"{len(banned)} banned-item sets for {len(prompts)} prompts")
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    session = open_session(model, family, tokenizer)
    # Longest prompts first: similar lengths share a batch (less padding), and a batch
    # that does not fit in memory fails at once rather than at the end.
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    results: list[Retrieved | None] = [None] * len(prompts)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            bans = [banned[i] if banned is not None else () for i in chunk]
            found = _search_batch(
                session,
                trie,
                [prompts[i] for i in chunk],
                bans,
                width=num_beams,
                k=k,
                length_penalty=length_penalty,
                max_fused=max_fused,
            )
            for i, result in zip(chunk, found, strict=True):
                results[i] = result
            if progress is not None:
                progress(len(chunk))
    return [r for r in results if r is not None]


def _banned_keys(trie: ItemTrie, bans: Sequence[Collection[int]]) -> np.ndarray:
    """Sorted `user * num_nodes + node` keys of the nodes each user may not enter."""
    keys = [
        user * trie.num_nodes + trie.banned_nodes(list(items))
        for user, items in enumerate(bans)
        if items
    ]
    return np.sort(np.concatenate(keys)) if keys else np.empty(0, dtype=np.int64)


def _search_batch(
    session: Any,
    trie: ItemTrie,
    prompts: Sequence[Sequence[int]],
    bans: Sequence[Collection[int]],
    *,
    width: int,
    k: int,
    length_penalty: float,
    max_fused: int,
) -> list[Retrieved]:
    """Beam search for one batch of users; rows are the live beams, grouped by user."""
    import torch

    n_users, eos = len(prompts), trie.eos_token_id
    device = session.device
    banned_keys = _banned_keys(trie, bans)
    forced_token, forced_run = trie.forced_token, trie.forced_run
    first_child = trie.child_node[np.minimum(trie.child_ptr[:-1], len(trie.child_node) - 1)]

    logits = session.start(prompts)  # (rows, V): the next-token logits of each row
    lse = logsumexp(logits)
    row_user = np.arange(n_users)  # one live beam (the root) per user to begin with
    node = np.zeros(n_users, dtype=np.int64)
    score = np.zeros(n_users)
    fin_score = np.full((n_users, width), -np.inf)
    fin_item = np.zeros((n_users, width), dtype=np.int64)
    done = np.zeros(n_users, dtype=bool)
    gen_len = 0

    def normalise(values: np.ndarray, length: int) -> np.ndarray:
        return values / float(length) ** length_penalty if length_penalty else values

    def stop_now(row_user: np.ndarray, score: np.ndarray, length: int) -> np.ndarray:
        """transformers' stopping rule, per user: no running beam can beat the W-th best."""
        best = np.full(n_users, -np.inf)
        np.maximum.at(best, row_user, score)
        best = normalise(best, length)
        worst = np.where(np.isfinite(fin_score).all(axis=1), fin_score.min(axis=1), -1.0e9)
        return ~done & ~(best > worst)

    while len(node):
        # --- every admitted edge of every live beam, and its accumulated score -------
        e_row, e_tok, e_next = trie.expand(node)
        e_user = row_user[e_row]
        if banned_keys.size:
            allowed = ~np.isin(e_user * trie.num_nodes + e_next, banned_keys)
            e_row, e_tok, e_next, e_user = (a[allowed] for a in (e_row, e_tok, e_next, e_user))
        rows_t = torch.as_tensor(e_row, device=device)
        gathered = logits[rows_t, torch.as_tensor(e_tok, device=device)] - lse[rows_t]
        cand = score[e_row] + gathered.double().cpu().numpy()
        # --- per-user ranking of the candidates (best first) ------------------------
        order = np.lexsort((-cand, e_user))
        e_row, e_tok, e_next, e_user, cand = (
            a[order] for a in (e_row, e_tok, e_next, e_user, cand)
        )
        n_cand = len(cand)
        starts = np.r_[0, np.flatnonzero(np.diff(e_user)) + 1] if n_cand else np.zeros(0, int)
        group_start = np.repeat(starts, np.diff(np.r_[starts, n_cand]))
        rank = np.arange(n_cand) - group_start
        is_eos = e_tok == eos
        running = ~is_eos & np.isfinite(cand)
        cum = np.cumsum(running)
        running_rank = cum - (cum[group_start] - running[group_start]) - 1 if n_cand else cum
        gen_len += 1

        # --- completed items: EOS among the user's top W candidates ------------------
        fin_sel = is_eos & (rank < width) & np.isfinite(cand)
        if fin_sel.any():
            new_score = np.full((n_users, width), -np.inf)
            new_item = np.zeros((n_users, width), dtype=np.int64)
            new_score[e_user[fin_sel], rank[fin_sel]] = normalise(cand[fin_sel], gen_len)
            new_item[e_user[fin_sel], rank[fin_sel]] = trie.node_item[e_next[fin_sel]]
            merged_score = np.concatenate([fin_score, new_score], axis=1)
            merged_item = np.concatenate([fin_item, new_item], axis=1)
            top = np.argsort(-merged_score, axis=1, kind="stable")[:, :width]
            fin_score = np.take_along_axis(merged_score, top, axis=1)
            fin_item = np.take_along_axis(merged_item, top, axis=1)

        # --- the next running beams: the user's top W non-EOS candidates -------------
        keep = running & (running_rank < width)
        parents, tokens = e_row[keep], e_tok[keep]
        node, score, row_user = e_next[keep], cand[keep], e_user[keep]
        done |= stop_now(row_user, score, gen_len)
        alive = ~done[row_user]
        parents, tokens, node, score, row_user = (
            a[alive] for a in (parents, tokens, node, score, row_user)
        )
        if not len(node):
            break

        # --- fuse the forced continuation shared by all live beams -------------------
        fused = int(min(forced_run[node].min(), max_fused))
        chain = np.empty((len(node), 1 + fused), dtype=np.int64)
        chain[:, 0] = tokens
        for j in range(fused):
            chain[:, 1 + j] = forced_token[node]
            node = first_child[node]
        logits = session.advance(
            torch.as_tensor(chain, device=device), torch.as_tensor(parents, device=device)
        )
        lse = logsumexp(logits)  # (rows, 1 + fused)
        if fused:
            chain_t = torch.as_tensor(chain[:, 1:], device=device)
            steps = logits[:, :fused].gather(-1, chain_t[..., None])[..., 0] - lse[:, :fused]
            increments = steps.double().cpu().numpy()
            for j in range(fused):
                # transformers checks the stopping rule after every token: so do we. No
                # item completes inside a forced run, so only the check can change.
                score = score + increments[:, j]
                done |= stop_now(row_user, score, gen_len + j + 1)
            gen_len += fused
        logits, lse = logits[:, fused], lse[:, fused]
        # Users that stopped inside the run keep their rows until the next selection,
        # where -inf scores leave them out.
        score = np.where(done[row_user], -np.inf, score)

    results = []
    for user in range(n_users):
        valid = np.isfinite(fin_score[user])
        results.append(
            Retrieved(
                items=[int(i) for i in fin_item[user][valid][:k]],
                scores=[float(s) for s in fin_score[user][valid][:k]],
            )
        )
    return results
