"""`prepare_dataset`: read a source, order, filter, assign ids, build item text, write.

    reader -> SourceData -> drop exact duplicate rows -> [k-core] -> chronological order
    (stable) -> drop users with fewer than 3 interactions -> dense ids -> item text
    (word and character budgets, fallbacks, disambiguation) -> store

Nothing is dropped or cut silently: every step counts what it removed into the report
(manifest.json's `report`); `recalign.data.dropped` holds the duplicate rule and turns
the report into the lines `recalign data prepare` prints (docs/data.md).

Id rule: users and items get dense ids from 1 in sorted source-id order (numeric order
when every source id is an integer), so MovieLens ids 1..1682 and the S3-Rec user ids
stay as they are, and ids never depend on the order of the log. S3-Rec item ids are
kept from the files as the issue demands.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from recalign.constants import (
    ITEM_ID,
    ITEMS,
    MIN_SEQUENCE_LENGTH,
    RATINGS,
    SOURCE_ID,
    TEXT_CUT,
    TEXT_SOURCE,
    TIMESTAMPS,
    USER_ID,
)
from recalign.data.dropped import drop_duplicates, report_lines
from recalign.data.kcore import kcore_filter
from recalign.data.readers.base import (
    ITEM_KEY,
    RAW_ITEM,
    RAW_ORDER,
    RAW_RATING,
    RAW_TIMESTAMP,
    RAW_USER,
    RatingScale,
    SourceData,
)
from recalign.data.registry import DatasetSpec, get_spec
from recalign.data.store import DatasetRecord, PreparedDataset, write_prepared
from recalign.data.text import (
    CUT_CHARS,
    CUT_WORDS,
    DEFAULT_DISAMBIGUATORS,
    DEFAULT_MAX_CHARS,
    DEFAULT_MAX_WORDS,
    build_item_texts,
)
from recalign.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

# Raw McAuley reviews are filtered to their 5-core, as in the papers; the S3-Rec files
# already are one (and their published counts are those of the files).
RAW_AMAZON_KCORE = 5


@dataclass
class Prepared:
    """The tables to write and the report of what was dropped or changed."""

    sequences: pl.DataFrame
    items: pl.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


def dense_ids(keys: pl.Series) -> pl.DataFrame:
    """Unique source keys -> `key`, `id` (dense from 1, numeric order if all integers)."""
    unique = keys.unique()
    numeric = unique.cast(pl.Int64, strict=False)
    order = numeric if numeric.null_count() == 0 else unique
    frame = pl.DataFrame({"key": unique, "sort": order}).sort("sort")
    return frame.select("key", pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("id"))


def order_interactions(interactions: pl.DataFrame) -> pl.DataFrame:
    """Chronological per user; timestamp ties keep file order (never item id)."""
    keys = [RAW_TIMESTAMP, RAW_ORDER] if RAW_TIMESTAMP in interactions.columns else [RAW_ORDER]
    return interactions.sort(keys, maintain_order=True)


def assemble(
    source: SourceData,
    *,
    kcore: int | None = None,
    min_length: int = MIN_SEQUENCE_LENGTH,
    max_words: int = DEFAULT_MAX_WORDS,
    max_chars: int = DEFAULT_MAX_CHARS,
    disambiguators: tuple[str, ...] = DEFAULT_DISAMBIGUATORS,
) -> Prepared:
    """Turn a `SourceData` into contract tables (pure: no files touched)."""
    report: dict[str, Any] = dict(source.report)
    report["interactions_read"] = source.interactions.height
    if source.interactions.height == 0:
        raise DataFormatError("the source has no interactions")
    interactions, report["duplicates"] = drop_duplicates(source)
    report["kcore"] = None
    if kcore:
        interactions, passes = kcore_filter(
            interactions, kcore, user_col=RAW_USER, item_col=RAW_ITEM
        )
        report["kcore"] = {"k": kcore, "passes": passes, "interactions_kept": interactions.height}
    interactions = order_interactions(interactions)

    lengths = interactions.group_by(RAW_USER).len()
    short = lengths.filter(pl.col("len") < min_length)
    report["min_length"] = min_length
    report["users_excluded_short"] = short.height
    report["interactions_excluded_short"] = (
        int(short.get_column("len").sum()) if short.height else 0
    )
    if short.height:
        logger.warning(
            "excluded %d user(s) with fewer than %d interactions (%d interactions)",
            short.height,
            min_length,
            report["interactions_excluded_short"],
        )
        interactions = interactions.filter(
            ~pl.col(RAW_USER).is_in(short.get_column(RAW_USER).implode())
        )
    if interactions.height == 0:
        raise DataFormatError(f"no user has at least {min_length} interactions")

    users = dense_ids(interactions.get_column(RAW_USER)).rename({"key": RAW_USER, "id": USER_ID})
    items = _item_table(source, interactions.get_column(RAW_ITEM), report)
    interactions = interactions.join(users, on=RAW_USER, how="left").join(
        items.select(pl.col(ITEM_KEY).alias(RAW_ITEM), ITEM_ID), on=RAW_ITEM, how="left"
    )
    interactions = order_interactions(interactions)  # joins may reorder rows
    aggregations = [pl.col(ITEM_ID).alias(ITEMS)]
    if RAW_RATING in interactions.columns:
        aggregations.append(pl.col(RAW_RATING).cast(pl.Float64).alias(RATINGS))
    if RAW_TIMESTAMP in interactions.columns:
        aggregations.append(pl.col(RAW_TIMESTAMP).cast(pl.Int64).alias(TIMESTAMPS))
    sequences = interactions.group_by(USER_ID, maintain_order=True).agg(aggregations).sort(USER_ID)

    items = build_item_texts(
        items.drop(ITEM_KEY),
        max_words=max_words,
        max_chars=max_chars,
        disambiguators=disambiguators,
    )
    sources = items.get_column(TEXT_SOURCE)
    report["items_text_fallback"] = int((sources != "title").sum())
    report["items_text_from_short_text"] = int((sources == "short_text").sum())
    report["items_text_from_id"] = int((sources == "id").sum())
    report["items_disambiguated"] = int(items.get_column("disambiguated").sum())
    cuts = items.get_column(TEXT_CUT)
    report["items_text_cut_words"] = int((cuts == CUT_WORDS).sum())
    report["items_text_cut_chars"] = int((cuts == CUT_CHARS).sum())
    report["text_budget"] = {"max_words": max_words, "max_chars": max_chars}
    return Prepared(sequences=sequences, items=items, report=report)


def _item_table(source: SourceData, used_keys: pl.Series, report: dict[str, Any]) -> pl.DataFrame:
    """The items that occur in `used_keys`, with ids and whatever metadata exists."""
    used = pl.DataFrame({ITEM_KEY: used_keys.unique()})
    meta = source.items
    report["items_in_source_not_used"] = meta.filter(
        ~pl.col(ITEM_KEY).is_in(used_keys.implode())
    ).height
    joined = used.join(meta, on=ITEM_KEY, how="left")
    if source.keep_item_ids:
        missing = joined.filter(pl.col(ITEM_ID).is_null())
        if missing.height:
            raise DataFormatError(
                f"{missing.height} item id(s) in the sequences have no row in the items file, e.g. "
                f"{missing.get_column(ITEM_KEY).head(5).to_list()}"
            )
        return joined.sort(ITEM_ID)
    no_meta = (
        joined.filter(pl.col(SOURCE_ID).is_null()).height
        if SOURCE_ID in joined.columns
        else used.height
    )
    report["items_without_metadata"] = no_meta
    if no_meta:
        logger.warning(
            "%d item(s) have no metadata row; their text falls back to `item <id>`", no_meta
        )
    ids = dense_ids(used.get_column(ITEM_KEY)).rename({"key": ITEM_KEY, "id": ITEM_ID})
    joined = joined.drop(ITEM_ID, strict=False).join(ids, on=ITEM_KEY, how="left")
    joined = joined.with_columns(
        pl.coalesce(SOURCE_ID, ITEM_KEY).alias(SOURCE_ID)
        if SOURCE_ID in joined.columns
        else pl.col(ITEM_KEY).alias(SOURCE_ID)
    )
    first = [ITEM_ID, SOURCE_ID, ITEM_KEY]
    return joined.select(first + [c for c in joined.columns if c not in first]).sort(ITEM_ID)


def _read_custom(source: str | Path | None, options: dict[str, Any]) -> tuple[SourceData, dict]:
    from recalign.data.readers.custom import CustomColumns, read_custom

    interactions = options.pop("interactions", None) or source
    if interactions is None:
        raise ConfigError("dataset 'custom' needs --interactions FILE (CSV or Parquet)")
    items_file = options.pop("items", None)
    columns = options.pop("columns", None) or CustomColumns()
    scale = parse_rating_scale(options.pop("rating_scale", None))
    domain = options.pop("domain", None)
    data = read_custom(
        Path(interactions),
        Path(items_file) if items_file else None,
        columns,
        rating_scale=scale,
        domain=domain,
    )
    record = {
        "interactions": str(interactions),
        "items": str(items_file) if items_file else None,
        "columns": vars(columns),
        "rating_scale": list(scale) if scale else None,
    }
    return data, record


def parse_rating_scale(value: str | Sequence[float] | None) -> RatingScale | None:
    """`"1,5"` or `[1, 5]` -> (1.0, 5.0); None stays None (finite, non-negative only)."""
    if value is None or value == "":
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        low, high = (float(v) for v in parts)
    except (TypeError, ValueError):
        raise ConfigError(
            f"rating scale must be two numbers LOW,HIGH (e.g. 1,5), got {value!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ConfigError(f"rating scale must be finite with LOW < HIGH, got {value!r}")
    return low, high


def _read_folder(
    spec: DatasetSpec, source: str | Path | None, options: dict[str, Any]
) -> tuple[SourceData, dict]:
    downloads: list[dict[str, Any]] = []
    if source is None:
        from recalign.data.download import fetch_dataset

        progress = bool(options.pop("progress", False))
        directory, downloads = fetch_dataset(spec, options.pop("cache", None), progress=progress)
    else:
        directory = Path(source)
        if not directory.is_dir():
            raise ConfigError(
                f"--source {directory} is not a directory; expected "
                f"{' or '.join(spec.expected_files)}"
            )
    if spec.reader is None:
        raise ConfigError(f"dataset {spec.name!r} has no reader for --source")
    data = spec.reader(directory)
    return data, {"path": str(directory), "origin": spec.origin, "downloads": downloads}


def prepare_dataset(
    name: str,
    out: str | Path,
    source: str | Path | None = None,
    **options: Any,
) -> PreparedDataset:
    """Prepare dataset `name` into `out` and return it.

    `source` is a folder in one of the layouts the dataset's reader accepts; without it,
    downloadable datasets are fetched into the cache. Options: `kcore`, `min_length`,
    `max_words`, `max_chars`, `disambiguators`; `cache` and `progress` for downloads;
    `synthetic`: `users`, `items`, `seed`; `custom`: `interactions`, `items` (paths),
    `columns` (a `CustomColumns`), `rating_scale` (`"1,5"` or `[1, 5]`) and `domain`
    (what the items are: `recalign.data.domain`). Any dataset: `cold_items` (a fraction
    of the catalogue held out of training, `recalign.data.cold`) and `cold_seed`.
    """
    cold = float(options.pop("cold_items", 0) or 0)
    cold_seed = int(options.pop("cold_seed", 0) or 0)
    prepared = _prepare(name, Path(out), source, options)
    if cold:
        from recalign.data.cold import mark_cold

        return mark_cold(out, cold, cold_seed)
    return prepared


def _prepare(name: str, out: Path, source: str | Path | None, options: dict[str, Any]) -> Any:
    spec = get_spec(name)
    if name == "synthetic":
        _refuse_unknown(name, options, {"users", "items", "seed"})
        from recalign.data.synthetic import write_synthetic  # lazy: the generator is large

        return write_synthetic(
            out,
            users=int(options.get("users", 2000)),
            items=int(options.get("items", 500)),
            seed=int(options.get("seed", 0)),
        )

    text_options = {
        "min_length": int(options.pop("min_length", MIN_SEQUENCE_LENGTH)),
        "max_words": int(options.pop("max_words", DEFAULT_MAX_WORDS)),
        "max_chars": _budget("max_chars", options.pop("max_chars", DEFAULT_MAX_CHARS)),
        "disambiguators": tuple(options.pop("disambiguators", DEFAULT_DISAMBIGUATORS)),
    }
    kcore = options.pop("kcore", None)
    custom = name == "custom"
    if not custom and options.get("rating_scale") is not None:
        raise ConfigError(
            f"a rating scale is for 'custom' data; {name!r} ratings are checked against 1..5"
        )
    _refuse_unknown(
        name,
        options,
        {"interactions", "items", "columns", "rating_scale", "domain"}
        if custom
        else {"cache", "progress"},
    )
    if custom:
        data, source_record = _read_custom(source, options)
    else:
        data, source_record = _read_folder(spec, source, options)
    if kcore is None and "reviews" in data.files:
        kcore = RAW_AMAZON_KCORE

    prepared = assemble(data, kcore=int(kcore) if kcore else None, **text_options)
    logger.info(
        "%s: %d users, %d items, %d interactions",
        name,
        prepared.sequences.height,
        prepared.items.height,
        int(prepared.sequences.get_column(ITEMS).list.len().sum()),
    )
    for line, _notable in report_lines(prepared.report):
        logger.debug("%s: %s", name, line)  # the CLI prints these; warnings went out above
    return write_prepared(
        out,
        name,
        prepared.sequences,
        prepared.items,
        DatasetRecord(
            source=source_record,
            options={
                **text_options,
                "kcore": kcore,
                "disambiguators": list(text_options["disambiguators"]),
            },
            input_files=dict(data.files),
            report=prepared.report,
            domain=data.domain,
        ),
    )


def _budget(name: str, value: Any) -> int:
    try:
        budget = int(value)
    except (TypeError, ValueError):
        budget = 0
    if budget < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    return budget


def _refuse_unknown(name: str, options: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        known = [
            "kcore",
            "min_length",
            "max_words",
            "max_chars",
            "disambiguators",
            *sorted(allowed),
        ]
        raise ConfigError(
            f"unknown option(s) for {name!r}: {', '.join(unknown)} (known: {', '.join(known)})"
        )
