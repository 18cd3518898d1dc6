"""Conventional baselines (popularity, BPR-MF, SASRec, rating means, biased MF) on the
same leave-one-out split, evaluator and output format as the language models."""

from recalign.baselines.base import FitReport, RatingPredictor, Recommender
from recalign.baselines.registry import BASELINES, create_baseline, load_baseline

__all__ = [
    "BASELINES",
    "FitReport",
    "RatingPredictor",
    "Recommender",
    "create_baseline",
    "load_baseline",
]
