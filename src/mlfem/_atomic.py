"""Atomic file replacement: write a temporary file beside the target, then rename it.

Every writer that must never leave half a file (run records, checkpoints, split files, map
caches, gallery entries) goes through :func:`replacing`, so that a failed write (a full disk, a
Ctrl-C) removes its temporary file instead of leaving ``*.tmp`` behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield ``path`` + ``suffix`` to write to; on success rename it over ``path``.

    When the block (or the rename) raises, the temporary file is removed and the error
    propagates; an :class:`OSError` naming no file, or the temporary one, then names ``path``.
    """
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename in (None, str(tmp)):
            error.filename = str(path)  # name the file the user knows (e.g. a full disk)
        raise
