"""The one credentials file format every fleet participant reads: stations, the ingester, the desk.

A TOML file readable by its owner only (mode 0600, checked: a password other users can read is not a
secret), holding ``password = "..."`` and optionally ``username = "..."`` (a station's user name is its
station id by default; the ingester's ``ingester``, the desk's ``desk``). Never on the command line,
where ``ps`` shows it to every user of the machine.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path

from station.errors import StationError


@dataclass(frozen=True)
class Credentials:
    password: str
    username: str | None = None


def read_credentials(path: Path) -> Credentials:
    """The credentials in ``path``.

    Raises
    ------
    StationError
        One line: the file is missing, open to other users, not TOML, or holds no password.
    """
    path = Path(path)
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StationError(f"fleet credentials {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StationError(f"fleet credentials {path}: cannot read ({getattr(exc, 'strerror', None) or exc})") \
            from None
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise StationError(f"fleet credentials {path}: open to other users (mode {mode:04o}); expected 0600 "
                           f"(chmod 600 {path})")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StationError(f"fleet credentials {path}: expected a line password = \"...\" ({exc})") from None
    password, username = raw.get("password"), raw.get("username")
    if not isinstance(password, str) or not password:
        raise StationError(f"fleet credentials {path}: expected a line password = \"...\"")
    if username is not None and (not isinstance(username, str) or not username):
        raise StationError(f"fleet credentials {path}: username must be a non-empty string")
    return Credentials(password, username)


def write_credentials(path: Path, password: str, username: str | None = None) -> None:
    """Write a credentials file :func:`read_credentials` accepts (mode 0600 from its creation)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        if username is not None:
            handle.write(f"username = {json.dumps(username)}\n")
        handle.write(f"password = {json.dumps(password)}\n")
