"""Serving: the `Recommender` Python API over a run directory, the HTTP API and a web page.

`fastapi`/`uvicorn` are only needed for `recalign.serving.app`; the `Recommender`
works without them. The names below are imported on first use, so that the request
limits (`recalign.serving.limits`, read by the CLI) come without numpy.
"""

from __future__ import annotations

from recalign.lazy import lazy_exports

# The names, by the module that defines them (imported on first use).
__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "recalign.serving.backends": ("Backend", "BaselineBackend", "popularity_backend"),
        "recalign.serving.recommender": (
            "InvalidRequestError",
            "RatingResult",
            "Recommendation",
            "Recommender",
            "RecommendResult",
        ),
        "recalign.serving.resolve": (
            "ItemCatalog",
            "ItemMatch",
            "ResolvedItem",
            "UnknownItemsError",
        ),
        "recalign.serving.limits": ("ServeLimits",),
    },
)
