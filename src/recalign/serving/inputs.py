"""Hostile input made harmless: strict JSON bodies, plain-text item texts, safe error echoes.

Python's `json` module accepts more than JSON: `NaN`, `Infinity`, numbers that
overflow to `inf` (`1e999`), integers of any length (and raises a plain `ValueError`
past 4,300 digits), and nesting until the interpreter's recursion limit. A JSON
string may also hold a lone UTF-16 surrogate (`"\\ud800"`), which is no character and
cannot be encoded back to UTF-8 — the error handler that echoed it used to crash.

So request bodies are parsed here with every number checked (finite floats, integers
of at most 19 digits: item ids are int64), strict UTF-8, at most 16 levels of nesting
and no lone surrogates, every failure a `json.JSONDecodeError` (which FastAPI answers
with a 422); item texts and queries are refused when they hold control characters;
and whatever an error response echoes back is made encodable first.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

MAX_INT_DIGITS = 19  # int64 item ids; longer integers are refused, not parsed
MAX_DEPTH = 16  # request bodies nest 3 levels; deeper ones are refused before validation
# C0 and C1 controls (tab and newline included: an item text is one line), DEL, and
# UTF-16 surrogates, which are no characters at all.
_BAD_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _BadNumber(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _BadNumber(f"{name} is not a JSON number; send finite numbers only")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(f"{text[:30]} is out of range for a number (it overflows to infinity)")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        digits = len(text.lstrip("-"))
        raise _BadNumber(f"an integer of {digits} digits is too large (at most {MAX_INT_DIGITS})")
    return int(text)


def parse_json(body: bytes) -> Any:
    """Parse a request body as strict JSON; every refusal is a `json.JSONDecodeError`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise json.JSONDecodeError(
            f"the body is not UTF-8 text (byte {error.start})", "", 0
        ) from None
    try:
        value = json.loads(
            text,
            parse_constant=_no_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except json.JSONDecodeError:
        raise
    except _BadNumber as error:
        raise json.JSONDecodeError(str(error), text, 0) from None
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None
    _check_values(value, text)
    return value


def _check_values(value: Any, text: str) -> None:
    """Refuse deep nesting and lone surrogates in strings or keys (iteratively: a body
    nested just below the parser's limit must not overflow the stack here)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", text, 0)
        if isinstance(item, str):
            if _SURROGATE.search(item):
                _surrogate_error(path, text)
        elif isinstance(item, list):
            stack.extend(
                (v, f"{path}.{i}" if path else str(i), depth + 1) for i, v in enumerate(item)
            )
        elif isinstance(item, dict):
            for key, v in item.items():
                where = f"{path}.{printable(key)}" if path else printable(key)
                if _SURROGATE.search(key):
                    _surrogate_error(f"{where} (a key)", text)
                stack.append((v, where, depth + 1))


def _surrogate_error(where: str, text: str) -> None:
    # Legal JSON syntax, but no Unicode text (I-JSON, RFC 7493, forbids it).
    raise json.JSONDecodeError(
        f"the string at {where or 'the top'} holds a lone UTF-16 surrogate, which is no "
        "character; send valid Unicode text",
        text,
        0,
    )


class StrictJSONRequest(Request):
    """A request whose `.json()` is `parse_json`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """Routes whose JSON bodies are parsed by `parse_json` (set as the router's route_class)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler


def check_text(value: str) -> str:
    """Refuse texts with surrogates or control characters (a pydantic after-validator)."""
    bad = _BAD_TEXT.search(value)
    if bad is not None:
        char = bad.group()
        what = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
        raise ValueError(
            f"contains {what} (U+{ord(char):04X}) at position {bad.start()}; "
            "send the item text as plain one-line text"
        )
    return value


def printable(value: Any) -> Any:
    """`value` with every string UTF-8-encodable and every float finite, for JSON echoes."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {printable(key): printable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable(item) for item in value]
    return value
