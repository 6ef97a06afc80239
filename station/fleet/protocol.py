"""What stations, the ingester and the desk say to each other over MQTT: topics, payloads, the rules.

Every participant speaks MQTT v5 to one Mosquitto broker (v5 so a refused publish comes back with a
reason code instead of a silent drop). Topics are per station, so the broker's ACL can let each station
write only its own (``pattern`` lines with ``%u``: a station's MQTT user name is its station id)::

    fleet/<site>/<station>/row/<table>    station -> ingester   QoS 1   one chained log row (RowMessage)
    fleet/<site>/<station>/snapshot/<screening_id>/<kind>
                                          station -> ingester   QoS 1   an alarm image: the PNG bytes as stored
    fleet/<site>/<station>/heartbeat      station -> desk       QoS 0   every HEARTBEAT_S (Heartbeat)
    fleet/<site>/<station>/status         station -> desk       QoS 1   retained; the last will says offline
    fleet/<site>/<station>/anchor/<table> station -> ingester   QoS 1   retained chain anchor (Anchor)
    fleet/<site>/<station>/hwm/<table>    ingester -> station   QoS 1   retained high-water mark (Hwm)
    fleet/<site>/<station>/desk/ack       desk -> station       QoS 1   an acknowledgement made at the desk

Delivery. A PUBACK only says the broker has the message in memory: Mosquitto writes its persistence
file at shutdown and every ``autosave_interval``, so a broker killed after a PUBACK loses it. A row
therefore counts as delivered only when the ingester, *after its PostgreSQL commit*, publishes a
retained high-water mark for that station and table: the highest ``row_id`` up to which it holds every
row (contiguous, so a gap holds the mark back). A station keeps each row in its outbox (written in the
same SQLite transaction as the row) until a mark covers it, and after every (re)connect re-sends
everything above the mark it reads back. The ingester inserts with ``ON CONFLICT DO NOTHING``, so a row
sent twice is stored once.

Anchors. Retention deletes a station's oldest rows and records the table's anchor: the last deleted row's
id and ``row_hash``. A station that purged rows 1..k *before* it joined the fleet can never deliver them
(the outbox only holds rows that still exist), so counted from row 1 its mark would never leave 0. So a
station publishes, per table, its anchor (when it has one) on every connect and whenever it changes,
retained. The ingester keeps every anchor (append-only) and counts the mark from the station's *lowest*
anchor for that table (the one it had when it joined; a later purge does not matter, the fleet keeps every
row), but only when the row after it chains to it: its ``prev_hash`` must equal the anchor's ``row_hash``,
which is what the station's own chain requires, so the fleet still verifies the chain from there. An anchor
the next row does not follow is not trusted: the mark stays below it, and ``station fleet verify`` reports it.

Alarm images. They stay at the station unless it shares them (``[fleet] share_alarm_images = true``).
A station that shares publishes a screening's snapshots (the PNG files its ``snapshots`` table names)
before every (re)send of that screening's row, and says so in the row message: ``images`` lists the kinds
it published (a kind the row's ``snapshot_sha256`` records but ``images`` omits is one the station lost:
its file is gone or altered, and it said so). The ingester stores a snapshot only when its bytes' sha256
is the one the row records, and counts the row as held (stores it, so the mark may cover it) only once
every listed kind is stored with that sha256; otherwise it drops the row, the mark stays below it, and the
station sends snapshots and row again: the one delivery rule covers the images too. A station that does
not share publishes no image and sends no ``images`` key, and the ingester holds its rows without images.
(A flag in the row rather than "require images once a station has sent one": the ingester can then never
wait for an image that will not come, nor hold a row whose image was lost on the way.)

Rows travel with their ``prev_hash`` and ``row_hash``: the fleet log verifies every station's chains
with the very function the station's own audit uses (:func:`station.log.chain.verify_chain`).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Any

from station.errors import StationError

#: The log tables a station publishes (its chained tables; retention_log stays local: it records what the
#: station deleted from its own disk, which the fleet log never deletes).
PUBLISHED_TABLES: tuple[str, ...] = ("screenings", "acknowledgements", "system_events", "exports")
#: Seconds between heartbeats, and the MQTT keepalive: the broker publishes a station's last will after
#: 1.5 keepalives of silence, so the desk shows it offline within two.
HEARTBEAT_S = 5.0
KEEPALIVE_S = 10
PROTOCOL_VERSION = 1
ROOT = "fleet"
#: Site and station ids become topic levels and MQTT user names: no wildcards, separators or spaces.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_id(value: str, what: str) -> str:
    """``value`` if it can be a topic level and a user name; a one-line error naming ``what`` otherwise."""
    if not isinstance(value, str) or not _ID.match(value):
        raise StationError(f"{what}: expected letters, digits, '.', '_' or '-' (up to 64), got {value!r}")
    return value


def station_topic(site: str, station: str, *parts: str) -> str:
    return "/".join((ROOT, check_id(site, "site"), check_id(station, "station id"), *parts))


def row_topic(site: str, station: str, table: str) -> str:
    return station_topic(site, station, "row", table)


def hwm_topic(site: str, station: str, table: str) -> str:
    return station_topic(site, station, "hwm", table)


def anchor_topic(site: str, station: str, table: str) -> str:
    return station_topic(site, station, "anchor", table)


def snapshot_topic(site: str, station: str, screening_id: int, kind: str) -> str:
    return station_topic(site, station, "snapshot", str(int(screening_id)), check_id(kind, "snapshot kind"))


def parse_topic(topic: str) -> tuple[str, str, tuple[str, ...]] | None:
    """``(site, station, rest)`` of a fleet topic, or None for anything else."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != ROOT or not _ID.match(parts[1]) or not _ID.match(parts[2]):
        return None
    return parts[1], parts[2], tuple(parts[3:])


def _dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _loads(payload: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StationError(f"{what}: not JSON ({exc})") from exc
    if not isinstance(value, dict) or value.get("v") != PROTOCOL_VERSION:
        raise StationError(f"{what}: expected a version {PROTOCOL_VERSION} object")
    return value


@dataclass(frozen=True)
class RowMessage:
    """One chained row of a station's log, every column as the station stored it (ids and hashes too).

    ``images``: None from a station that does not share alarm images; otherwise the snapshot kinds it
    published before this row (the ingester holds the row only once each is stored, see above).
    """

    table: str
    row: dict[str, Any]
    images: tuple[str, ...] | None = None

    def encode(self) -> bytes:
        value: dict[str, Any] = {"v": PROTOCOL_VERSION, "table": self.table, "row": self.row}
        if self.images is not None:
            value["images"] = sorted(self.images)
        return _dumps(value)

    @classmethod
    def decode(cls, payload: bytes) -> RowMessage:
        value = _loads(payload, "row message")
        table, row = value.get("table"), value.get("row")
        if table not in PUBLISHED_TABLES or not isinstance(row, dict):
            raise StationError(f"row message: unknown table {table!r} or no row")
        for key, kind in (("id", int), ("prev_hash", str), ("row_hash", str), ("wall_time", str)):
            if not isinstance(row.get(key), kind) or isinstance(row.get(key), bool):
                raise StationError(f"row message: {table} row without a valid {key!r}")
        images = value.get("images")
        if images is not None and (not isinstance(images, list) or not all(isinstance(k, str) for k in images)):
            raise StationError("row message: images: expected a list of snapshot kinds")
        return cls(table, row, None if images is None else tuple(images))


@dataclass(frozen=True)
class Hwm:
    """The ingester's word that it holds every row of one station's table up to ``row_id``, committed."""

    row_id: int
    row_hash: str

    def encode(self) -> bytes:
        return _dumps({"v": PROTOCOL_VERSION, "row_id": self.row_id, "row_hash": self.row_hash})

    @classmethod
    def decode(cls, payload: bytes) -> Hwm:
        value = _loads(payload, "high-water mark")
        if not isinstance(value.get("row_id"), int) or not isinstance(value.get("row_hash"), str):
            raise StationError("high-water mark: expected row_id and row_hash")
        return cls(int(value["row_id"]), str(value["row_hash"]))


@dataclass(frozen=True)
class Anchor:
    """A station's chain anchor for one table: retention deleted every row up to ``row_id``, and
    ``row_hash`` is that row's hash (the next row's ``prev_hash``)."""

    row_id: int
    row_hash: str

    def encode(self) -> bytes:
        return _dumps({"v": PROTOCOL_VERSION, "row_id": self.row_id, "row_hash": self.row_hash})

    @classmethod
    def decode(cls, payload: bytes) -> Anchor:
        value = _loads(payload, "anchor")
        row_id, digest = value.get("row_id"), value.get("row_hash")
        if not isinstance(row_id, int) or isinstance(row_id, bool) or row_id < 1 or not isinstance(digest, str):
            raise StationError("anchor: expected a positive row_id and a row_hash")
        return cls(int(row_id), str(digest))


@dataclass(frozen=True)
class Heartbeat:
    """What the desk's tile for a station shows, refreshed every :data:`HEARTBEAT_S`."""

    wall_time: str
    visible_fps: float | None
    thermal_fps: float | None
    blackbody_error_c: float | None
    calibration_age_days: float | None
    storage_fault: str | None
    outbox_rows: int
    version: str

    def encode(self) -> bytes:
        return _dumps({"v": PROTOCOL_VERSION, **asdict(self)})

    @classmethod
    def decode(cls, payload: bytes) -> Heartbeat:
        value = _loads(payload, "heartbeat")
        try:
            return cls(**{k: value[k] for k in cls.__dataclass_fields__})
        except KeyError as exc:
            raise StationError(f"heartbeat: missing {exc}") from exc


def status_payload(state: str, wall_time: str) -> bytes:
    """The retained ``status`` message: ``online`` on connect, ``offline`` as the last will and on a clean stop."""
    if state not in ("online", "offline"):
        raise ValueError(f"state: expected online or offline, got {state!r}")
    return _dumps({"v": PROTOCOL_VERSION, "state": state, "wall_time": wall_time})


@dataclass(frozen=True)
class DeskAck:
    """An acknowledgement made at the desk, sent to the station that raised the alarm, which logs it as
    its own acknowledgement row (operator ``desk:<operator>``) and shows "acknowledged at the desk"."""

    screening_id: int
    action: str
    operator: str
    note: str = ""
    thermometer_c: float | None = None

    def encode(self) -> bytes:
        return _dumps({"v": PROTOCOL_VERSION, **asdict(self)})

    @classmethod
    def decode(cls, payload: bytes) -> DeskAck:
        value = _loads(payload, "desk acknowledgement")
        try:
            return cls(**{k: value[k] for k in cls.__dataclass_fields__ if k in value})
        except TypeError as exc:
            raise StationError(f"desk acknowledgement: {exc}") from exc


@dataclass(frozen=True)
class BrokerUrl:
    """``mqtt://host:port`` or ``mqtts://host:port`` (TLS), optionally with ``user@``; the password comes
    from a credentials file, never the command line (it would show in ``ps``)."""

    host: str
    port: int
    tls: bool
    username: str | None

    @classmethod
    def parse(cls, text: str) -> BrokerUrl:
        parts = urllib.parse.urlsplit(text)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise StationError(f"broker URL: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got {text!r}")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError as exc:
            raise StationError(f"broker URL {text!r}: {exc}") from exc
        if parts.password:
            raise StationError(f"broker URL {text!r}: put the password in the credentials file, not the URL")
        return cls(parts.hostname, port, parts.scheme == "mqtts", parts.username)
