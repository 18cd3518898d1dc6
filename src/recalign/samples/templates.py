"""Prompt templates as data: YAML files of Jinja strings, validated when loaded.

A template file holds the templates of one task:

    task: retrieval
    placeholders: [history, target]      # what every template in the file uses
    templates:
      - id: retrieval-1
        version: 1
        split: train                     # `train` or `unseen` (held out for evaluation)
        input: "The user {{ verb_past }} {{ history }}. Which {{ item_noun }} next?"
        target: "{{ target }}"

Loading checks each template: the Jinja syntax, that the placeholders it uses are exactly
the declared ones (an undeclared one is a typo, an unused one a forgotten field), and that
the task provides every declared placeholder. Errors name the file and the template id.
Every task provides the dataset's domain words (`item_noun`, `items_noun`, `verb`,
`verb_past`, `history_noun`; see `recalign.data.domain`) besides its own placeholders.

Speed: generation renders hundreds of thousands of prompts a second, and a Jinja render
costs ~10 us. Templates that are plain text with `{{ name }}` substitutions (all the
shipped ones) are therefore compiled once into Python format strings (~0.5 us); templates
using Jinja control flow or filters keep the compiled Jinja template. Both give the same
text (tested).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jinja2
import jinja2.meta
import jinja2.nodes
from pydantic import BaseModel, ConfigDict, Field

from recalign.errors import ConfigError
from recalign.validation import parse_yaml, unknown_name, validate

logger = logging.getLogger(__name__)

TemplateSplit = Literal["train", "unseen"]

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


class _TemplateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    version: int = Field(ge=1)
    split: TemplateSplit = "train"
    input: str
    target: str
    placeholders: list[str] | None = None  # overrides the file-level list


class _TemplateFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str
    placeholders: list[str] = Field(default_factory=list)
    templates: list[_TemplateSpec] = Field(min_length=1)


def _pieces(ast: jinja2.nodes.Template) -> list[tuple[str, bool]] | None:
    """The template as (text, is_placeholder) pieces, or None if it needs Jinja proper."""
    pieces: list[tuple[str, bool]] = []
    for node in ast.body:
        if not isinstance(node, jinja2.nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, jinja2.nodes.TemplateData):
                pieces.append((child.data, False))
            elif isinstance(child, jinja2.nodes.Name) and child.ctx == "load":
                pieces.append((child.name, True))
            else:
                return None
    return pieces


def _format_string(ast: jinja2.nodes.Template) -> str | None:
    """The template as a `str.format` string, or None if it needs Jinja proper."""
    pieces = _pieces(ast)
    if pieces is None:
        return None
    return "".join(
        "{" + text + "}" if name else text.replace("{", "{{").replace("}", "}}")
        for text, name in pieces
    )


def _byte_pieces(ast: jinja2.nodes.Template) -> list[tuple[bytes, str | None]] | None:
    """The template as (UTF-8 text, None) and (b"", placeholder) pieces, or None.

    Generation assembles prompts from UTF-8 pieces (see `samples.tasks.base.render`)
    and lets Arrow concatenate them: no prompt is formatted one by one in Python.
    """
    pieces = _pieces(ast)
    if pieces is None:
        return None
    return [(b"", text) if name else (text.encode("utf-8"), None) for text, name in pieces]


class _Renderer:
    """One compiled string: a format string when possible, else a Jinja template."""

    __slots__ = ("fmt", "jinja", "pieces")

    def __init__(self, source: str, ast: jinja2.nodes.Template) -> None:
        self.fmt = _format_string(ast)
        self.pieces = _byte_pieces(ast)
        self.jinja = None if self.fmt is not None else _ENV.from_string(source)

    def __call__(self, values: Mapping[str, Any]) -> str:
        if self.fmt is not None:
            return self.fmt.format_map(values)
        return self.jinja.render(values)


@dataclass(frozen=True)
class Template:
    """A validated, compiled template. `render(values)` -> (input, target)."""

    id: str
    version: int
    task: str
    split: TemplateSplit
    input: str
    target: str
    placeholders: frozenset[str]
    source: str = ""
    _input: _Renderer = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    _target: _Renderer = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def render(self, values: Mapping[str, Any]) -> tuple[str, str]:
        # Called once per sample: go straight to the format strings when there are two.
        fin, ftg = self._input.fmt, self._target.fmt
        if fin is not None and ftg is not None:
            return fin.format_map(values), ftg.format_map(values)
        return self._input(values), self._target(values)

    def render_input(self, values: Mapping[str, Any]) -> str:
        return self._input(values)

    def render_jinja(self, values: Mapping[str, Any]) -> tuple[str, str]:
        """Render with Jinja itself (the reference the fast path is tested against)."""
        return (
            _ENV.from_string(self.input).render(values),
            _ENV.from_string(self.target).render(values),
        )

    @property
    def fast(self) -> bool:
        return self._input.fmt is not None and self._target.fmt is not None

    def pieces(self, which: Literal["input", "target"]) -> list[tuple[bytes, str | None]] | None:
        """The input or target string as (UTF-8 text, None) and (b"", placeholder) pieces.

        Generation assembles prompts from these for whole blocks at once; None where the
        string needs Jinja itself (control flow, filters): render it one by one then.
        """
        return (self._input if which == "input" else self._target).pieces


def _parse(source: str, where: str) -> jinja2.nodes.Template:
    try:
        return _ENV.parse(source)
    except jinja2.TemplateSyntaxError as error:
        raise ConfigError(f"{where}: Jinja syntax error: {error.message}") from None


def parse_template_file(
    text: str, path: str | Path, available: Mapping[str, frozenset[str]]
) -> list[Template]:
    """Validate and compile the templates of one YAML document.

    `available` says which placeholders each task provides (the tasks' table,
    `recalign.samples.tasks.PLACEHOLDERS`): a template may use only those.
    """
    spec = validate(_TemplateFile, parse_yaml(text, str(path)), str(path))
    if spec.task not in available:
        raise ConfigError(f"{path}: {unknown_name('task', spec.task, sorted(available))}")
    provided = available[spec.task]
    templates: list[Template] = []
    seen: set[str] = set()
    for item in spec.templates:
        where = f"{path}: template {item.id!r}"
        if item.id in seen:
            raise ConfigError(f"{where}: duplicate template id")
        seen.add(item.id)
        declared = set(item.placeholders if item.placeholders is not None else spec.placeholders)
        unknown = declared - provided
        if unknown:
            raise ConfigError(
                f"{where}: unknown placeholder(s) {sorted(unknown)}; task {spec.task!r} "
                f"provides {sorted(provided)}"
            )
        input_ast = _parse(item.input, f"{where} (input)")
        target_ast = _parse(item.target, f"{where} (target)")
        used = jinja2.meta.find_undeclared_variables(
            input_ast
        ) | jinja2.meta.find_undeclared_variables(target_ast)
        if used - declared:
            raise ConfigError(
                f"{where}: uses undeclared placeholder(s) {sorted(used - declared)} "
                f"(declared: {sorted(declared)}; task {spec.task!r} provides {sorted(provided)})"
            )
        if declared - used:
            raise ConfigError(f"{where}: declared placeholder(s) {sorted(declared - used)} unused")
        templates.append(
            Template(
                id=item.id,
                version=item.version,
                task=spec.task,
                split=item.split,
                input=item.input,
                target=item.target,
                placeholders=frozenset(declared),
                source=str(path),
                _input=_Renderer(item.input, input_ast),
                _target=_Renderer(item.target, target_ast),
            )
        )
    if not any(t.split == "train" for t in templates):
        raise ConfigError(f"{path}: task {spec.task!r} needs at least one `split: train` template")
    return templates


def read_template_file(path: str | Path, available: Mapping[str, frozenset[str]]) -> list[Template]:
    """The templates of one file (`parse_template_file`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"template file {path} does not exist")
    return parse_template_file(path.read_text(encoding="utf-8"), path, available)


class TemplateSet:
    """Templates by task. Order is the file order: the first `train` one is the default."""

    def __init__(self, templates: Iterable[Template]) -> None:
        self._by_task: dict[str, list[Template]] = {}
        self._by_id: dict[str, Template] = {}
        for template in templates:
            if template.id in self._by_id:
                raise ConfigError(
                    f"template id {template.id!r} defined twice "
                    f"({self._by_id[template.id].source} and {template.source})"
                )
            self._by_id[template.id] = template
            self._by_task.setdefault(template.task, []).append(template)

    @property
    def tasks(self) -> list[str]:
        return list(self._by_task)

    def all(self) -> list[Template]:
        return [t for templates in self._by_task.values() for t in templates]

    def for_task(self, task: str, split: TemplateSplit | None = "train") -> list[Template]:
        if task not in self._by_task:
            raise ConfigError(f"no templates for task {task!r} (have: {', '.join(self.tasks)})")
        return [t for t in self._by_task[task] if split is None or t.split == split]

    def resolve(self, task: str, template: str = "default") -> Template:
        """`default` (first training template), `unseen` (first held-out one) or an id."""
        if template == "default":
            return self.for_task(task, "train")[0]
        if template == "unseen":
            unseen = self.for_task(task, "unseen")
            if not unseen:
                raise ConfigError(f"task {task!r} has no held-out (`split: unseen`) template")
            return unseen[0]
        found = self._by_id.get(template)
        if found is None or found.task != task:
            ids = [t.id for t in self._by_task.get(task, [])]
            raise ConfigError(f"no template {template!r} for task {task!r}; choose from {ids}")
        return found

    def select(self, task: str, ids: Sequence[str] | None) -> list[Template]:
        """The training templates of a task, restricted to `ids` when given."""
        train = self.for_task(task, "train")
        if ids is None:
            return train
        known = {t.id: t for t in self.for_task(task, None)}
        missing = [i for i in ids if i not in known]
        if missing:
            raise ConfigError(f"task {task!r} has no template(s) {missing}; have {list(known)}")
        return [known[i] for i in ids]

    def versions(self) -> dict[str, int]:
        return {t.id: t.version for t in self.all()}

    def replace(self, others: Iterable[Template]) -> TemplateSet:
        """A new set where the tasks defined by `others` use only those templates."""
        others = list(others)
        tasks = {t.task for t in others}
        kept = [t for t in self.all() if t.task not in tasks]
        return TemplateSet([*kept, *others])


def default_template_files() -> list[Path]:
    folder = resources.files("recalign") / "templates"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_templates(
    paths: Sequence[str | Path] | None,
    available: Mapping[str, frozenset[str]],
    *,
    include_defaults: bool = True,
) -> TemplateSet:
    """The shipped templates, with the tasks of the user's files replaced by theirs.

    `recalign.samples.tasks.load_templates` is this with the tasks' placeholders.
    """
    base = TemplateSet([])
    if include_defaults:
        base = TemplateSet(
            t for path in default_template_files() for t in read_template_file(path, available)
        )
    for path in paths or ():
        base = base.replace(read_template_file(path, available))
        logger.info("using templates from %s", path)
    return base
