"""The `recalign` entry point: usage errors, help, library errors and Ctrl-C, as a user meets them.

Usage errors run through the installed entry point's function (`recalign.cli:main`) in a
subprocess: what it prints is what a newcomer sees, whichever typer/click is installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

import recalign
from recalign.cli import app, main

SRC = str(Path(recalign.__file__).resolve().parents[1])  # this checkout's sources
# What the `recalign` script does, with its program name.
ENTRY_POINT = "import sys; sys.argv[0] = 'recalign'; from recalign.cli import main; main()"


def run_entry_point(*args: str, code: str = ENTRY_POINT):
    """`recalign ARGS...` in a fresh interpreter, through the same function the script calls."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["bogus"], "No such command 'bogus'"),  # unknown command
        (["data", "prepare", "synthetic"], "Missing option '--out'"),  # missing option
        (["--userz"], "No such option: --userz"),  # unknown option (root)
        (["data", "stats", "x", "--jsn"], "No such option: --jsn"),  # unknown option (command)
        (["recommend", "runs/x", "--k", "abc"], "Invalid value for '-k' / '--k'"),  # bad value
        (["serve", "runs/x", "--port", "99999"], "Invalid value for '--port'"),  # out of range
    ],
)
def test_usage_errors_are_a_short_message_and_exit_2(args, problem):
    done = run_entry_point(*args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert problem in done.stderr
    # The usage line, a hint, and one "Error: ..." paragraph: no wall of text.
    assert "Usage: recalign" in done.stderr and "-h" in done.stderr
    error = done.stderr[done.stderr.index("Error:") :].strip()
    assert "\n\n" not in error and len(error.splitlines()) <= 3
    assert len(done.stderr.strip().splitlines()) <= 6


def call_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`main()` in this process (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["recalign", *args])
    with pytest.raises(SystemExit) as done:
        main()
    out, err = capsys.readouterr()
    code = done.value.code
    return (code if isinstance(code, int) else 0 if code is None else 1), out, err


def command_paths() -> list[list[str]]:
    """Every group and command under the root, as argv prefixes (from typer's click tree)."""
    paths: list[list[str]] = []

    def walk(command, prefix: list[str]) -> None:
        paths.append(prefix)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not getattr(sub, "hidden", False):
                walk(sub, [*prefix, name])

    walk(typer.main.get_command(app), [])
    return paths


PATHS = command_paths()


def test_the_tree_is_walked():
    names = {" ".join(p) for p in PATHS}
    assert {"", "data", "data prepare", "recommend", "serve", "run", "samples"} <= names


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "recalign")
def test_dash_h_is_help_everywhere_and_flags_show_no_type(monkeypatch, capsys, path):
    code, out, err = call_main(monkeypatch, capsys, *path, "-h")
    assert code == 0, err
    assert out.startswith("Usage:") and "-h, --help" in out
    assert "<bool>" not in out and "BOOLEAN" not in out


def test_recommend_dash_h_is_help_not_history(monkeypatch, capsys):
    code, out, _ = call_main(monkeypatch, capsys, "recommend", "-h")
    assert code == 0 and "--history" in out and "--model" in out


def test_no_arguments_prints_the_help():
    done = run_entry_point()
    assert "Traceback" not in done.stderr
    assert done.returncode in (0, 2)  # click < 8.2 exits 0, later 2 (no command given)
    shown = done.stdout + done.stderr
    assert "Usage:" in shown and "Commands:" in shown and "recommend" in shown


def test_a_recalign_error_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path):
    missing = tmp_path / "missing"
    code, _, err = call_main(monkeypatch, capsys, "recommend", str(missing), "--history", "1")
    assert code == 2
    assert err.startswith("error: ") and "does not exist" in err
    assert "Traceback" not in err


class _Interrupting:
    """Stands in for the dataset registry: the first look at it is a Ctrl-C."""

    def __iter__(self):
        raise KeyboardInterrupt

    def values(self):
        raise KeyboardInterrupt


def test_ctrl_c_exits_130(monkeypatch, capsys):
    import recalign.data.registry

    monkeypatch.setattr(recalign.data.registry, "DATASETS", _Interrupting())
    code, _, err = call_main(monkeypatch, capsys, "data", "list")
    assert code == 130
    assert "Traceback" not in err


def test_data_commands_do_not_import_torch(tmp_path):
    """The CLI stays thin: `recalign data ...` (help, list, prepare, stats) never loads a
    model stack, so it starts fast on a machine without one."""
    log = tmp_path / "log.csv"
    log.write_text(
        "user_id,item_id\n" + "".join(f"u{u},i{i}\n" for u in range(3) for i in range(4))
    )
    out = tmp_path / "out"
    code = f"""
import sys
from recalign.cli import main
for args in (["data", "-h"], ["data", "list"],
             ["data", "prepare", "custom", "--interactions", {str(log)!r}, "--out", {str(out)!r}],
             ["data", "stats", {str(out)!r}, "--json"]):
    sys.argv = ["recalign", *args]
    try:
        main()
    except SystemExit as done:
        assert not done.code, (args, done.code)
heavy = sorted(m for m in ("torch", "transformers", "datasets") if m in sys.modules)
print("HEAVY", heavy)
"""
    done = run_entry_point(code=code)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout


def readme_commands() -> list[list[str]]:
    """The `recalign ...` lines of the README's tour of the command line, as argv."""
    import shlex

    readme = Path(__file__).resolve().parents[1] / "README.md"
    tour = readme.read_text().split("## A tour of the command line", 1)[1].split("```")[1]
    return [
        shlex.split(line, comments=True)[1:]
        for line in tour.splitlines()
        if line.startswith("recalign ")
    ]


@pytest.mark.parametrize("args", readme_commands(), ids=" ".join)
def test_readme_commands_parse(monkeypatch, capsys, args):
    """Every option the README shows exists: an unknown one fails before -h is handled."""
    code, out, err = call_main(monkeypatch, capsys, *args, "-h")
    assert code == 0, err
    assert out.startswith("Usage:")
