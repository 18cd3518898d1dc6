"""Command-line options that are fields of a config model: one place for each default.

An option that sets a config field takes its default, its help and its bounds from the
field (`recalign.evaluation.options.EvalOptions`, `recalign.training.config.TrainConfig`,
`recalign.samples.mixture.MixtureConfig`, ...), so changing a default in the model
changes the command line too. The models live in modules that import pydantic only, so
reading them here keeps the CLI's start fast.
"""

from __future__ import annotations

from typing import Any

import annotated_types
import typer
from pydantic import BaseModel


def default(model: type[BaseModel], name: str) -> Any:
    """The default of field `name` of `model`."""
    return model.model_fields[name].get_default(call_default_factory=True)


def field_option(
    model: type[BaseModel], name: str, *flags: str, help: str | None = None, **kwargs: Any
) -> Any:
    """A typer option whose default, help and bounds are those of `model`'s field `name`."""
    return typer.Option(
        default(model, name),
        *flags,
        help=help or model.model_fields[name].description,
        **_bounds(model, name),
        **kwargs,
    )


def override_option(
    model: type[BaseModel],
    name: str,
    *flags: str,
    help: str | None = None,
    source: str = "--config",
    **kwargs: Any,
) -> Any:
    """An option that overrides field `name` only when given (default None); its help
    says what applies otherwise: the value `source` gives, else the model's default."""
    text = help or model.model_fields[name].description or ""
    fallback = _shown(default(model, name))
    value = default(model, name)
    if isinstance(value, bool) and flags and "/" in flags[0]:  # --lora/--full: name the flag
        fallback = flags[0].split("/")[0 if value else 1]
    return typer.Option(
        None,
        *flags,
        help=f"{text} Default: from {source}, else {fallback}.".strip(),
        **_bounds(model, name),
        **kwargs,
    )


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)


def _bounds(model: type[BaseModel], name: str) -> dict[str, Any]:
    """typer's min/max from the field's `ge`/`le` (`gt`/`lt` stay the model's to check)."""
    bounds: dict[str, Any] = {}
    for item in model.model_fields[name].metadata:
        if isinstance(item, annotated_types.Ge):
            bounds["min"] = item.ge
        elif isinstance(item, annotated_types.Le):
            bounds["max"] = item.le
    return bounds
