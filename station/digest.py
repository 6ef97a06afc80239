"""A file's SHA-256, the one fingerprint the station records: of the face model with every screening, of
imported files in their recording's meta.json, of exported files in the export log."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of the file's bytes, read in chunks (hashlib.file_digest)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
