"""Paths one artefact records to another, found again from any working directory.

`recorded_path` writes such a path relative to the manifest's own directory when it
lies in the same tree (at most one level up: `RUN/../samples` in a `recalign run`
directory), so a whole tree can be moved or copied; a path elsewhere is recorded
absolute, so an artefact moved on its own still finds it. `find_recorded` reads a
recorded path back — also where a moved or copied tree put it — and an `accept` test
decides which candidate really is the artefact (for an input: the one whose content
hash was recorded).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

# How many trailing parts of a recorded path are tried under the artefact's ancestors
# when the path itself is gone (a moved tree): `samples`, `demo/samples`, `runs/demo/samples`.
_MAX_TAIL = 3


def recorded_path(target: str | Path, directory: str | Path) -> str:
    """How a manifest in `directory` records `target` (see the module docstring)."""
    target_abs = os.path.abspath(target)
    try:
        relative = os.path.relpath(target_abs, os.path.abspath(directory))
    except ValueError:  # another drive (Windows)
        return target_abs
    ups = 0
    for part in Path(relative).parts:
        if part != os.pardir:
            break
        ups += 1
    return relative if ups <= 1 else target_abs


def _tail_parts(path: Path) -> list[str]:
    return [p for p in Path(os.path.normpath(path)).parts if p not in (os.pardir, os.curdir)][
        1 if path.is_absolute() else 0 :
    ]


def recorded_candidates(value: str, directory: str | Path) -> Iterator[Path]:
    """Where the path `value`, recorded by a manifest in `directory`, may be now (in order)."""
    path = Path(value).expanduser()
    directory = Path(os.path.abspath(directory))
    ancestors = [directory, *directory.parents]
    tail = _tail_parts(path)

    def moved(places: list[Path]) -> Iterator[Path]:
        # A moved or copied tree: the path's last parts under these places, nearest first.
        for place in places:
            for n in range(1, min(_MAX_TAIL, len(tail)) + 1):
                yield place.joinpath(*tail[-n:])

    if path.is_absolute():
        # A copy of a whole tree reads its own copy first (the tree as `recorded_path`
        # sees it: the directory and its parent), then the recorded place.
        yield from moved(ancestors[:2])
        yield path
    else:
        yield directory / path  # how recalign records a path
        # A path typed relative to the working directory of the time (a model source).
        yield from (a / path for a in directory.parents)
        yield Path.cwd() / path
    yield from moved(ancestors)


def find_recorded(value: str, directory: str | Path, accept: Callable[[Path], bool]) -> Path | None:
    """The first candidate for the recorded `value` that `accept` takes, else None."""
    seen: set[str] = set()
    for candidate in recorded_candidates(value, directory):
        key = os.path.normpath(candidate)
        if key in seen:
            continue
        seen.add(key)
        if accept(candidate):
            return Path(key)
    return None
