"""Building and loading language models and tokenizers (seq2seq and causal).

Heavy libraries (torch, transformers, peft) are imported inside the submodules, so
importing this package stays cheap; import the submodules you need.
"""

from __future__ import annotations

FAMILIES = ("seq2seq", "causal")
TINY_PRESETS = ("tiny-t5", "tiny-causal")
