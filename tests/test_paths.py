"""``station.paths``: the data, config and cache folders follow XDG, and the old names still work."""

from __future__ import annotations

from pathlib import Path

import pytest

from station import config, headless, paths
from station.profile import history as profiles


def test_each_folder_follows_its_xdg_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "d"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "k"))
    assert paths.data_dir() == tmp_path / "d" / "fever-station"
    assert paths.config_dir() == tmp_path / "c" / "fever-station"
    assert paths.cache_dir() == tmp_path / "k" / "fever-station"
    assert paths.default_profiles_dir() == tmp_path / "d" / "fever-station" / "profiles"
    assert paths.default_config_path() == tmp_path / "c" / "fever-station" / "config.toml"
    assert paths.default_db_path("demo.db") == tmp_path / "d" / "fever-station" / "demo.db"
    assert (tmp_path / "d" / "fever-station").is_dir()


@pytest.mark.parametrize("value", [None, ""])
def test_unset_or_empty_falls_back_to_the_home_defaults(tmp_path, monkeypatch, value):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert paths.data_dir() == tmp_path / ".local" / "share" / "fever-station"
    assert paths.config_dir() == tmp_path / ".config" / "fever-station"
    assert paths.cache_dir() == tmp_path / ".cache" / "fever-station"


def test_the_old_names_are_the_same_functions():
    assert headless.data_dir is paths.data_dir and headless.default_db_path is paths.default_db_path
    assert headless.APP_DIR_NAME == paths.APP_DIR_NAME == "fever-station"
    assert config.default_config_path is paths.default_config_path
    assert profiles.default_profiles_dir is paths.default_profiles_dir


def test_the_store_and_the_settings_default_to_them(private_station_dirs: Path):
    assert profiles.ProfileStore().root == private_station_dirs / "data" / "fever-station" / "profiles"
    assert config.default_config_path() == private_station_dirs / "config" / "fever-station" / "config.toml"
