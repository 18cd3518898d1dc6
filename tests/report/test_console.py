"""The results table in a terminal: the LLM first, names whole at 80 columns."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from recalign.cli.console import print_results

from .fixture import LLM_LABEL, make_run

SRC = Path(__file__).resolve().parents[2] / "src"
FULL_RANKING_ROWS = [
    LLM_LABEL,
    "SASRec (BCE loss), same users",
    "popularity, same users",
    "SASRec (BCE loss)",
    "popularity",
]


def _rows(text: str, title: str) -> list[str]:
    """The model names of the table under `title`, wrapped lines joined again."""
    lines = [line.rstrip() for line in text.splitlines()]
    header = next(i for i in range(lines.index(title), len(lines)) if "users" in lines[i])
    users = lines[header].index("users")  # right-aligned numbers end under this header
    names: list[str] = []
    for line in lines[header + 2 :]:
        if not line.strip() or line.startswith("history rule"):
            break
        name, rest = line[:users].strip(), line[users:].strip()
        if rest:
            names.append(name)
        else:
            names[-1] += " " + name
    return names


def _check(text: str, width: int) -> None:
    assert "…" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width
    assert _rows(text, "Full ranking over the catalogue (retrieval)") == FULL_RANKING_ROWS
    assert _rows(text, "Rating prediction")[0] == LLM_LABEL
    # Tables in protocol order, each followed by its verdict.
    order = [text.index(t) for t in ("Full ranking", "Ranking 20", "Rating prediction")]
    assert order == sorted(order)
    assert len(re.findall(r"^  verdict: \S.* (beats|scores) ", text, flags=re.MULTILINE)) == 3
    assert "hit@K: share of users" in text and "train:tiny-t5" in text


def test_table_at_80_columns_wraps_names_instead_of_cutting(tmp_path):
    run = make_run(tmp_path / "run")
    buffer = io.StringIO()
    print_results(run, Console(file=buffer, width=80, color_system=None))
    text = buffer.getvalue()
    _check(text, 80)
    assert "tiny-t5 (trained from scratch," in text  # the 80-column table wraps it


def _script(run: Path) -> list[str]:
    code = "import sys; from recalign.cli.console import print_results; print_results(sys.argv[1])"
    return [sys.executable, "-c", code, str(run)]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return {**env, "PYTHONPATH": str(SRC), **extra}


def test_piped_output_honours_columns(tmp_path):
    run = make_run(tmp_path / "run")
    narrow = subprocess.run(
        _script(run), env=_env(COLUMNS="80"), capture_output=True, text=True, check=True
    )
    _check(narrow.stdout, 80)
    wide = subprocess.run(_script(run), env=_env(), capture_output=True, text=True, check=True)
    _check(wide.stdout, 140)
    assert f" {LLM_LABEL} " in wide.stdout  # room enough: one line


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_a_real_80_column_terminal(tmp_path):
    import fcntl
    import pty
    import struct
    import termios

    run = make_run(tmp_path / "run")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 80, 0, 0))
    process = subprocess.Popen(_script(run), env=_env(TERM="xterm"), stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other end closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=60) == 0
    os.close(master)
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    _check(re.sub(r"\x1b\[[0-9;]*m", "", text), 80)
