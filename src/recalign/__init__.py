"""recalign: align language models with recommendation knowledge.

The top-level package stays import-light: heavy stacks (torch, transformers) are
imported only by the stages that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
