"""The synthetic demo shop: a seeded beauty catalogue and users with learnable habits.

`recalign run` uses it so the whole pipeline works offline in minutes. The catalogue is
made of *product lines* — a brand, a category, a line name and a variant — each holding
the category's product types in their usual order of purchase ("Shampoo", then
"Conditioner", then "Hair Mask"), numbered like a routine. Titles read like listings
of numbered ranges and carry the line and the step: "Lumière Hydrating Rose No. 3 Face
Serum" — the complement of an item is the same line at the next number, which a
text model can read and an id-based model must learn item by item.

Users have one to three preferred categories and a favourite brand in each. A sequence
follows three habits a sequential model (or a fine-tuned LM) can learn and popularity
cannot:

- complements: after an item, often the next product type of the *same* line;
- repeat categories: otherwise usually another item of the same category, favouring
  the user's brand;
- category switches among the user's preferences, rarely anything else.

Item choice inside a category follows a Zipf-like popularity. Ratings come from
user–item affinity (preferred category, favourite brand, item quality, user bias) plus
noise; timestamps increase. Every user draws from its own generator seeded by
(seed, user), so any chunk of users can be generated independently and streamed to
Parquet with flat memory.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import numpy as np
import polars as pl

from recalign.constants import (
    BRAND,
    CATEGORIES,
    DISAMBIGUATED,
    ITEM_ID,
    ITEMS,
    RATINGS,
    SOURCE_ID,
    TEXT,
    TEXT_SOURCE,
    TIMESTAMPS,
    TITLE,
    USER_ID,
)
from recalign.data.domain import DOMAINS
from recalign.data.store import DatasetRecord, PreparedDataset, write_prepared_streaming
from recalign.errors import ConfigError

logger = logging.getLogger(__name__)

# category -> (product types in purchase order, variants)
_CATALOGUE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Hair Care": (
        ("Shampoo", "Conditioner", "Hair Mask", "Leave-In Spray"),
        ("Argan Oil", "Coconut", "Tea Tree", "Rosemary", "Keratin", "Aloe"),
    ),
    "Skin Care": (
        ("Gel Cleanser", "Toner", "Face Serum", "Day Moisturizer", "Night Cream"),
        ("Rose", "Vitamin C", "Hyaluronic", "Niacinamide", "Green Tea", "Retinol"),
    ),
    "Makeup": (
        ("Primer", "Liquid Foundation", "Concealer", "Setting Powder"),
        ("Ivory", "Beige", "Sand", "Honey", "Caramel", "Espresso"),
    ),
    "Eyes": (
        ("Eyeliner", "Mascara", "Eye Makeup Remover"),
        ("Jet Black", "Brown", "Navy", "Plum"),
    ),
    "Lips": (
        ("Lip Scrub", "Lip Liner", "Lipstick", "Lip Gloss"),
        ("Ruby", "Nude", "Coral", "Berry", "Mauve"),
    ),
    "Nails": (
        ("Base Coat", "Nail Polish", "Top Coat", "Cuticle Oil"),
        ("Crimson", "Blush", "Midnight", "Lilac", "Gold"),
    ),
    "Bath & Body": (
        ("Body Wash", "Body Scrub", "Body Lotion"),
        ("Lavender", "Vanilla", "Citrus", "Sea Salt", "Oat"),
    ),
    "Men's Grooming": (
        ("Pre-Shave Oil", "Shaving Cream", "Aftershave Balm", "Beard Oil"),
        ("Sandalwood", "Cedar", "Menthol", "Unscented"),
    ),
    "Sun Care": (
        ("Sunscreen SPF 50", "After-Sun Gel", "Self-Tan Lotion"),
        ("Coconut", "Fragrance-Free", "Aloe", "Mango"),
    ),
    "Fragrance": (
        ("Eau de Parfum", "Body Mist", "Scented Candle"),
        ("Jasmine", "Amber", "Fig", "Oud", "Neroli"),
    ),
}
_BRANDS = (
    "Lumière", "Nordvik", "Verdanta", "Aurora Botanics", "Kestrel & Co.", "Maison Solène",
    "Pure Ritual", "Oakhaven", "Blossom Lab", "Marisol", "Tidewater", "Ember & Ash",
    "Velvet Fern", "Alba Nova", "Cirrus", "Hanami", "Saltbush", "Juniper Row", "Glacia",
    "Orchid Bay", "Bramble", "Sable & Sage", "Lotus Peak", "Northwind", "Copperleaf",
    "Dune Botanica", "Willow & Wren", "Solara", "Mistral", "Evergreen Apothecary",
)  # fmt: skip
_LINE_NAMES = (
    "Hydrating", "Nourishing", "Clarifying", "Repair", "Daily", "Ultra", "Calming",
    "Volumizing", "Brightening", "Sensitive", "Intense", "Pro", "Barrier", "Glow",
)  # fmt: skip
_TOP_CATEGORY = "Beauty"

# Behaviour of the simulated users (probabilities per step).
P_COMPLEMENT = 0.45  # buy the next product type of the line just bought
P_SAME_CATEGORY = 0.25  # otherwise stay in the category ...
P_EXPLORE = 0.05  # ... or, rarely, try a category outside the preferences
P_BRAND_LOYAL = 0.6  # inside a preferred category, pick the favourite brand
# Lengths 5..30 with a long tail; LENGTH_MIN >= MIN_SEQUENCE_LENGTH, so every user
# survives the leave-one-out split.
LENGTH_MIN, LENGTH_MAX, LENGTH_SCALE = 5, 30, 6.0
ZIPF_EXPONENT = 1.0
_EPOCH = 1_500_000_000  # July 2017; users start within four years of it

# Stream tags: the catalogue and each user draw from independent seed sequences.
_ITEMS_STREAM, _USERS_STREAM = 1, 2


@dataclass(frozen=True)
class _Catalogue:
    """Arrays indexed by item id (index 0 unused) plus per-category samplers."""

    items: pl.DataFrame
    category: np.ndarray  # category index
    brand: np.ndarray  # brand index
    quality: np.ndarray  # rating offset of the item
    next_in_line: np.ndarray  # the complementary item (0 at the end of a line)
    # Python-list copies for the per-step loop, where numpy scalar indexing is slow.
    next_list: list[int]
    category_list: list[int]
    by_category: list[tuple[list[int], list[float]]]  # items, cumulative weights
    by_brand: dict[tuple[int, int], tuple[list[int], list[float]]]
    present: list[int]  # categories with at least one item
    present_p: np.ndarray  # how likely a user is to prefer each present category
    brands_in: dict[int, tuple[list[int], np.ndarray]]  # category -> brands, probabilities


def _zipf(n: int, rng: np.random.Generator) -> np.ndarray:
    """Zipf-like weights in a random order: a few popular, a long tail."""
    return 1.0 / (rng.permutation(n) + 1.0) ** ZIPF_EXPONENT


def _sampler(ids: list[int], weights: np.ndarray) -> tuple[list[int], list[float]]:
    return ids, list(accumulate(float(w) for w in weights[ids]))


def _pick(sampler: tuple[list[int], list[float]], u: float) -> int:
    ids, cumulative = sampler
    return ids[min(bisect.bisect_right(cumulative, u * cumulative[-1]), len(ids) - 1)]


def _title(brand: str, line: str, position: int, product: str, variant: str) -> str:
    """A listing title: the line (brand, line name, variant) leads, then the product's
    number in the line's routine, so the next product of a line — the same words at the
    next number — can be read from the text (as with real numbered ranges)."""
    return f"{brand} {line} {variant} No. {position + 1} {product}"


def build_catalogue(num_items: int, seed: int) -> _Catalogue:
    """The shop's `num_items` products (seeded): categories, brands, numbered lines and
    their weights; `iter_synthetic_users` simulates users over it, `.items` is the table."""
    if num_items < 10:
        raise ConfigError(f"the synthetic shop needs at least 10 items, got {num_items}")
    rng = np.random.default_rng([seed, _ITEMS_STREAM])
    categories = list(_CATALOGUE)
    category_weights = _zipf(len(categories), rng) + 0.3
    brand_weights = _zipf(len(_BRANDS), rng)
    # Each brand sells in a few categories; every category has at least three brands.
    carried = [set(rng.choice(len(categories), size=3, replace=False)) for _ in _BRANDS]
    for c in range(len(categories)):
        for b in rng.choice(len(_BRANDS), size=3, replace=False):
            carried[b].add(c)
    brands_of = [
        [b for b in range(len(_BRANDS)) if c in carried[b]] for c in range(len(categories))
    ]

    rows: list[dict] = []
    lines: set[tuple[int, int, int, int]] = set()
    line_order: list[tuple[int, int, int, int]] = []
    cat_p = category_weights / category_weights.sum()
    while len(rows) < num_items:
        c = int(rng.choice(len(categories), p=cat_p))
        options = brands_of[c]
        b_p = brand_weights[options] / brand_weights[options].sum()
        b = int(options[int(rng.choice(len(options), p=b_p))])
        types, variants = _CATALOGUE[categories[c]]
        key = (c, b, int(rng.integers(len(_LINE_NAMES))), int(rng.integers(len(variants))))
        if key in lines:
            if len(lines) >= 50 * num_items:  # unreachable for sane sizes; never loop forever
                raise ConfigError(f"cannot build {num_items} distinct synthetic items")
            continue
        lines.add(key)
        line_order.append(key)
        _, _, line_name, variant = key
        for position, product in enumerate(types):
            title = _title(_BRANDS[b], _LINE_NAMES[line_name], position, product, variants[variant])
            rows.append(
                {
                    "line": len(line_order) - 1,
                    "position": position,
                    "category": c,
                    "brand": b,
                    TITLE: title,
                    CATEGORIES: [_TOP_CATEGORY, categories[c], product],
                }
            )
    rows = rows[:num_items]
    # Ids are a random permutation of creation order, so neighbouring ids say nothing
    # about complements (sequential ids leaked answers in P5).
    ids = rng.permutation(num_items) + 1
    line_weight = _zipf(len(line_order), rng)
    n = num_items + 1
    category = np.zeros(n, dtype=np.int64)
    brand = np.zeros(n, dtype=np.int64)
    weight = np.zeros(n)
    next_in_line = np.zeros(n, dtype=np.int64)
    quality = np.zeros(n)
    quality[1:] = rng.normal(0.0, 0.4, size=num_items)
    previous: dict[int, int] = {}
    for item_id, row in zip(ids.tolist(), rows, strict=True):
        category[item_id] = row["category"]
        brand[item_id] = row["brand"]
        # Earlier product types in a line sell more (everyone needs the shampoo).
        weight[item_id] = line_weight[row["line"]] * 0.7 ** row["position"]
        if row["position"] > 0:
            next_in_line[previous[row["line"]]] = item_id
        previous[row["line"]] = item_id
    items = pl.DataFrame(
        {
            ITEM_ID: ids,
            SOURCE_ID: [f"SYN{i:07d}" for i in ids.tolist()],
            TEXT: [r[TITLE] for r in rows],
            TEXT_SOURCE: ["title"] * num_items,
            DISAMBIGUATED: [False] * num_items,
            TITLE: [r[TITLE] for r in rows],
            BRAND: [_BRANDS[r["brand"]] for r in rows],
            CATEGORIES: [r[CATEGORIES] for r in rows],
        },
        schema_overrides={ITEM_ID: pl.Int64, CATEGORIES: pl.List(pl.String)},
    ).sort(ITEM_ID)
    members: list[list[int]] = [[] for _ in categories]
    by_brand_ids: dict[tuple[int, int], list[int]] = {}
    for item_id in range(1, n):
        members[category[item_id]].append(item_id)
        by_brand_ids.setdefault((int(category[item_id]), int(brand[item_id])), []).append(item_id)
    present = [c for c, m in enumerate(members) if m]
    brands_in = {}
    for c in present:
        brands = sorted({b for (cc, b) in by_brand_ids if cc == c})
        brands_in[c] = (brands, brand_weights[brands] / brand_weights[brands].sum())
    return _Catalogue(
        items=items,
        category=category,
        brand=brand,
        quality=quality,
        next_in_line=next_in_line,
        next_list=next_in_line.tolist(),
        category_list=category.tolist(),
        by_category=[_sampler(m, weight) if m else ([], []) for m in members],
        by_brand={key: _sampler(m, weight) for key, m in by_brand_ids.items()},
        present=present,
        present_p=category_weights[present] / category_weights[present].sum(),
        brands_in=brands_in,
    )


def generate_synthetic_items(num_items: int = 500, seed: int = 0) -> pl.DataFrame:
    """The catalogue as an items.parquet table (`item_id`, `source_id`, unique `text`, ...)."""
    return build_catalogue(num_items, seed).items


def _simulate_user(catalogue: _Catalogue, user_id: int, seed: int) -> tuple[list, list, list]:
    """One user's chronological items, ratings and timestamps."""
    rng = np.random.default_rng([seed, _USERS_STREAM, user_id])
    present = catalogue.present
    n_pref = min(len(present), 1 + int(rng.integers(3)))
    chosen = rng.choice(len(present), n_pref, replace=False, p=catalogue.present_p)
    preferred = [present[i] for i in chosen]
    favourite = {}
    for c in preferred:
        brands, brand_p = catalogue.brands_in[c]
        favourite[c] = brands[int(rng.choice(len(brands), p=brand_p))]
    length = LENGTH_MIN + min(LENGTH_MAX - LENGTH_MIN, int(rng.exponential(LENGTH_SCALE)))
    length = min(length, len(catalogue.category_list) - 1)  # nobody buys an item twice
    bias = rng.normal(0.0, 0.4)
    # Draw every random number of this user at once: per-call Generator overhead would
    # dominate a million-user run.
    u = rng.random((length, 4)).tolist()
    noise = rng.normal(0.0, 0.6, size=length)
    gaps = 3600 + rng.exponential(5 * 86400, size=length).astype(np.int64)
    start = _EPOCH + int(rng.integers(4 * 365 * 86400))

    def from_category(c: int, u_brand: float, u_item: float) -> int:
        key = (c, favourite.get(c, -1))
        if key in catalogue.by_brand and u_brand < P_BRAND_LOYAL:
            return _pick(catalogue.by_brand[key], u_item)
        return _pick(catalogue.by_category[c], u_item)

    items: list[int] = []
    seen: set[int] = set()
    last = 0
    next_in_line, category = catalogue.next_list, catalogue.category_list
    for step, (u_move, u_cat, u_brand, u_item) in enumerate(u):
        nxt = next_in_line[last]
        if nxt and nxt not in seen and u_move < P_COMPLEMENT:
            item = nxt
        else:
            if last and u_move < P_COMPLEMENT + P_SAME_CATEGORY:
                c = category[last]
            elif u_move > 1.0 - P_EXPLORE:
                c = present[min(int(u_cat * len(present)), len(present) - 1)]
            else:
                c = preferred[min(int(u_cat * len(preferred)), len(preferred) - 1)]
            item = from_category(c, u_brand, u_item)
            # Bought already: re-draw from the same uniforms shifted (deterministic), then
            # fall back to the first unseen item of another category.
            tries = 1
            while item in seen and tries < 8:
                item = from_category(
                    c, (u_brand + 0.37 * tries) % 1.0, (u_item + 0.61 * tries) % 1.0
                )
                tries += 1
            if item in seen:
                c = present[(present.index(c) + step + 1) % len(present)]
                ids = catalogue.by_category[c][0]
                item = next((i for i in ids if i not in seen), 0) or next(
                    i for i in range(1, len(category)) if i not in seen
                )
        items.append(item)
        seen.add(item)
        last = item

    c_items = catalogue.category[items]
    prefers = np.zeros(len(_CATALOGUE), dtype=bool)
    prefers[preferred] = True
    favourite_brand = np.full(len(_CATALOGUE), -1)
    favourite_brand[list(favourite)] = list(favourite.values())
    affinity = (
        catalogue.quality[items]
        + 0.8 * prefers[c_items]
        + 0.6 * (catalogue.brand[items] == favourite_brand[c_items])
        + bias
        + noise
    )
    ratings = np.clip(np.rint(3.2 + affinity), 1, 5)
    return items, ratings.tolist(), (start + np.cumsum(gaps)).tolist()


_SCHEMA = {
    USER_ID: pl.Int64,
    ITEMS: pl.List(pl.Int64),
    RATINGS: pl.List(pl.Float64),
    TIMESTAMPS: pl.List(pl.Int64),
}


def iter_synthetic_users(
    catalogue_or_items: int | _Catalogue,
    users: int = 2000,
    seed: int = 0,
    batch_size: int = 10_000,
) -> Iterator[pl.DataFrame]:
    """Batches of `sequences.parquet` rows for users 1..`users`, in user order.

    Pass the number of items (the catalogue is rebuilt from the same seed) or a catalogue.
    Each user depends only on (seed, user id), never on the batch size.
    """
    if users < 1:
        raise ConfigError(f"the synthetic shop needs at least one user, got {users}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    catalogue = (
        catalogue_or_items
        if isinstance(catalogue_or_items, _Catalogue)
        else build_catalogue(int(catalogue_or_items), seed)
    )
    for first in range(1, users + 1, batch_size):
        ids = list(range(first, min(first + batch_size, users + 1)))
        rows = [_simulate_user(catalogue, user, seed) for user in ids]
        yield pl.DataFrame(
            {
                USER_ID: ids,
                ITEMS: [r[0] for r in rows],
                RATINGS: [r[1] for r in rows],
                TIMESTAMPS: [r[2] for r in rows],
            },
            schema=_SCHEMA,
        )


def write_synthetic(
    out_dir: str | Path,
    users: int = 2000,
    items: int = 500,
    seed: int = 0,
    *,
    batch_size: int = 10_000,
    load: bool = True,
) -> PreparedDataset | None:
    """Generate the demo shop into a prepared-dataset directory, streaming the users.

    With `load=False` the dataset is not read back (returns None): memory stays flat
    in the number of users.
    """
    catalogue = build_catalogue(items, seed)
    options = {"users": users, "items": items, "seed": seed}
    logger.info("synthetic shop: %d users x %d items (seed %d)", users, items, seed)
    return write_prepared_streaming(
        out_dir,
        "synthetic",
        iter_synthetic_users(catalogue, users, seed, batch_size),
        catalogue.items,
        DatasetRecord(
            source={"kind": "synthetic", "generator": __name__},
            options=options,
            domain=DOMAINS["products"],
        ),
        load=load,
    )
