"""Canonical column names and metric keys, defined once for every stage."""

from __future__ import annotations

# --- prepared dataset: sequences.parquet -------------------------------------------
USER_ID = "user_id"
ITEMS = "items"  # list[int], chronological
RATINGS = "ratings"  # list[float], aligned with ITEMS (optional)
TIMESTAMPS = "timestamps"  # list[int] (Unix seconds), aligned with ITEMS (optional)

# --- prepared dataset: items.parquet -----------------------------------------------
ITEM_ID = "item_id"  # int, dense from 1
SOURCE_ID = "source_id"  # str: the source's own id (ASIN, MovieLens id, ...)
TEXT = "text"  # the unique, cleaned text that prompts use
COLD = "cold"  # items.parquet: a cold-start item, held out of training (data.cold)
TITLE = "title"
SHORT_TEXT = "short_text"
BRAND = "brand"
CATEGORIES = "categories"
# Where TEXT came from: "title", "short_text" or "id" (the `item <id>` fallback).
TEXT_SOURCE = "text_source"
# True where TEXT carries a disambiguator because another item had the same text.
DISAMBIGUATED = "disambiguated"
# Which budget shortened TEXT: "words", "chars" (the character budget, applied last), or
# null where the text is whole.
TEXT_CUT = "text_cut"

# --- prepared dataset files --------------------------------------------------------
SEQUENCES_FILE = "sequences.parquet"
ITEMS_FILE = "items.parquet"
STATS_FILE = "stats.json"
MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "config.yaml"

# --- leave-one-out split views -----------------------------------------------------
HISTORY = "history"  # list[int]
TARGET_ITEM = "target_item"  # int (nullable in samples)
MIN_SEQUENCE_LENGTH = 3  # one train item, one valid item, one test item

# --- generated samples -------------------------------------------------------------
TASK = "task"
TEMPLATE = "template"
INPUT = "input"
TARGET = "target"
CANDIDATES = "candidates"  # list[int] (ranking samples)
# list[int]: UTF-8 byte offsets of the droppable history items in INPUT (fitting prompts
# to a token budget; see recalign.samples.tasks.base)
HISTORY_BOUNDS = "history_bounds"
SPLITS = ("train", "valid", "test")

# --- evaluation: prediction records (built by recalign.ranking.prediction_record) -----
RANKED = "ranked"  # list[int], best first
SCORES = "scores"  # list[float], aligned with RANKED
ITEM = "item"  # the held-out item of a rating record
RATING = "rating"  # the true rating
PREDICTION = "prediction"  # the predicted rating
PREDICTIONS_FILE = "predictions.jsonl"
METRICS_FILE = "metrics.json"
MRR = "mrr"
RMSE = "rmse"
MAE = "mae"


def hit_at(k: int) -> str:
    return f"hit@{k}"


def ndcg_at(k: int) -> str:
    return f"ndcg@{k}"


RANKING_CUTOFFS = (1, 5, 10)
RANKING_METRICS = (
    hit_at(1),
    hit_at(5),
    hit_at(10),
    ndcg_at(5),
    ndcg_at(10),
    MRR,
)
RATING_METRICS = (RMSE, MAE)

# --- environment -------------------------------------------------------------------
DATA_DIR_ENV = "RECALIGN_DATA_DIR"
CACHE_DIR_ENV = "RECALIGN_CACHE"
