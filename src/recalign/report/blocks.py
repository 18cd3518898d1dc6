"""A report as a list of blocks, rendered to Markdown and to self-contained HTML."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass(frozen=True)
class Image:
    path: Path
    alt: str


@dataclass(frozen=True)
class Code:
    text: str


Block = Heading | Paragraph | Table | Image | Code


def _md_cell(value: str) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block], base: Path) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, Paragraph):
            out.append(block.text + "\n")
        elif isinstance(block, Table):
            out.append("| " + " | ".join(map(_md_cell, block.header)) + " |")
            out.append("|" + "---|" * len(block.header))
            out.extend("| " + " | ".join(map(_md_cell, row)) + " |" for row in block.rows)
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
pre{background:#f6f6f8;padding:.8em;overflow-x:auto;white-space:pre-wrap}img{max-width:100%}
"""


def to_html(blocks: Sequence[Block], title: str) -> str:
    """One self-contained page: figures are embedded as base64 PNG."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in block.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Image):
            data = base64.b64encode(block.path.read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(block.alt)}' src='data:image/png;base64,{data}'>")
        elif isinstance(block, Code):
            parts.append(f"<pre>{html.escape(block.text)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
