"""Atomic file writes: every output of latentpaint appears whole or not at all."""

from __future__ import annotations

import json
import math
import os
import secrets
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from latentpaint.errors import LatentpaintError, quoted


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Calls `write(tmp)` on a temp path beside `path`, then renames it onto `path`.

    The temp file sits in the same folder, so the rename is atomic and readers never see half a file;
    it is created by `write` itself (not mkstemp), so it gets the usual umask permissions, not 0600.
    `check_output_file` comes first: the rename never replaces a device node, a pipe or a folder.
    """
    path = Path(path)
    check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno is None or exc.filename != str(tmp):
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None  # the file the user knows, not the temp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Writes `data` to `path` atomically."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def finite_json(value: object) -> object:
    """Recursively turns NaN / infinity into None so the JSON is standard."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: Path, payload: dict) -> None:
    """Writes `payload` as JSON atomically, so readers never see half a file."""
    atomic_write_bytes(path, (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode("utf-8"))


# -- the one rule for outputs a user names -------------------------------------------------------------
OVERWRITE_FLAG = "--overwrite"
REGULAR, FOLDER = "a regular file", "a folder"
_KINDS = (
    (stat.S_ISREG, REGULAR),
    (stat.S_ISDIR, FOLDER),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)


def path_kind(path: str | Path) -> str | None:
    """What is at `path`, links followed: `REGULAR`, `FOLDER`, "a character device", ...; None if nothing."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), "a special file")


def _open_file_link(path: Path) -> bool:
    """Whether `path` is, or links through, a process's open file in /proc (/dev/stdout, /dev/fd/1): with
    output redirected to a file it looks regular, but the rename would replace the system's link."""
    for _ in range(40):  # the kernel's own limit on links followed
        hop = Path(os.path.realpath(path.parent)) / path.name
        if hop.parts[:2] == ("/", "proc"):
            return True
        if not hop.is_symlink():
            return False
        path = hop.parent / os.readlink(hop)
    return False


def _check_parents(path: Path, flag: str) -> None:
    """The nearest existing path above `path` must be a folder, or `path` cannot be created."""
    for parent in path.parents:
        kind = path_kind(parent)
        if kind == FOLDER:
            return
        if kind is not None:
            raise LatentpaintError(
                f"{flag} {quoted(path)} cannot be created: {quoted(parent)} is {kind}, not a folder"
            )


def check_output_file(path: str | Path, flag: str = "output") -> None:
    """The rule for every file latentpaint writes: whatever exists at `path` must be a regular file (a
    device node, a named pipe, a socket or a folder is never replaced, `--overwrite` or not), and the
    nearest existing path above it a folder. `flag` names the argument in the message."""
    path = Path(path)
    kind = path_kind(path)
    if kind == REGULAR and _open_file_link(path):
        kind = "a process's open file (a link into /proc)"
    if kind not in (None, REGULAR):
        raise LatentpaintError(
            f"{flag} {quoted(path)} is {kind}, not a regular file; it is never replaced: choose a file name"
        )
    _check_parents(path, flag)


def check_output_folder(path: str | Path, flag: str = "--out") -> None:
    """A folder a command writes into (`--out`, `--output`): an existing path there must be a folder,
    otherwise the nearest existing path above it must be one."""
    path = Path(path)
    kind = path_kind(path)
    if kind not in (None, FOLDER):
        raise LatentpaintError(f"{flag} {quoted(path)} is {kind}; expected a folder (existing or new)")
    if kind is None:
        _check_parents(path, flag)


def check_input_folder(path: str | Path, flag: str, expected: str = "a folder") -> None:
    """A folder argument a command reads: one sentence naming `flag`, what is there and what was expected."""
    kind = path_kind(path)
    if kind != FOLDER:
        found = "does not exist" if kind is None else f"is {kind}"
        raise LatentpaintError(f"{flag} {quoted(path)} {found}; expected {expected}")


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file: two names of one file (a hard link, a symlink) share it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_outputs(
    outputs: Iterable[str | Path],
    inputs: Iterable[str | Path | None] = (),
    overwrite: bool = False,
    where: str | Path | None = None,
    flag: str = "--out",
) -> None:
    """Refuses, before anything is written, an output that is one of the `inputs` (always), that is not
    a regular file (`check_output_file`, always) or a file that already exists (unless `overwrite`): the
    user's files are replaced only when they asked for it.

    `inputs` are the files a command reads (a folder counts as every file in it, e.g. a model folder's
    config and weights); `where` names the output folder in the message when a folder run would
    replace several files; `flag` is the option naming the outputs. Raises one `LatentpaintError`; the
    CLI turns it into one line and exit code 2.
    """
    outputs = [Path(p) for p in outputs]
    read: list[Path] = []
    for p in (Path(p) for p in inputs if p is not None):
        read.extend(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else read.append(p)
    by_path = {p.resolve(): p for p in read}
    by_identity = {_identity(p): p for p in read} if any(o.exists() for o in outputs) else {}
    by_identity.pop(None, None)
    for out in outputs:
        source = by_path.get(out.resolve()) or (by_identity.get(_identity(out)) if out.exists() else None)
        if source is not None:
            raise LatentpaintError(
                f"refusing to write {flag} {quoted(out)}: it would overwrite the input {quoted(source)}; "
                "choose another output"
            )
        check_output_file(out, flag)
    if overwrite:
        return
    existing = [out for out in outputs if out.exists() or out.is_symlink()]
    if len(existing) == 1:
        raise LatentpaintError(
            f"{flag} {quoted(existing[0])} already exists; pass {OVERWRITE_FLAG} to replace it"
        )
    if existing:
        folder = f" in {quoted(where)}" if where is not None else ""
        raise LatentpaintError(
            f"{len(existing)} files already exist{folder} (e.g. {quoted(existing[0])}); pass {OVERWRITE_FLAG} "
            "to replace them"
        )


def add_overwrite_flag(parser) -> None:
    """The shared `--overwrite` option of every command that writes files the user names."""
    parser.add_argument(
        OVERWRITE_FLAG,
        action="store_true",
        help="replace output files that already exist (an output that is also an input is always refused)",
    )
