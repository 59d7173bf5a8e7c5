"""The output-folder check shared by every sub-command that writes a folder.

:func:`writable_folder` creates the folder and writes and removes a probe file in it, before
any heavy work, so that an unwritable ``--out`` is a bad argument (exit code 2, one line naming
the option, the path and the reason) rather than a traceback after minutes of work.
:func:`disk_full_message` is the one line ``main`` prints when a write fails for lack of space.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

PROBE_NAME = ".mlfem-write-probe"

#: errno values that mean "the disk (or the user's quota) is full".
DISK_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


def _reason(error: OSError) -> str:
    """A short lower-case reason for a failed folder creation or probe write."""
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if error.errno == errno.EROFS:
        return "read-only file system"
    if error.errno in DISK_FULL:
        return "no space left on device"
    return (error.strerror or str(error)).lower()


def _file_above(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` (or ``path`` itself) that is not a folder."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def writable_folder(path: Path, option: str = "--out", create: bool = True) -> Path:
    """Create folder ``path`` (with ``create``) and check that a file can be written in it.

    Raises :class:`mlfem.cli.UsageError` naming ``option``, the path and the reason: a file
    where the folder (or one of its parents) should be, permission denied, read-only file system.
    Returns ``path``.
    """
    from mlfem.cli import UsageError

    blocker = _file_above(path)
    if blocker is not None:
        if blocker == path:
            raise UsageError(f"{option} {path}: exists as a file; name a folder")
        raise UsageError(f"{option} {path}: cannot create the folder: {blocker} exists as a file")
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"{option} {path}: cannot create the folder: {_reason(error)}") from None
    probe = path / f"{PROBE_NAME}-{os.getpid()}"
    try:
        handle = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(handle, b"0")
        finally:
            os.close(handle)
            os.unlink(probe)
    except OSError as error:
        raise UsageError(f"{option} {path}: cannot write in this folder: {_reason(error)}") from None
    return path


def disk_full_message(error: OSError) -> str:
    """The one-line message for a write that failed because the disk is full."""
    where = f"cannot write {error.filename}" if error.filename else "cannot write the output"
    return f"{where}: no space left on device (free some space and run the command again)"
