"""Reading YAML configs and validating them: one reader, one error format.

Every config the library takes (a run, training, a task mixture, a baseline, a template
file, evaluation options) is a pydantic model. `validate` builds one and turns pydantic's
errors into a `ConfigError` a user can act on — where (the file), which key (the whole
path, `training.batch_sise`), what was expected and what was given:

    run.yaml: 2 problems:
      - unknown key 'training.batch_sise' (did you mean 'batch_size'?)
      - evaluation.max_users: expected a valid integer, got 'many'

`read_yaml` reads a YAML file that must hold a mapping, with the same kind of message
for a missing file, a syntax error (with its line) or another top-level type.

Validators that check entries against a model chosen by the entry's name (a baseline's
options, a task's options) gather their problems in `Problems`: each keeps its own key
path, so those errors read like any other (`baselines.options.sasrec.epochs: ...`).
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from recalign.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)

# How pydantic says what it expected, and how we say it.
_PHRASES = (
    ("Input should be ", "expected "),
    ("greater than or equal to ", ">= "),
    ("less than or equal to ", "<= "),
    ("greater than ", "> "),
    ("less than ", "< "),
)
_UNKNOWN_KEY = "unknown_key"  # error types of our own: an unknown key, with its hint,
_PROBLEM = "problem"  # and a problem found by a validator at a path it chose (`Problems`)


def read_yaml(path: str | Path, *, what: str = "config file") -> dict[str, Any]:
    """The mapping a YAML file holds (an empty file is an empty mapping)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    raw = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys, got {type(raw).__name__}")
    return raw


def parse_yaml(text: str, origin: str) -> Any:
    """YAML text -> Python; a syntax error names `origin` and the line."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{origin}, line {mark.line + 1}" if mark is not None else origin
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None


def validate(model: type[Model], values: Any, origin: str) -> Model:
    """`model` built from `values`; a `ConfigError` naming every bad key otherwise."""
    try:
        return model.model_validate({} if values is None else values)
    except ValidationError as error:
        raise ConfigError(format_errors(error, origin, model)) from None


def format_errors(error: ValidationError, origin: str, model: type[BaseModel] | None = None) -> str:
    """One line per problem, each naming the key path; `origin` says where the values were."""
    problems = [_describe(problem, model) for problem in error.errors()]
    if len(problems) == 1:
        return f"{origin}: {problems[0]}"
    return f"{origin}: {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)


class Problems:
    """Problems found inside a validator, each at its own key path; `check` raises them.

    For entries whose model depends on their name (a baseline's options, a task's), or
    names that must be in a registry: raised from a pydantic validator, the paths stay
    under the field's own, so `options.sasrec.epochs` is reported, not `options`.
    """

    def __init__(self) -> None:
        self.details: list[Any] = []

    def add(self, loc: tuple[str | int, ...], message: str) -> None:
        kind = PydanticCustomError(_PROBLEM, "{message}", {"message": message})
        self.details.append({"type": kind, "loc": loc, "input": None})

    def validate(self, loc: tuple[str | int, ...], model: type[Model], values: Any) -> Model | None:
        """`model` built from `values`, or None with its problems added under `loc`."""
        try:
            return model.model_validate({} if values is None else values)
        except ValidationError as failure:
            self.details.extend(_rebased(problem, loc, model) for problem in failure.errors())
            return None

    def check(self) -> None:
        if self.details:
            raise ValidationError.from_exception_data("config", self.details)


def _rebased(
    problem: Mapping[str, Any], loc: tuple[str | int, ...], model: type[BaseModel]
) -> dict[str, Any]:
    """A problem of one entry, located under the entry's key (unknown keys with hints)."""
    where = (*loc, *problem["loc"])
    if problem["type"] == "extra_forbidden":
        parent = _model_at(model, tuple(problem["loc"])[:-1])
        known = list(parent.model_fields) if parent is not None else []
        kind = PydanticCustomError(_UNKNOWN_KEY, "unknown key", {"known": known})
        return {"type": kind, "loc": where, "input": problem["input"]}
    detail = {"type": problem["type"], "loc": where, "input": problem["input"]}
    if "ctx" in problem:
        detail["ctx"] = problem["ctx"]
    return detail


def known_name(kind: str, name: str, known: Sequence[str]) -> str:
    """`name` when it is one of `known`, else a `ValueError` (for a pydantic validator)."""
    if name not in known:
        raise ValueError(unknown_name(kind, name, known))
    return name


def unknown_name(kind: str, name: str, known: Sequence[str]) -> str:
    """What to say of a name that is not in a registry: the closest one, and all of them."""
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; known: {', '.join(known)}"


# --- describing one problem -------------------------------------------------------------
def _describe(problem: Mapping[str, Any], model: type[BaseModel] | None) -> str:
    loc = tuple(problem["loc"])
    key = ".".join(str(part) for part in loc)
    kind = problem["type"]
    if kind in ("extra_forbidden", _UNKNOWN_KEY):
        known = (problem.get("ctx") or {}).get("known")
        if known is None and model is not None:
            parent = _model_at(model, loc[:-1])
            known = list(parent.model_fields) if parent is not None else None
        return f"unknown key {key!r}{_key_hint(str(loc[-1]), known)}"
    if kind == "missing":
        return f"missing key {key!r}"
    if kind in ("value_error", "assertion_error", _PROBLEM):
        message = (
            str(problem["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        )
        return f"{key}: {message}" if key else message
    expected = str(problem["msg"])
    for theirs, ours in _PHRASES:
        expected = expected.replace(theirs, ours)
    return f"{key}: {expected}, got {_shown(problem.get('input'))}"


def _key_hint(key: str, known: Sequence[str] | None) -> str:
    if not known:
        return ""
    close = difflib.get_close_matches(key, list(known), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known keys: {', '.join(known)})"


def _shown(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)) and len(repr(value)) > 60:
        return f"a {type(value).__name__} of {len(value)} entries"
    return repr(value)


def _model_at(model: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the key at `path` (None where a path leaves the models)."""
    current: Any = model
    parts = list(path)
    while parts:
        part = parts.pop(0)
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _unwrap(field.annotation)
        # A dict or list field: the next part is a key or an index into it.
        while get_origin(current) in (dict, list) and parts:
            parts.pop(0)
            current = _unwrap(get_args(current)[-1])
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X (the first model in a union, else the annotation itself)."""
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
        options = [a for a in get_args(annotation) if a is not type(None)]
        return options[0] if len(options) == 1 else annotation
    return annotation
