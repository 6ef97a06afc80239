"""Where the station keeps its files: one function per folder, following the XDG base directories.

* data (the event log, snapshots, calibration profiles): ``$XDG_DATA_HOME/fever-station``,
  ``~/.local/share/fever-station`` when the variable is unset or empty;
* config (settings and the technician PIN hash): ``$XDG_CONFIG_HOME/fever-station``, ``~/.config/...``;
* cache (anything that can be rebuilt): ``$XDG_CACHE_HOME/fever-station``, ``~/.cache/...``.

The environment is read on every call (tests and ``env`` wrappers point it elsewhere). Nothing here
creates a folder: the callers that write decide the mode (0700 where health data is kept).
"""

from __future__ import annotations

import os
from pathlib import Path

APP_DIR_NAME = "fever-station"


def _base(variable: str, *default: str) -> Path:
    return Path(os.environ.get(variable) or Path.home().joinpath(*default))


def data_dir() -> Path:
    """``$XDG_DATA_HOME/fever-station`` (``~/.local/share`` by default): the log, snapshots, profiles."""
    return _base("XDG_DATA_HOME", ".local", "share") / APP_DIR_NAME


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/fever-station`` (``~/.config`` by default): the settings file."""
    return _base("XDG_CONFIG_HOME", ".config") / APP_DIR_NAME


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/fever-station`` (``~/.cache`` by default): files that can be rebuilt."""
    return _base("XDG_CACHE_HOME", ".cache") / APP_DIR_NAME


def default_db_path(name: str = "station.db") -> Path:
    """The station's configured database, its directory created on first use (mode 0700: it holds
    health data). ``station demo`` passes ``demo.db`` so demo screenings never mix with a real log."""
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / name


def default_profiles_dir() -> Path:
    """``$XDG_DATA_HOME/fever-station/profiles`` (beside the station's log)."""
    return data_dir() / "profiles"


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/fever-station/config.toml``."""
    return config_dir() / "config.toml"


__all__ = ["APP_DIR_NAME", "cache_dir", "config_dir", "data_dir", "default_config_path", "default_db_path",
           "default_profiles_dir"]
