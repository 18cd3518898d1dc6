"""A report as a list of blocks, rendered to Markdown and to self-contained HTML.

Text may hold `code` spans (backquotes), as Markdown writes them; the HTML renderer
turns them into <code>. Table cells listed in `marked` are emphasised (bold in
Markdown, highlighted in HTML): the hits of an example, say.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]


@dataclass(frozen=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    marked: frozenset[tuple[int, int]] = field(default_factory=frozenset)  # (row, column)


@dataclass(frozen=True)
class Image:
    path: Path
    alt: str


@dataclass(frozen=True)
class Code:
    text: str


Block = Heading | Paragraph | Bullets | Table | Image | Code


def _md_cell(value: str, marked: bool = False) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return f"**{text}**" if marked and text else text


def to_markdown(blocks: Sequence[Block], base: Path) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, Paragraph):
            out.append(block.text + "\n")
        elif isinstance(block, Bullets):
            out.extend(f"- {item}" for item in block.items)
            out.append("")
        elif isinstance(block, Table):
            out.append("| " + " | ".join(map(_md_cell, block.header)) + " |")
            out.append("|" + "---|" * len(block.header))
            out.extend(
                "| "
                + " | ".join(_md_cell(c, (i, j) in block.marked) for j, c in enumerate(row))
                + " |"
                for i, row in enumerate(block.rows)
            )
            out.append("")
        elif isinstance(block, Image):
            out.append(f"![{block.alt}]({block.path.relative_to(base).as_posix()})\n")
        elif isinstance(block, Code):
            out.append("```\n" + block.text + "\n```\n")
    return "\n".join(out)


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1d1d1f}table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ccd;padding:.3em .6em;text-align:left}th{background:#eef}
td.mark{background:#dff5dd;font-weight:600}code{background:#f1f1f4;padding:0 .2em}
li{margin:.25em 0}
pre{background:#f6f6f8;padding:.8em;overflow-x:auto;white-space:pre-wrap}img{max-width:100%}
"""
_CODE_SPAN = re.compile(r"`([^`]+)`")


def _inline(text: str) -> str:
    """Escaped text with its `code` spans as <code>."""
    return _CODE_SPAN.sub(r"<code>\1</code>", html.escape(str(text)))


def to_html(blocks: Sequence[Block], title: str) -> str:
    """One self-contained page: figures are embedded as base64 PNG."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{_inline(item)}</li>" for item in block.items)
            parts.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_inline(h)}</th>" for h in block.header)
            body = "".join(
                "<tr>"
                + "".join(
                    f"<td class='mark'>{_inline(c)}</td>"
                    if (i, j) in block.marked
                    else f"<td>{_inline(c)}</td>"
                    for j, c in enumerate(row)
                )
                + "</tr>"
                for i, row in enumerate(block.rows)
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Image):
            data = base64.b64encode(block.path.read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(block.alt)}' src='data:image/png;base64,{data}'>")
        elif isinstance(block, Code):
            parts.append(f"<pre>{html.escape(block.text)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
