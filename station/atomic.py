"""Replace a whole file so a crash or a power cut leaves either the old file or the new one, complete.

Every writer of a whole file (settings, calibration profiles and their ``active`` pointer, a recording's
``meta.json``, exports, fitted models) goes through :func:`atomic_write` or :func:`atomic_writer`:

1. the bytes go to a temporary file in the target's own directory (a rename across file systems is
   not atomic), named ``.<name>.<random>.tmp`` so listings that skip dot files never see it;
2. it is flushed and ``os.fsync``-ed, so its contents are on disk before its name is;
3. it takes the target's name with ``os.replace`` (or, for ``exclusive``, with ``os.link``, which
   fails when the target exists, so a file written once is never replaced);
4. the directory is ``fsync``-ed, so the new name itself survives a power cut.

On any failure the temporary file is removed and the old file, if any, is untouched.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make the names in ``directory`` durable (a created or renamed file survives a power cut)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(path: str | os.PathLike[str], *, binary: bool = False, mode: int | None = None,
                  exclusive: bool = False, encoding: str = "utf-8", newline: str | None = None) -> Iterator[IO[Any]]:
    """Yield a handle on a temporary file that replaces ``path`` when the block ends without an exception.

    Parameters
    ----------
    binary
        Yield a bytes handle rather than a text one (``encoding`` and ``newline`` as for :func:`open`).
    mode
        The new file's permission bits (e.g. ``0o600``, ``0o444``), set whatever the umask; None gives
        what :func:`open` would (``0o666`` less the umask).
    exclusive
        Never replace an existing file: ``FileExistsError`` when ``path`` exists (checked when the new
        file takes its name, so a file created meanwhile is not replaced either).
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if mode is not None else 0o666)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": encoding,
                                                                         "newline": newline})) as handle:
            fd = -1  # the handle owns it now
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, target)
            os.unlink(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def atomic_write(path: str | os.PathLike[str], data: str | bytes, *, mode: int | None = None,
                 exclusive: bool = False, encoding: str = "utf-8", newline: str | None = None) -> Path:
    """Replace ``path`` by ``data`` (text or bytes) atomically and durably; see :func:`atomic_writer`."""
    binary = isinstance(data, bytes | bytearray | memoryview)
    with atomic_writer(path, binary=binary, mode=mode, exclusive=exclusive, encoding=encoding,
                       newline=newline) as handle:
        handle.write(data)
    return Path(path)


__all__ = ["atomic_write", "atomic_writer", "fsync_dir"]
