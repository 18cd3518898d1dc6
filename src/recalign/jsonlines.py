"""Reading JSON Lines files (predictions, users to recommend for): one object a line.

Blank lines are skipped; a line that is not a JSON object is an error naming the file
and the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recalign.errors import DataFormatError


def read_objects(
    path: str | Path, what: str = "a JSON object"
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of `path`; `what` says, in an
    error, what a line should have been."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataFormatError(
                    f"not valid JSON ({error.msg})", path=path, line=number
                ) from None
            if not isinstance(value, dict):
                raise DataFormatError(f"expected {what}", path=path, line=number)
            yield number, value
