"""The station's settings file: thresholds, alarm mode, volume, palette, guidance strings, technician PIN.

Thresholds decide who is stopped at a door, so only a technician may change them: the settings are
behind a PIN, stored as a salted scrypt hash (never the PIN itself), so a copied config file does not
give the PIN away and two stations with the same PIN do not share a hash. The file is TOML, written
atomically with mode 0600. Pure Python, in the engine's package: the headless station screens with the
same thresholds as the window.

Every value is checked when the file is read and before it is written (the window's settings dialog
saves through :func:`save_config` too), and a bad one is refused in one line naming the file, the key,
the value and what is allowed. Thresholds are bounded to what a fever screen can mean
(:func:`station.screen.alarm.check_thresholds`: elevated 37.0-38.5 °C, fever 37.5-39.0 °C and above it, the
relative margin 0.5-2.0 °C above the baseline), retention to what :class:`~station.log.retention.RetentionPolicy`
accepts: a file that would alarm on everybody, or purge an alarm before anyone saw it, never runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from station.atomic import atomic_write
from station.errors import StationError
from station.fleet.protocol import BrokerUrl, check_id
from station.log.retention import RetentionPolicy
from station.paths import default_config_path  # noqa: F401  (its old home: still importable)
from station.screen.alarm import AlarmPolicy, AlarmSettings, check_thresholds
from station.screen.guidance import DEFAULT_GUIDANCE

PALETTES = ("iron", "grey", "rainbow")  # drawn by ui/palette.py; named here so the engine can check a config

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MB and ~50 ms per check: slow to brute-force, quick to use


@dataclass
class FleetConfig:
    """The ``[fleet]`` section: where this station publishes its log (see :mod:`station.fleet`).

    ``credentials`` is the path of a file (mode 0600) holding ``password = "..."``, read when the station
    starts (:func:`station.fleet.credentials.read_credentials`), so the settings file itself holds no secret.
    """

    broker: str  # mqtt://host[:port] or mqtts://host[:port], optionally user@
    site: str
    station_id: str
    credentials: str
    #: Alarm images stay at the station unless this is true (rows are de-identified already).
    share_alarm_images: bool = False
    #: The CA that signed the broker's certificate (mqtts:// only; default: the system's CAs).
    ca_file: str | None = None

    def check(self, where: str = "settings") -> None:
        try:
            BrokerUrl.parse(self.broker)
            check_id(self.site, "site")
            check_id(self.station_id, "station id")
        except StationError as exc:
            raise StationError(f"{where}: [fleet] {exc}") from None
        if not self.credentials:
            raise StationError(f"{where}: [fleet] credentials: expected the path of a credentials file")

    @property
    def broker_url(self) -> BrokerUrl:
        return BrokerUrl.parse(self.broker)


_FLEET_TYPES: dict[str, tuple[type, ...]] = {"broker": (str,), "site": (str,), "station_id": (str,),
                                              "credentials": (str,), "share_alarm_images": (bool,),
                                              "ca_file": (str,)}


def fleet_config_from(raw: Any, where: str) -> FleetConfig:
    """The ``[fleet]`` table of a settings file, checked; one line naming the key otherwise."""
    if not isinstance(raw, dict):
        raise StationError(f"{where}: fleet: expected a [fleet] table, got {raw!r}")
    for key, value in raw.items():
        if key not in _FLEET_TYPES:
            raise StationError(f"{where}: [fleet] unknown key {key!r}")
        if not isinstance(value, _FLEET_TYPES[key]):
            raise StationError(f"{where}: [fleet] {key}: expected {_FLEET_TYPES[key][0].__name__}, got {value!r}")
    missing = [k for k in ("broker", "site", "station_id", "credentials") if k not in raw]
    if missing:
        raise StationError(f"{where}: [fleet] {missing[0]}: missing (broker, site, station_id and credentials "
                           "are needed)")
    fleet = FleetConfig(**raw)
    fleet.check(where)
    return fleet


@dataclass
class StationConfig:
    elevated_c: float = 37.3
    fever_c: float = 38.0
    skin_to_body_offset_c: float = 1.24
    mode: str = "absolute"
    relative_margin_c: float = 1.0
    volume: float = 0.8
    palette: str = "iron"
    guidance: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_GUIDANCE))
    pin_hash: str | None = None
    #: The auditors' PIN (exports with images), separate from the technicians' ``pin_hash``.
    auditor_pin_hash: str | None = None
    #: Skin -> body temperature: "default" (the shipped model fitted to the FDA data, models/body-model.json),
    #: "offset" (canthus + skin_to_body_offset_c), or the path of another fitted model.
    body_model: str = "default"
    #: For spectacle wearers (glasses hide the canthi): "default" (models/body-model-glasses.json, the
    #: forehead and mouth regions, fitted to the same FDA data), "none" (ask them to remove their glasses),
    #: or the path of another fitted forehead_mouth model.
    glasses_model: str = "default"
    #: Retention (see :mod:`station.log.retention`): alarm images go after this many days...
    retention_images_days: float = 7.0
    #: ...and screenings, acknowledgements and system events after this many (exports are kept).
    retention_records_days: float = 365.0
    #: The fleet this station publishes to (``[fleet]``); None: a station on its own, which connects nowhere.
    fleet: FleetConfig | None = None

    def to_alarm_settings(self) -> AlarmSettings:
        return AlarmSettings(mode=self.mode, skin_to_body_offset_c=self.skin_to_body_offset_c,  # type: ignore[arg-type]
                             elevated_c=self.elevated_c, fever_c=self.fever_c,
                             relative_margin_c=self.relative_margin_c)

    def alarm_policy(self) -> AlarmPolicy:
        """The alarm policy these settings describe, with the skin-to-body model they name."""
        from station.screen.body_model import load_glasses_model, load_model

        model = None if self.body_model == "offset" else load_model(
            None if self.body_model == "default" else self.body_model)
        glasses = None if self.glasses_model == "none" else load_glasses_model(
            None if self.glasses_model == "default" else self.glasses_model)
        return AlarmPolicy(self.to_alarm_settings(), model, glasses)

    def retention_policy(self, where: str = "settings") -> RetentionPolicy:
        """How long this station keeps images and records.

        Whatever :class:`RetentionPolicy` refuses (a ValueError, or a StationError for retention under
        its minimum) becomes the same one-line error as any other bad key, named as the settings file
        names it (``retention_images_days``), so an operator knows which line to fix.
        """
        try:
            return RetentionPolicy(self.retention_images_days, self.retention_records_days)
        except (ValueError, StationError) as exc:
            raise StationError(f"{where}: {_retention_keys(str(exc))}") from None

    def check(self, where: str = "settings") -> None:
        """Raise StationError naming the first bad key, its value and what is allowed."""
        if self.palette not in PALETTES:
            raise StationError(f"{where}: palette: expected one of {', '.join(PALETTES)}, got {self.palette!r}")
        if not 0.0 <= self.volume <= 1.0:
            raise StationError(f"{where}: volume: expected 0 to 1, got {self.volume}")
        unknown = set(self.guidance) - set(DEFAULT_GUIDANCE)
        if unknown:
            raise StationError(f"{where}: guidance: unknown flag {sorted(unknown)[0]!r}")
        if self.fleet is not None:
            self.fleet.check(where)
        try:
            # The thresholds first, with the keys as the file spells them; then the rest of the alarm settings.
            check_thresholds(self.elevated_c, self.fever_c, self.relative_margin_c)
            self.to_alarm_settings()
        except ValueError as exc:
            raise StationError(f"{where}: {exc}") from None
        self.retention_policy(where)


def _retention_keys(message: str) -> str:
    """A retention error in the settings file's words: ``images_days`` -> ``retention_images_days``."""
    message = re.sub(r"^RetentionPolicy[.:]\s*", "", message.strip())
    message = re.sub(r"(?<![\w.])(images_days|records_days)\b", r"retention_\1", message)
    return " ".join(message.split())


def load_config(path: Path) -> StationConfig:
    """The settings in ``path``; defaults when it does not exist yet."""
    if not path.exists():
        return StationConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise StationError(f"{path}: cannot read the settings ({exc})") from None
    known = {f.name: f for f in fields(StationConfig)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise StationError(f"{path}: unknown key {key!r}")
        if key == "fleet":
            values[key] = fleet_config_from(value, str(path))
            continue
        expected = StationConfig.__dataclass_fields__[key].type
        if "float" in str(expected) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        ok = {"float": isinstance(value, float), "str": isinstance(value, str),
              "dict[str, str]": isinstance(value, dict) and all(isinstance(v, str) for v in value.values()),
              "str | None": isinstance(value, str)}.get(str(expected), True)
        if not ok:
            raise StationError(f"{path}: {key}: expected {expected}, got {value!r}")
        values[key] = value
    if "guidance" in values:
        values["guidance"] = {**DEFAULT_GUIDANCE, **values["guidance"]}
    config = StationConfig(**values)
    config.check(str(path))
    return config


def save_config(config: StationConfig, path: Path) -> None:
    """Write atomically (a temporary file renamed over the old one), readable by the owner only."""
    config.check(str(path))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {k: v for k, v in asdict(config).items() if v is not None}
    if "fleet" in data:
        data["fleet"] = {k: v for k, v in data["fleet"].items() if v is not None}
    atomic_write(path, tomli_w.dumps(data), mode=0o600)


def check_pin_format(pin: str) -> None:
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise StationError("PIN: expected 4 to 12 digits")


def hash_pin(pin: str) -> str:
    """A self-describing salted scrypt hash: ``scrypt$n=..,r=..,p=..$salt$hash`` (base64)."""
    check_pin_format(pin)
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt$n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_pin(pin: str, pin_hash: str | None) -> bool:
    """Whether ``pin`` matches; constant-time, and False for a missing or malformed hash."""
    if not pin_hash:
        return False
    try:
        scheme, params, salt, digest = pin_hash.split("$")
        cost = dict(item.split("=") for item in params.split(","))
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(pin.encode(), salt=base64.b64decode(salt), n=int(cost["n"]), r=int(cost["r"]),
                             p=int(cost["p"]), dklen=32)
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))
