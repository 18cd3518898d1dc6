"""Serving: the `Recommender` Python API over a run directory, the HTTP API and a web page.

`fastapi`/`uvicorn` are only needed for `recalign.serving.app`; the `Recommender`
works without them.
"""

from recalign.serving.backends import Backend, BaselineBackend, popularity_backend
from recalign.serving.recommender import (
    InvalidRequestError,
    RatingResult,
    Recommendation,
    Recommender,
    RecommendResult,
)
from recalign.serving.resolve import ItemCatalog, ItemMatch, ResolvedItem, UnknownItemsError

__all__ = [
    "Backend",
    "BaselineBackend",
    "InvalidRequestError",
    "ItemCatalog",
    "ItemMatch",
    "RatingResult",
    "RecommendResult",
    "Recommendation",
    "Recommender",
    "ResolvedItem",
    "UnknownItemsError",
    "popularity_backend",
]
