"""Atomic file writes: every output of latentpaint appears whole or not at all."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Calls `write(tmp)` on a temp path beside `path`, then renames it onto `path`.

    The temp file sits in the same folder, so the rename is atomic and readers never see half a file;
    it is created by `write` itself (not mkstemp), so it gets the usual umask permissions, not 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Writes `data` to `path` atomically."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
