"""Reading, verifying and committing artefact directories.

Readers: `read_manifest` parses a directory's manifest into its typed model (a
directory without one is not an artefact, whatever files it holds); `verify` checks
every file the manifest covers — the size always, the sha256 through the hash cache —
and refuses a mismatch naming the file and how to make the artefact again.

Writers: `staged_output` writes a whole directory into a unique temporary sibling and
renames it into place on `commit`, under an exclusive lock (`output_lock`): readers
see the old artefact or the new one, never a mix, and a second writer fails at once
naming the first. Training writes in place for hours (checkpoints) and commits by
writing its manifest last (`seal`) under the same lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from recalign.artifacts.hashing import file_record
from recalign.artifacts.manifests import FORMAT, KINDS, Manifest
from recalign.constants import MANIFEST_FILE
from recalign.errors import DataFormatError, RecalignError
from recalign.fileio import read_json_object

M = TypeVar("M", bound=Manifest)


class ArtifactError(RecalignError):
    """A directory that is not the artefact it should be: no manifest, another kind, an
    older format, or a file that differs from what its manifest records."""


class ArtifactFileError(ArtifactError, DataFormatError):
    """One file of an artefact (its manifest, or a file the manifest covers) is damaged
    or is not the one recorded; `path` names it."""

    def __init__(self, path: Path, message: str) -> None:
        DataFormatError.__init__(self, message, path=path)


class ArtifactBusyError(ArtifactError):
    """Another process is writing the same output directory."""


# --- reading --------------------------------------------------------------------------
def _kind_names(expected: tuple[type[Manifest], ...]) -> str:
    """'a dataset', 'an evaluation or a baseline': what a reader expected, in words."""
    names = [cls.model_fields["kind"].default for cls in expected]
    return " or ".join(f"{'an' if n[0] in 'aeiou' else 'a'} {n}" for n in names)


def remake_hint(directory: Path, cls: type[Manifest]) -> str:
    """How to make the artefact in `directory` again: inside a `recalign run` directory,
    re-running the pipeline redoes the stage; elsewhere the kind's own command."""
    for parent in list(directory.absolute().parents)[:2]:
        raw = peek_manifest(parent)
        if raw is not None and raw.get("kind") == "pipeline":
            return f"run `recalign run` again for {parent} (it redoes that stage)"
    return cls.remake


def peek_manifest(directory: Path) -> dict[str, Any] | None:
    """The raw manifest of `directory`, or None when there is none readable."""
    if not (directory / MANIFEST_FILE).is_file():
        return None
    try:
        return read_json_object(directory / MANIFEST_FILE)
    except RecalignError:
        return None


def artifact_kind(directory: str | Path) -> str | None:
    """The kind a directory's manifest claims (not verified), or None."""
    raw = peek_manifest(Path(directory))
    kind = None if raw is None else raw.get("kind")
    return kind if isinstance(kind, str) else None


def _visible_entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def read_manifest(
    directory: str | Path, expected: type[M] | tuple[type[Manifest], ...] | None = None
) -> M:
    """The typed manifest of `directory` (of one of the `expected` kinds), unverified."""
    directory = Path(directory)
    kinds = expected if isinstance(expected, tuple) else (expected,) if expected else ()
    what = f"{_kind_names(kinds)} directory" if kinds else "an artefact directory"
    hint_cls = kinds[0] if len(kinds) == 1 else Manifest
    if not directory.is_dir():
        raise ArtifactError(f"{directory} does not exist or is not a directory (expected {what})")
    path = directory / MANIFEST_FILE
    if not path.is_file():
        present = _visible_entries(directory)
        if present:
            shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
            raise ArtifactError(
                f"{directory} holds {shown} but no {MANIFEST_FILE}: not {what} (its writer "
                f"was stopped before the end, or the files were put there by hand); "
                f"{remake_hint(directory, hint_cls)}"
            )
        raise ArtifactError(f"{directory} is empty (no {MANIFEST_FILE}): not {what}")
    try:
        raw = read_json_object(path)
    except DataFormatError as error:  # names the file (and line): damaged or cut short
        raise ArtifactFileError(
            path, f"{str(error).removeprefix(f'{path}: ')}; {remake_hint(directory, hint_cls)}"
        ) from None
    if not isinstance(raw.get("kind"), str):
        raise ArtifactFileError(
            path, f"damaged (no artefact kind); {remake_hint(directory, hint_cls)}"
        )
    kind = raw["kind"]
    cls = KINDS.get(kind)
    if kinds and (cls is None or cls not in kinds):
        raise ArtifactError(f"{directory} holds a {kind!r} artefact, not {what}")
    if cls is None:
        raise ArtifactError(f"{path}: unknown artefact kind {kind!r}")
    if raw.get("format") != FORMAT:
        raise ArtifactError(
            f"{path} was written by an older recalign (manifest format "
            f"{raw.get('format', 1)}, without the size and sha256 of its files), so its "
            f"files cannot be checked; {remake_hint(directory, cls)}"
        )
    try:
        return cls.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ArtifactError(
            f"{path} is not a valid {kind} manifest ({where}: {first['msg']}); "
            f"{remake_hint(directory, cls)}"
        ) from None


def verify(directory: str | Path, manifest: Manifest) -> None:
    """Refuse `directory` unless every file `manifest` covers is the one it recorded."""
    directory = Path(directory)
    cls = type(manifest)
    if manifest.content_hash != manifest.digest():
        raise ArtifactFileError(
            directory / MANIFEST_FILE,
            "edited: its content hash is not that of the files it lists; "
            f"{remake_hint(directory, cls)}",
        )
    for name, record in manifest.files.items():
        path = directory / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ArtifactFileError(
                path,
                f"missing (the {manifest.kind} manifest lists it); {remake_hint(directory, cls)}",
            ) from None
        if size != record.size:
            raise ArtifactFileError(
                path,
                f"not the file this {manifest.kind} was written with: it has {size:,} bytes, "
                f"{MANIFEST_FILE} records {record.size:,} (changed, replaced or cut short "
                f"since); {remake_hint(directory, cls)}",
            )
        if file_record(path).sha256 != record.sha256:
            raise ArtifactFileError(
                path,
                f"not the file this {manifest.kind} was written with: its sha256 differs "
                f"from the one {MANIFEST_FILE} records (changed or replaced since); "
                f"{remake_hint(directory, cls)}",
            )


def open_manifest(
    directory: str | Path, expected: type[M] | tuple[type[Manifest], ...] | None = None
) -> M:
    """`read_manifest` and `verify`: the manifest of an artefact whose files are intact."""
    manifest = read_manifest(directory, expected)
    verify(directory, manifest)
    return manifest


# --- writing --------------------------------------------------------------------------
def _covered_files(directory: Path, cls: type[Manifest]) -> Iterator[tuple[str, Path]]:
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            relative = path.relative_to(directory).as_posix()
            if relative != MANIFEST_FILE and cls.covers(relative):
                yield relative, path


def seal(directory: str | Path, manifest: M) -> M:
    """Record the files of `directory` in `manifest` and write it, last, atomically."""
    from recalign.manifest import write_json

    directory = Path(directory)
    files = {name: file_record(path) for name, path in _covered_files(directory, type(manifest))}
    sealed = manifest.model_copy(update={"files": files})
    sealed.content_hash = sealed.digest()
    write_json(directory / MANIFEST_FILE, sealed.model_dump(mode="json"))
    return sealed


def _holder() -> dict[str, Any]:
    import sys

    return {
        "pid": os.getpid(),
        "command": " ".join(sys.argv) if sys.argv else None,
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def output_lock(target: str | Path) -> Iterator[Path]:
    """Hold the exclusive write lock of the output directory `target`.

    A lock file beside it (`.NAME.lock`) is `flock`ed; the kernel drops the lock when
    the process dies, so a killed writer never blocks the next one. A second writer
    fails at once, naming the process that holds it.
    """
    target = Path(os.path.abspath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(target)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise ArtifactBusyError(_busy_message(target, path)) from None
        # The holder before us may have removed the file after we opened it: lock the
        # file that is at the path now.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_holder()).encode())
        yield target
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _busy_message(target: Path, path: Path) -> str:
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        holder = {}
    who = f"pid {holder.get('pid', '?')}"
    if holder.get("command"):
        who += f", `{holder['command']}`"
    if holder.get("since"):
        who += f", since {holder['since']}"
    return (
        f"{target} is being written by another process ({who}); wait for it to finish, "
        "or write to another directory"
    )


def _leftovers(target: Path, what: str) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.{what}-*"))


def _recover(target: Path) -> None:
    """Tidy what a killed writer of `target` left (we hold the lock: none is running).

    Killed between its two renames, it left the old artefact aside and none at the path:
    the old one goes back. Unfinished temporary directories are removed.
    """
    old = _leftovers(target, "old")
    if old and not target.exists():
        old.pop().rename(target)
    for path in [*old, *_leftovers(target, "tmp")]:
        shutil.rmtree(path, ignore_errors=True)


def _check_replaceable(target: Path, cls: type[Manifest]) -> None:
    """Refuse to replace a directory that holds anything but this kind of artefact."""
    if not target.exists():
        return
    if not target.is_dir():
        raise ArtifactError(f"{target} exists and is not a directory")
    entries = _visible_entries(target)
    if not entries:
        return
    kind = cls.model_fields["kind"].default
    if artifact_kind(target) == kind or set(entries) <= {*cls.produces, MANIFEST_FILE}:
        return
    raise ArtifactError(
        f"{target} already holds files that are not {_kind_names((cls,))} artefact "
        f"({', '.join(entries[:5])}{', ...' if len(entries) > 5 else ''}): choose another "
        "output directory, or delete it first"
    )


class StagedOutput:
    """An artefact being written in `path`, a temporary sibling of `target`."""

    def __init__(self, target: Path, path: Path, cls: type[Manifest]) -> None:
        self.target = target
        self.path = path
        self.cls = cls
        self.committed: Manifest | None = None

    def commit(self, manifest: M) -> M:
        """Seal the manifest (written last) and rename the directory into place."""
        if not isinstance(manifest, self.cls):
            raise TypeError(f"expected a {self.cls.__name__}, got {type(manifest).__name__}")
        sealed = seal(self.path, manifest)
        try:
            os.replace(self.path, self.target)  # atomic when the target is absent or empty
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            old = (
                self.target.parent / f".{self.target.name}.old-{os.getpid()}-{secrets.token_hex(3)}"
            )
            self.target.rename(old)
            self.path.rename(self.target)
            shutil.rmtree(old, ignore_errors=True)
        self.committed = sealed
        return sealed


@contextlib.contextmanager
def staged_output(target: str | Path, cls: type[Manifest]) -> Iterator[StagedOutput]:
    """Write an artefact of kind `cls` into a temporary sibling of `target`, under its
    lock; `commit` puts it in place. Without a commit (an error, a kill) the temporary
    directory goes and `target` keeps what it held."""
    target = Path(os.path.abspath(target))
    with output_lock(target):
        _recover(target)
        _check_replaceable(target, cls)
        staging = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}"
        staging.mkdir()
        output = StagedOutput(target, staging, cls)
        try:
            yield output
        finally:
            if output.committed is None:
                shutil.rmtree(staging, ignore_errors=True)
