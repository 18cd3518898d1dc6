"""recalign: align language models with recommendation knowledge.

The top-level package stays import-light: heavy stacks (torch, transformers) are
imported only by the stages that need them.
"""

from __future__ import annotations

from recalign.version import __version__

__all__ = ["__version__", "train"]


def __getattr__(name: str):
    # `recalign.train(...)` without importing torch when the package is imported.
    if name == "train":
        from recalign.training.run import train

        return train
    raise AttributeError(f"module 'recalign' has no attribute {name!r}")
