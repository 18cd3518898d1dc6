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
- history items are banned inside the search (their leaves, and prefixes that lead only
  to them), so K other items still come back;
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

    `banned[i]`: items user i must not get (their history, with exclude_history);
    they are removed inside the search. `progress(n)` is called after each batch of n
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
                pad_token_id=session.pad_token_id,
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
    pad_token_id: int,
) -> list[Retrieved]:
    import torch

    n_users, eos = len(prompts), trie.eos_token_id
    device = session.device
    banned_keys = _banned_keys(trie, bans)
    forced_token, forced_run = trie.forced_token, trie.forced_run
    first_child = trie.child_node[np.minimum(trie.child_ptr[:-1], len(trie.child_node) - 1)]

    logp = session.start(prompts, width)  # (rows, V): the next-token distribution per row
    active = np.arange(n_users)  # batch-local user of each block of `width` rows
    node = np.full(n_users * width, -1, dtype=np.int64)
    node[::width] = 0  # one live beam (the root) per user to begin with
    score = np.full(n_users * width, -np.inf)
    score[::width] = 0.0
    fin_score = np.full((n_users, width), -np.inf)
    fin_item = np.zeros((n_users, width), dtype=np.int64)
    done = np.zeros(n_users, dtype=bool)
    gen_len = 0

    def normalise(values: np.ndarray, length: int) -> np.ndarray:
        return values / float(length) ** length_penalty if length_penalty else values

    def finished_now(running: np.ndarray, length: int) -> np.ndarray:
        """transformers' stopping rule per block: no running beam can beat the W-th best."""
        best = normalise(running.reshape(-1, width).max(axis=1), length)
        fin = fin_score[active]
        worst = np.where(np.isfinite(fin).all(axis=1), fin.min(axis=1), -1.0e9)
        return ~(best > worst)

    while True:
        live = np.flatnonzero(node >= 0)
        if live.size == 0:
            break
        # --- every admitted edge of every live beam, and its accumulated score -------
        e_row, e_tok, e_next = trie.expand(node[live])
        e_row = live[e_row]
        e_block = e_row // width
        if banned_keys.size:
            allowed = ~np.isin(active[e_block] * trie.num_nodes + e_next, banned_keys)
            e_row, e_tok, e_next, e_block = (
                e_row[allowed],
                e_tok[allowed],
                e_next[allowed],
                e_block[allowed],
            )
        gathered = logp[
            torch.as_tensor(e_row, device=device), torch.as_tensor(e_tok, device=device)
        ]
        cand = score[e_row] + gathered.double().cpu().numpy()
        finite = np.isfinite(cand)
        if not finite.all():
            e_row, e_tok, e_next, e_block, cand = (
                a[finite] for a in (e_row, e_tok, e_next, e_block, cand)
            )
        # --- per-user ranking of the candidates (best first) ------------------------
        order = np.lexsort((-cand, e_block))
        e_row, e_tok, e_next, e_block, cand = (
            a[order] for a in (e_row, e_tok, e_next, e_block, cand)
        )
        n_cand = len(cand)
        boundaries = np.flatnonzero(np.diff(e_block)) + 1
        starts = np.r_[0, boundaries] if n_cand else np.empty(0, dtype=np.int64)
        group_start = np.repeat(starts, np.diff(np.r_[starts, n_cand]))
        rank = np.arange(n_cand) - group_start
        is_eos = e_tok == eos
        running_flag = ~is_eos
        cum = np.cumsum(running_flag)
        before = cum[group_start] - running_flag[group_start] if n_cand else cum
        running_rank = cum - before - 1
        gen_len += 1

        # --- completed items: EOS among the block's top W candidates -----------------
        fin_sel = is_eos & (rank < width)
        if fin_sel.any():
            n_blocks = len(active)
            new_score = np.full((n_blocks, width), -np.inf)
            new_item = np.zeros((n_blocks, width), dtype=np.int64)
            new_score[e_block[fin_sel], rank[fin_sel]] = normalise(cand[fin_sel], gen_len)
            new_item[e_block[fin_sel], rank[fin_sel]] = trie.node_item[e_next[fin_sel]]
            merged_score = np.concatenate([fin_score[active], new_score], axis=1)
            merged_item = np.concatenate([fin_item[active], new_item], axis=1)
            top = np.argsort(-merged_score, axis=1, kind="stable")[:, :width]
            fin_score[active] = np.take_along_axis(merged_score, top, axis=1)
            fin_item[active] = np.take_along_axis(merged_item, top, axis=1)

        # --- the next running beams: the block's top W non-EOS candidates ------------
        rows = len(node)
        parents = np.arange(rows)
        tokens = np.full(rows, pad_token_id, dtype=np.int64)
        node = np.full(rows, -1, dtype=np.int64)
        score = np.full(rows, -np.inf)
        run_sel = running_flag & (running_rank < width)
        slot = e_block[run_sel] * width + running_rank[run_sel]
        parents[slot] = e_row[run_sel]
        tokens[slot] = e_tok[run_sel]
        node[slot] = e_next[run_sel]
        score[slot] = cand[run_sel]

        stop = finished_now(score, gen_len)
        if stop.any():
            done[active[stop]] = True
            dead_rows = np.repeat(stop, width)
            node[dead_rows], score[dead_rows] = -1, -np.inf
        if done.all():
            break

        # --- fuse the forced continuation shared by all live beams -------------------
        live_mask = node >= 0
        fused = int(min(forced_run[node[live_mask]].min(), max_fused)) if live_mask.any() else 0
        chain = np.full((rows, 1 + fused), pad_token_id, dtype=np.int64)
        chain[:, 0] = tokens
        cursor = node.copy()
        for j in range(fused):
            chain[live_mask, 1 + j] = forced_token[cursor[live_mask]]
            cursor[live_mask] = first_child[cursor[live_mask]]
        moved = not np.array_equal(parents, np.arange(rows))
        out = session.advance(
            torch.as_tensor(chain, device=device),
            torch.as_tensor(parents, device=device) if moved else None,
        )
        if fused:
            live_rows = np.flatnonzero(live_mask)
            index = torch.as_tensor(live_rows, device=device)
            steps = out[index, :fused].gather(
                -1, torch.as_tensor(chain[live_rows, 1:], device=device)[..., None]
            )[..., 0]
            increments = steps.double().cpu().numpy()  # (live, fused)
            for j in range(fused):
                # Users may stop mid-run (transformers checks after every token); their
                # rows go to -inf, and -inf plus an increment stays -inf.
                score[live_rows] += increments[:, j]
                stop = finished_now(score, gen_len + j + 1)
                if stop.any():
                    done[active[stop]] = True
                    dead = np.repeat(stop, width)
                    node[dead], score[dead] = -1, -np.inf
            gen_len += fused
        node = np.where(node >= 0, cursor, -1)
        logp = out[:, fused]
        if done.all():
            break

        # --- drop finished users once they hold enough rows --------------------------
        stopped = done[active]
        if stopped.any() and stopped.mean() >= _COMPACT_FRACTION:
            keep_blocks = np.flatnonzero(~stopped)
            keep_rows = (keep_blocks[:, None] * width + np.arange(width)[None, :]).ravel()
            index = torch.as_tensor(keep_rows, device=device)
            session.keep(index)
            logp = logp[index]
            node, score = node[keep_rows], score[keep_rows]
            active = active[keep_blocks]

    results = []
    for user in range(n_users):
        valid = np.isfinite(fin_score[user])
        items = fin_item[user][valid][:k]
        results.append(
            Retrieved(
                items=[int(i) for i in items], scores=[float(s) for s in fin_score[user][valid][:k]]
            )
        )
    return results
