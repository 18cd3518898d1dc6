"""The report stage: results tables, ablations, curves and examples of a run."""

from recalign.report.build import build_report

__all__ = ["build_report"]
