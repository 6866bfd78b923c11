"""Whole-file writes that survive crashes and full disks: temp file, fsync, rename.

The one writer of session files, used by :class:`~lbkit.sessions.FileStore` and by the
sharedance server. A reader (or a crash) sees the old file or the new one, never a mix;
a short write (disk full, quota) is an ``OSError`` before anything is renamed, so the
previous file survives and nothing is acknowledged. Files are created 0600.

:func:`write_files` is a group commit: it writes every file of a batch, then fsyncs them
(the first fsync commits the journal for all, the others find little left to do), renames
them and fsyncs the directory once, so N concurrent writes cost about one disk flush.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

__all__ = ["TEMP_PREFIX", "write_file", "write_files"]

#: Name prefix of temporary files (never a valid key: keys have no ".").
TEMP_PREFIX = ".tmp-"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # a full disk shows as a short write, then ENOSPC
            raise OSError(errno.ENOSPC, "short write: no space left on device")
        view = view[written:]


def _discard(tmp: Path, fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(OSError):
        tmp.unlink()


def write_files(
    directory: Path, files: Sequence[tuple[str, bytes]], *, fsync: bool = True
) -> list[OSError | None]:
    """Replace each ``directory/name`` with its data; per file, None or the error.

    A file whose write, fsync or rename failed keeps its previous content; the others
    are durable (when ``fsync``) once this returns.
    """
    outcome: list[OSError | None] = [None] * len(files)
    written: list[tuple[int, Path, int]] = []
    for i, (_name, data) in enumerate(files):
        tmp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        fd = None
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            _write_all(fd, data)
            written.append((i, tmp, fd))
        except OSError as exc:
            outcome[i] = exc
            _discard(tmp, fd)
    renamed = False
    for i, tmp, fd in written:
        handle: int | None = fd
        try:
            if fsync:
                os.fsync(fd)
            os.close(fd)
            handle = None
            os.replace(tmp, directory / files[i][0])
            renamed = True
        except OSError as exc:
            outcome[i] = exc
            _discard(tmp, handle)
    if fsync and renamed:
        try:
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:  # the renames may not be durable: acknowledge none
            outcome = [exc if err is None else err for err in outcome]
    return outcome


def write_file(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically and durably (``OSError`` if it cannot)."""
    (error,) = write_files(path.parent, [(path.name, data)], fsync=fsync)
    if error is not None:
        raise error
