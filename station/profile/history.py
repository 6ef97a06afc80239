"""The station's calibration history: every profile ever made, and a pointer to the one in effect.

A technician must be able to prove the station was in tolerance on any given day, so profiles are
never overwritten or edited: each new one is a new file named by its creation time and technician,
written once (whole, then linked in only if its name is free: never over another file) and made
read-only. Which one the station uses is a separate one-line pointer file, ``active``, replaced
atomically, so switching back to an older profile is one write and the history stays whole.

Layout (``$XDG_DATA_HOME/fever-station/profile/history/`` by default)::

    20261123T100000Z-ada.toml     one profile per file, read-only
    20261130T081500Z-ada.toml
    active                        the file name of the profile in effect

It lives in ``station`` because the engine reads the active profile when no ``--calibration`` is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from station.atomic import atomic_write
from station.errors import ProfileError
from station.paths import default_profiles_dir
from station.profile.schema import CalibrationProfile

ACTIVE_POINTER = "active"
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class StoredProfile:
    """One profile of the history, as listed: its file, when and by whom it was made, and whether it is in effect.

    A file of the history that cannot be read (corrupted on disk, edited by hand, from a newer station)
    is listed too, with ``profile`` None and ``error`` the one-line reason: the history is evidence, so
    one bad file must neither hide the others nor stop the station from showing the profile in effect.
    """

    path: Path
    profile: CalibrationProfile | None
    active: bool
    error: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def readable(self) -> bool:
        return self.profile is not None


class ProfileStore:
    """Profiles kept with their timestamps and technicians; the active one is a pointer.

    Parameters
    ----------
    root
        The folder holding the history (created on first save, mode 0700).
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_profiles_dir()

    # ------------------------------------------------------------------ writing
    def save(self, profile: CalibrationProfile, *, activate: bool = True) -> Path:
        """Keep a new profile in the history (never replacing a file) and, by default, make it active.

        The profile must name its technician: an anonymous calibration proves nothing later.
        """
        if not profile.technician:
            raise ProfileError("a stored profile must name its technician (give --technician NAME)")
        text_toml = profile.to_toml()
        # Read it back as the engine will before it joins the history: a profile that cannot be loaded must
        # never be written (it could not be made active, and would be a bad entry in the record forever).
        CalibrationProfile.from_toml(text_toml, origin="the new profile")
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            stamp = _compact(profile.created)
            slug = _SLUG.sub("-", profile.technician.lower()).strip("-") or "technician"
            text = text_toml.encode("utf-8")
            for n in range(1, 1000):
                path = self.root / (f"{stamp}-{slug}.toml" if n == 1 else f"{stamp}-{slug}-{n}.toml")
                if path.exists():
                    continue
                try:  # written whole beside it, then linked in only while the name is still free
                    atomic_write(path, text, mode=0o444, exclusive=True)
                except FileExistsError:
                    continue
                break
            else:  # pragma: no cover - a thousand profiles in one second
                raise ProfileError(f"{self.root}: too many profiles made at {profile.created}")
        except OSError as exc:
            raise ProfileError(f"{self.root}: cannot store the profile ({exc.strerror or exc})") from None
        if activate:
            self.activate(path.name)
        return path

    def activate(self, name: str) -> Path:
        """Point the station at a profile of the history (by file name); returns its path."""
        path = self.root / Path(name).name
        if not path.is_file():
            known = ", ".join(p.name for p in self._files()) or "none"
            raise ProfileError(f"{name}: no such profile in {self.root} (profiles: {known})")
        CalibrationProfile.load(path)  # refuse to point at a profile the engine could not read
        try:
            atomic_write(self.root / ACTIVE_POINTER, path.name + "\n")
        except OSError as exc:
            raise ProfileError(f"{self.root}: cannot set the active profile ({exc.strerror or exc})") from None
        return path

    # ------------------------------------------------------------------ reading
    def active_path(self) -> Path | None:
        """The active profile's file, or None when no profile was ever stored here."""
        pointer = self.root / ACTIVE_POINTER
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ProfileError(f"{pointer}: cannot read the active-profile pointer ({exc.strerror or exc})") from None
        path = self.root / Path(name).name
        if not name or not path.is_file():
            raise ProfileError(f"{pointer}: points at {name!r}, which is not in {self.root}")
        return path

    def active(self) -> CalibrationProfile | None:
        path = self.active_path()
        return CalibrationProfile.load(path) if path is not None else None

    def history(self) -> list[StoredProfile]:
        """Every stored profile, oldest first (by creation time, then by when its file was written).

        Unreadable files are listed in place (their time from the file name the store gave them, else
        from the file's modification time) with the reason, rather than failing the whole history.
        """
        active = self.active_path()
        out = []
        for path in self._files():
            try:
                out.append(StoredProfile(path, CalibrationProfile.load(path), path == active))
            except ProfileError as exc:
                out.append(StoredProfile(path, None, path == active, _without_path(str(exc), path)))
        # Same second: the file written later is the later profile (its name only adds a -2, -3 suffix).
        return sorted(out, key=lambda s: (_when(s), _mtime_ns(s.path), s.name))

    def _files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob("*.toml") if not p.name.startswith("."))


def _when(stored: StoredProfile) -> datetime:
    """When a listed profile was made: its ``created``, or for an unreadable file its name's time stamp."""
    if stored.profile is not None:
        return _parse(stored.profile.created)
    try:
        return datetime.strptime(stored.name[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return datetime.fromtimestamp(_mtime_ns(stored.path) / 1e9, UTC)


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # removed while listing: sorts first, and is reported by whoever opens it
        return 0


def _without_path(message: str, path: Path) -> str:
    """A profile error's reason without the leading path, for a list that already names the file."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _parse(created: str) -> datetime:
    return datetime.fromisoformat(created.replace("Z", "+00:00")).astimezone(UTC)


def _compact(created: str) -> str:
    return _parse(created).strftime("%Y%m%dT%H%M%SZ")
