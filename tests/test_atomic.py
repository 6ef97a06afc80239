"""``station.atomic``: every writer of a whole file leaves either the old file or the new one, complete."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from station.acquire import record, recording
from station.atomic import atomic_write, atomic_writer
from station.cli.body_model import _write as write_model
from station.config import StationConfig, load_config, save_config
from station.errors import StationError
from station.profile.history import ACTIVE_POINTER, ProfileStore
from station.profile.schema import CalibrationProfile

DEMO = Path(__file__).resolve().parents[1] / "recordings" / "demo" / "calibration.toml"


class Crash(OSError):
    """The power cut, as the rename sees it."""


@pytest.fixture(scope="module")
def demo() -> CalibrationProfile:
    return CalibrationProfile.from_toml(DEMO.read_text(encoding="utf-8"), origin="demo.toml")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Record every fsync: (file mode bits, is a directory)."""
    calls: list[tuple[int, bool]] = []
    real = os.fsync

    def spy(fd: int) -> None:
        calls.append((os.fstat(fd).st_mode, stat.S_ISDIR(os.fstat(fd).st_mode)))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return calls


def _crash_on(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Path]:
    """``os.<name>`` raises once the temporary file is written (and checks it was written whole)."""
    seen: list[Path] = []

    def boom(src, dst, *args, **kwargs):
        seen.append(Path(src))
        assert Path(src).parent == Path(dst).parent, "the temporary file must be in the target's directory"
        raise Crash("simulated power cut")

    monkeypatch.setattr(os, name, boom)
    return seen


# ------------------------------------------------------------------------------------ the function itself
@pytest.mark.parametrize("data", ["tëxt\n", b"\x00bytes\xff"])
def test_atomic_write_writes_text_and_bytes_and_fsyncs_file_and_directory(tmp_path, monkeypatch, data):
    calls = _fsyncs(monkeypatch)
    path = tmp_path / "f"
    path.write_text("old")
    atomic_write(path, data)
    assert (path.read_bytes() if isinstance(data, bytes) else path.read_text(encoding="utf-8")) == data
    assert [is_dir for _, is_dir in calls] == [False, True]
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("mode", [0o600, 0o444, 0o640])
def test_atomic_write_sets_the_mode_asked_for_whatever_the_umask(tmp_path, mode):
    old = os.umask(0o077)
    try:
        atomic_write(tmp_path / "f", "x", mode=mode)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == mode


def test_without_a_mode_the_file_gets_what_open_would_give(tmp_path):
    (tmp_path / "plain").write_text("x")
    atomic_write(tmp_path / "atomic", "x")
    assert stat.S_IMODE((tmp_path / "atomic").stat().st_mode) == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def test_a_crash_before_the_rename_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_text("old")
    seen = _crash_on(monkeypatch, "replace")
    with pytest.raises(Crash):
        atomic_write(path, "new")
    assert len(seen) == 1 and path.read_text() == "old" and _leftovers(tmp_path) == []


def test_an_exception_while_writing_keeps_the_old_file(tmp_path):
    path = tmp_path / "f"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_writer(path) as handle:
        handle.write("half")
        raise RuntimeError("the writer failed")
    assert path.read_text() == "old" and _leftovers(tmp_path) == []


def test_exclusive_never_replaces_an_existing_file(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_text("first")
    with pytest.raises(FileExistsError):
        atomic_write(path, "second", exclusive=True)
    assert path.read_text() == "first" and _leftovers(tmp_path) == []
    calls = _fsyncs(monkeypatch)
    atomic_write(tmp_path / "g", "new", exclusive=True, mode=0o444)
    assert (tmp_path / "g").read_text() == "new" and _leftovers(tmp_path) == []
    assert [is_dir for _, is_dir in calls] == [False, True]


# ------------------------------------------------------------------------------------- every writer
def _profile_pointer(tmp_path: Path, demo: CalibrationProfile) -> tuple[Path, Callable[[], object]]:
    store = ProfileStore(tmp_path)
    first = store.save(replace(demo, technician="ada", created="2026-10-01T09:00:00Z"))
    second = store.save(replace(demo, technician="grace", created="2026-10-02T09:00:00Z"), activate=False)
    assert (tmp_path / ACTIVE_POINTER).read_text().strip() == first.name
    return tmp_path / ACTIVE_POINTER, lambda: store.activate(second.name)


def _writers(tmp_path: Path, demo: CalibrationProfile) -> dict[str, tuple[Path, Callable[[], object]]]:
    """Each writer: the file it replaces (already there, complete) and the call that replaces it."""
    config = tmp_path / "config" / "config.toml"
    save_config(StationConfig(elevated_c=37.4), config)
    meta = tmp_path / "rec" / "meta.json"
    meta.parent.mkdir()
    meta.write_text(json.dumps({"format": "x"}) + "\n")
    model = tmp_path / "model.json"
    model.write_text("{}\n")
    return {
        "config": (config, lambda: save_config(StationConfig(elevated_c=37.6), config)),
        "meta.json": (meta, lambda: recording._write_json_atomically(meta, {"format": "y"})),
        "meta.json extra key": (meta, lambda: record._add_to_meta(meta, "ended", "stopped")),
        "body model": (model, lambda: write_model(model, '{"new": true}\n')),
        "active profile": _profile_pointer(tmp_path / "profiles", demo),
    }


WRITERS = ["config", "meta.json", "meta.json extra key", "body model", "active profile"]


@pytest.mark.parametrize("name", WRITERS)
def test_each_writer_survives_a_crash_before_the_rename(tmp_path, monkeypatch, demo, name):
    path, write = _writers(tmp_path, demo)[name]
    before = path.read_bytes()
    seen = _crash_on(monkeypatch, "replace")
    with pytest.raises((Crash, StationError)):
        write()
    assert seen, "the writer must go through os.replace"
    assert path.read_bytes() == before
    assert _leftovers(path.parent) == []


@pytest.mark.parametrize("name", WRITERS)
def test_each_writer_fsyncs_the_file_and_its_directory(tmp_path, monkeypatch, demo, name):
    path, write = _writers(tmp_path, demo)[name]
    before = path.read_bytes()
    calls = _fsyncs(monkeypatch)
    write()
    assert path.read_bytes() != before
    assert [is_dir for _, is_dir in calls][-2:] == [False, True]
    assert _leftovers(path.parent) == []


def test_the_settings_file_stays_private_after_a_rewrite(tmp_path):
    path = tmp_path / "config.toml"
    save_config(StationConfig(), path)
    save_config(StationConfig(elevated_c=37.6), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and load_config(path).elevated_c == 37.6


# ------------------------------------------------------------------------------ profiles: written once
def test_a_stored_profile_is_durable_read_only_and_a_crash_leaves_nothing(tmp_path, monkeypatch, demo):
    store = ProfileStore(tmp_path)
    calls = _fsyncs(monkeypatch)
    path = store.save(replace(demo, technician="ada"), activate=False)
    assert [is_dir for _, is_dir in calls] == [False, True]
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    seen = _crash_on(monkeypatch, "link")
    with pytest.raises(StationError, match="cannot store the profile"):
        store.save(replace(demo, technician="grace"), activate=False)
    assert seen and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_an_existing_profile_is_never_replaced_even_when_it_appears_mid_write(tmp_path, monkeypatch, demo):
    store = ProfileStore(tmp_path)
    profile = replace(demo, technician="ada", created="2026-10-01T09:00:00Z")
    first = store.save(profile)
    original = first.read_bytes()
    second = store.save(profile)  # same second, same technician: a new name, never the old file
    assert second.name == first.name.replace(".toml", "-2.toml") and first.read_bytes() == original
    # Another writer takes the free name between the check and the link: the link refuses, the store moves on.
    real_link = os.link
    racer = tmp_path / first.name.replace(".toml", "-3.toml")

    def racing_link(src, dst, *args, **kwargs):
        if Path(dst) == racer and not racer.exists():
            racer.write_text("the other writer's")
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", racing_link)
    third = store.save(profile)
    assert racer.read_text() == "the other writer's"
    assert third.name == first.name.replace(".toml", "-4.toml") and first.read_bytes() == original
    assert _leftovers(tmp_path) == []
