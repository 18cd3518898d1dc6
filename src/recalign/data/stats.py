"""Dataset statistics: what `recalign data stats` prints and `stats.json` holds."""

from __future__ import annotations

from typing import Any

import polars as pl

from recalign.constants import (
    DISAMBIGUATED,
    ITEM_ID,
    ITEMS,
    RATINGS,
    TEXT_SOURCE,
    TIMESTAMPS,
)

_QUANTILES = {"min": 0.0, "p25": 0.25, "median": 0.5, "p75": 0.75, "p90": 0.9, "max": 1.0}


def _sequence_summary(
    sequences: pl.DataFrame | pl.LazyFrame,
) -> tuple[pl.Series, int, list[str]]:
    """Per-user lengths, the number of distinct interacted items, and the column names.

    A LazyFrame (e.g. `pl.scan_parquet` of a streamed million-user file) is reduced
    without materialising the item lists: only one length per user is collected.
    """
    if isinstance(sequences, pl.LazyFrame):
        lengths = sequences.select(pl.col(ITEMS).list.len()).collect().to_series()
        interacted = (
            sequences.select(pl.col(ITEMS).explode().drop_nulls().n_unique())
            .collect(engine="streaming")
            .item()
            if lengths.sum()
            else 0
        )
        return lengths, int(interacted), sequences.collect_schema().names()
    lengths = sequences.get_column(ITEMS).list.len()
    interacted = sequences.select(pl.col(ITEMS).explode().n_unique()).item() if lengths.sum() else 0
    return lengths, int(interacted), sequences.columns


def compute_stats(sequences: pl.DataFrame | pl.LazyFrame, items: pl.DataFrame) -> dict[str, Any]:
    lengths, interacted, columns = _sequence_summary(sequences)
    users = lengths.len()
    n_items = items.height
    interactions = int(lengths.sum()) if users else 0
    text_sources = (
        dict(items.get_column(TEXT_SOURCE).value_counts().iter_rows())
        if TEXT_SOURCE in items.columns
        else {}
    )
    disambiguated = (
        int(items.get_column(DISAMBIGUATED).sum()) if DISAMBIGUATED in items.columns else 0
    )
    quantiles = {
        name: float(lengths.quantile(q, interpolation="nearest")) if users else 0.0
        for name, q in _QUANTILES.items()
    }
    return {
        "users": users,
        "items": n_items,
        "items_interacted": int(interacted),
        "interactions": interactions,
        "density": interactions / (users * n_items) if users and n_items else 0.0,
        "sequence_length": {**quantiles, "mean": float(lengths.mean()) if users else 0.0},
        "has_ratings": RATINGS in columns,
        "has_timestamps": TIMESTAMPS in columns,
        "title_coverage": text_sources.get("title", 0) / n_items if n_items else 0.0,
        "text_sources": {k: int(v) for k, v in sorted(text_sources.items())},
        "text_fallbacks": n_items - int(text_sources.get("title", 0)) if text_sources else 0,
        "text_disambiguated": disambiguated,
        "max_item_id": int(items.get_column(ITEM_ID).max()) if n_items else 0,
    }
