"""The item trie: every catalogue item's answer token ids, as a compact node table.

Nodes are numbered breadth-first (root = 0), so the children of a node are one
contiguous, token-sorted slice of `child_token` / `child_node` (CSR layout). That makes
the constraint for a whole batch of beams a few numpy gathers instead of a Python call
per beam, and the table is a handful of int arrays that cache to one `.npz` file.

An answer ends with EOS; the node reached by EOS is a leaf and carries the item id, so
"end of text" is admitted exactly at complete items.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from recalign.errors import DataFormatError

logger = logging.getLogger(__name__)

TRIE_FORMAT = 1  # bump when the on-disk layout changes: old cache files are then ignored
# The tables a cache file holds besides its format and EOS id: ItemTrie's array fields.
_ARRAYS = ("child_ptr", "child_token", "child_node", "parent", "node_item", "item_ids", "item_leaf")


@dataclass(frozen=True)
class ItemTrie:
    """A token trie over item answers (CSR node table; see the module docstring)."""

    eos_token_id: int
    child_ptr: np.ndarray  # (n_nodes + 1,) children of node n: child_ptr[n]:child_ptr[n+1]
    child_token: np.ndarray  # (n_edges,) token of each edge, sorted within a node
    child_node: np.ndarray  # (n_edges,) node each edge leads to
    parent: np.ndarray  # (n_nodes,) parent node (-1 for the root)
    node_item: np.ndarray  # (n_nodes,) item id at a leaf (after EOS), 0 elsewhere
    item_ids: np.ndarray  # (n_items,) the catalogue's item ids, in input order
    item_leaf: np.ndarray  # (n_items,) leaf node of each item, aligned with item_ids

    @property
    def num_nodes(self) -> int:
        return int(self.parent.shape[0])

    @property
    def num_items(self) -> int:
        return int(self.item_ids.shape[0])

    @cached_property
    def num_children(self) -> np.ndarray:
        return np.diff(self.child_ptr)

    @cached_property
    def leaf_count(self) -> np.ndarray:
        """Number of items below each node (1 at a leaf)."""
        counts = (self.node_item > 0).astype(np.int64)
        # Breadth-first numbering: every child has a larger id than its parent, so one
        # pass from the deepest node upward accumulates subtree counts.
        for node in range(self.num_nodes - 1, 0, -1):
            counts[self.parent[node]] += counts[node]
        return counts

    @cached_property
    def depth(self) -> np.ndarray:
        """Tokens from the root to each node (a leaf's depth is its answer length)."""
        depth = np.zeros(self.num_nodes, dtype=np.int64)
        for node in range(1, self.num_nodes):  # parents precede children (breadth-first)
            depth[node] = depth[self.parent[node]] + 1
        return depth

    @cached_property
    def forced_token(self) -> np.ndarray:
        """The only continuation of a node that has exactly one and it is not EOS, else -1."""
        forced = np.full(self.num_nodes, -1, dtype=np.int64)
        single = np.flatnonzero(self.num_children == 1)
        tokens = self.child_token[self.child_ptr[single]]
        keep = tokens != self.eos_token_id
        forced[single[keep]] = tokens[keep]
        return forced

    @cached_property
    def forced_run(self) -> np.ndarray:
        """How many forced (single, non-EOS) steps follow each node in a row."""
        run = np.zeros(self.num_nodes, dtype=np.int64)
        has = self.forced_token >= 0
        only_child = np.where(
            has, self.child_node[np.minimum(self.child_ptr[:-1], len(self.child_node) - 1)], 0
        )
        for node in range(self.num_nodes - 1, -1, -1):
            if has[node]:
                run[node] = 1 + run[only_child[node]]
        return run

    @cached_property
    def _item_index(self) -> dict[int, int]:
        return {int(item): i for i, item in enumerate(self.item_ids)}

    def leaf_of(self, item_id: int) -> int:
        return int(self.item_leaf[self._item_index[int(item_id)]])

    def step(self, node: int, token: int) -> int:
        """The node after `token` from `node`, or -1 when the trie does not admit it."""
        lo, hi = self.child_ptr[node], self.child_ptr[node + 1]
        pos = lo + np.searchsorted(self.child_token[lo:hi], token)
        if pos < hi and self.child_token[pos] == token:
            return int(self.child_node[pos])
        return -1

    @cached_property
    def _answers(self) -> list[tuple[int, ...]]:
        """Each item's answer token ids (aligned with `item_ids`), read back from the table."""
        # Node n (n >= 1) is reached by the edge child_node[n - 1] == n: its token.
        token_of = [-1, *self.child_token.tolist()]
        parent = self.parent.tolist()
        out = []
        for leaf in self.item_leaf.tolist():
            path = []
            node = leaf
            while node > 0:
                path.append(token_of[node])
                node = parent[node]
            out.append(tuple(path[::-1]))
        return out

    def with_items(self, sequences: Sequence[Sequence[int]], item_ids: Sequence[int]) -> ItemTrie:
        """A new trie holding these items and the new ones (the table is rebuilt whole:
        a CSR layout has no room to insert into; this one is left as it is). The answers
        are kept with the new trie, so the next addition does not read them back."""
        answers = [*self._answers, *(tuple(int(t) for t in s) for s in sequences)]
        trie = build_trie(
            answers, [*self.item_ids.tolist(), *(int(i) for i in item_ids)], self.eos_token_id
        )
        trie.__dict__["_answers"] = answers  # what cached_property would have computed
        return trie

    def walk(self, tokens: Sequence[int]) -> int:
        """The node a token prefix leads to from the root, or -1 if it is not a prefix."""
        node = 0
        for token in tokens:
            node = self.step(node, int(token))
            if node < 0:
                return -1
        return node

    def allowed(self, node: int) -> np.ndarray:
        """Tokens admitted after `node` (empty at a leaf)."""
        return self.child_token[self.child_ptr[node] : self.child_ptr[node + 1]]

    def item_at(self, tokens: Sequence[int]) -> int:
        """The item whose full answer is `tokens`, or 0 when it is none."""
        node = self.walk(tokens)
        return int(self.node_item[node]) if node >= 0 else 0

    def expand(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All admitted (row, token, next node) edges for a batch of nodes, vectorised.

        Returns `rows` (index into `nodes`), `tokens` and `next_nodes`, grouped by row.
        """
        nodes = np.asarray(nodes, dtype=np.int64)
        starts = self.child_ptr[nodes]
        counts = self.child_ptr[nodes + 1] - starts
        rows = np.repeat(np.arange(len(nodes)), counts)
        # Position of each edge within its row, added to the row's first edge.
        offsets = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
        edges = np.repeat(starts, counts) + offsets
        return rows, self.child_token[edges], self.child_node[edges]

    def mask(self, nodes: np.ndarray, vocab_size: int) -> np.ndarray:
        """Boolean (len(nodes), vocab_size) mask of admitted tokens."""
        rows, tokens, _ = self.expand(nodes)
        out = np.zeros((len(nodes), vocab_size), dtype=bool)
        out[rows, tokens] = True
        return out

    def banned_nodes(self, items: Sequence[int]) -> np.ndarray:
        """Nodes that lead only to `items` (their leaves and fully covered prefixes).

        Banning these inside the search removes the items without leaving beams stuck in
        a prefix that has nothing else below it.
        """
        index = self._item_index
        leaves = [int(self.item_leaf[index[int(i)]]) for i in set(items) if int(i) in index]
        if not leaves:
            return np.empty(0, dtype=np.int64)
        path_nodes: list[int] = []
        for leaf in leaves:
            node = leaf
            while node > 0:
                path_nodes.append(node)
                node = int(self.parent[node])
        nodes, counts = np.unique(np.asarray(path_nodes, dtype=np.int64), return_counts=True)
        return nodes[counts == self.leaf_count[nodes]]

    # --- persistence ----------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            format=np.int64(TRIE_FORMAT),
            eos_token_id=np.int64(self.eos_token_id),
            **{key: getattr(self, key) for key in _ARRAYS},
        )
        os.replace(tmp, path)  # atomic: a killed process never leaves half a cache file

    @classmethod
    def load(cls, path: str | Path) -> ItemTrie:
        with np.load(path) as data:
            if int(data["format"]) != TRIE_FORMAT:
                raise ValueError(f"trie cache {path} has format {int(data['format'])}")
            return cls(
                eos_token_id=int(data["eos_token_id"]), **{key: data[key] for key in _ARRAYS}
            )


def build_trie(
    sequences: Sequence[Sequence[int]], item_ids: Sequence[int], eos_token_id: int
) -> ItemTrie:
    """A trie from each item's answer ids (each ending with EOS exactly once, at the end).

    Raises `DataFormatError` when two items have the same ids (their texts tokenise
    alike, e.g. through unknown characters): retrieval could not tell them apart.
    """
    item_ids = np.asarray(item_ids, dtype=np.int64)
    if len(sequences) != len(item_ids):
        raise DataFormatError(f"{len(sequences)} token sequences for {len(item_ids)} items")
    if len(sequences) == 0:
        raise DataFormatError("cannot build an item trie over an empty catalogue")
    if (item_ids <= 0).any():
        raise DataFormatError("item ids must be positive (0 marks a non-leaf node)")
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    width = int(lengths.max())
    matrix = np.full((len(sequences), width), -1, dtype=np.int64)
    for row, seq in enumerate(sequences):
        matrix[row, : len(seq)] = seq
    for row, seq in enumerate(sequences):
        eos_at = np.flatnonzero(matrix[row, : lengths[row]] == eos_token_id)
        if len(seq) == 0 or eos_at.tolist() != [lengths[row] - 1]:
            raise DataFormatError(
                f"item {int(item_ids[row])}: answer ids must end with EOS ({eos_token_id}) "
                f"and contain it nowhere else, got {list(seq)[:40]}"
            )

    # Lexicographic row order (column 0 most significant); -1 padding sorts first, which
    # is harmless because every row ends with EOS and EOS occurs nowhere else.
    order = np.lexsort(matrix.T[::-1])
    matrix, lengths, sorted_items = matrix[order], lengths[order], item_ids[order]
    differs = matrix[1:] != matrix[:-1]
    same = ~differs.any(axis=1)
    if same.any():
        pairs = [(int(sorted_items[i]), int(sorted_items[i + 1])) for i in np.flatnonzero(same)[:5]]
        raise DataFormatError(
            f"{int(same.sum())} item pair(s) have identical answer token ids, e.g. {pairs}: "
            "their texts tokenise alike, so generation cannot tell them apart "
            "(make the item texts distinct for this tokenizer)"
        )
    lcp = differs.argmax(axis=1)  # first column where a row differs from the one above
    valid = np.arange(width)[None, :] < lengths[:, None]
    new = np.zeros_like(valid)
    new[0] = True
    new[1:] = np.arange(width)[None, :] >= lcp[:, None]
    new &= valid

    # Breadth-first ids: depth-major, then row order (= token order within a parent).
    depth_row = np.nonzero(new.T)
    n_nodes = 1 + len(depth_row[0])
    ids = np.zeros((width, len(matrix)), dtype=np.int64)
    ids[depth_row] = np.arange(1, n_nodes)
    # Rows that share a prefix share its node: the id of the nearest new node above.
    node_of = np.maximum.accumulate(ids, axis=1).T  # (rows, width)

    parent = np.full(n_nodes, -1, dtype=np.int64)
    token = np.full(n_nodes, -1, dtype=np.int64)
    depths, rows = depth_row
    parent[1:] = np.where(depths > 0, node_of[rows, np.maximum(depths - 1, 0)], 0)
    token[1:] = matrix[rows, depths]
    # Parents are non-decreasing over ids 1..n (breadth-first), so children are one slice.
    child_ptr = np.zeros(n_nodes + 1, dtype=np.int64)
    child_ptr[1:] = np.cumsum(np.bincount(parent[1:], minlength=n_nodes))
    leaves = node_of[np.arange(len(matrix)), lengths - 1]
    node_item = np.zeros(n_nodes, dtype=np.int64)
    node_item[leaves] = sorted_items
    item_leaf = np.empty(len(matrix), dtype=np.int64)
    item_leaf[order] = leaves
    return ItemTrie(
        eos_token_id=int(eos_token_id),
        child_ptr=child_ptr,
        child_token=token[1:].copy(),
        child_node=np.arange(1, n_nodes, dtype=np.int64),
        parent=parent,
        node_item=node_item,
        item_ids=item_ids,
        item_leaf=item_leaf,
    )


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of what decides the token ids: the tokenizer's full serialised state."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:  # slow tokenizers: the vocabulary is the best stable proxy
        digest.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(repr((tokenizer.eos_token_id, tokenizer.bos_token_id)).encode())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    from recalign.cache import cache_dir

    return cache_dir("tries")


def item_trie_for(
    tokenizer: Any,
    family: str,
    item_ids: Sequence[int],
    texts: Sequence[str],
    *,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> ItemTrie:
    """The trie of `encode_answer(text)` for every item, cached by (tokenizer, texts).

    The cache key covers the tokenizer's serialised state, the model family, the item ids
    and their texts, so any change to either rebuilds the trie.
    """
    from recalign.models.tokenization import encode_answer

    digest = hashlib.sha256(tokenizer_fingerprint(tokenizer).encode())
    digest.update(family.encode())
    digest.update(np.asarray(item_ids, dtype=np.int64).tobytes())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\x00")
    path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = path / f"trie-{TRIE_FORMAT}-{digest.hexdigest()[:32]}.npz"
    if use_cache and path.is_file():
        try:
            trie = ItemTrie.load(path)
            logger.debug("item trie from cache %s", path)
            return trie
        except (OSError, ValueError, KeyError) as error:
            logger.warning("ignoring unreadable trie cache %s: %s", path, error)
    sequences = [encode_answer(tokenizer, family, text) for text in texts]
    trie = build_trie(sequences, item_ids, tokenizer.eos_token_id)
    if use_cache:
        try:
            trie.save(path)
        except OSError as error:  # a read-only cache is slower, not wrong
            logger.warning("could not cache the item trie at %s: %s", path, error)
    logger.info("item trie: %d items, %d nodes", trie.num_items, trie.num_nodes)
    return trie
