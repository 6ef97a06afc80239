"""The security desk's side of the fleet: what every station is doing, and every alarm no guard has answered.

The desk is where one guard watches many entrances, so it must never show a station as fine when it is
not, and never let an alarm slip by. Two sources feed it (see :mod:`station.fleet.protocol`):

* **Live, from MQTT** (user ``desk``, which may read ``fleet/#`` and write only ``fleet/+/+/desk/#``): each
  station's retained ``status``, its ``heartbeat`` and its log rows (``row/<table>``). A fever reaches
  the desk the moment the station publishes its screening row, without waiting for PostgreSQL.
* **The backlog, from PostgreSQL** (a role in ``fleet_desk``), read once at start: the stations the fleet
  log knows, today's counters, each station's recent screenings, and the recent alarms nobody has
  acknowledged, so a desk (re)started mid-shift shows what is still open.

Everything the window shows lives in one :class:`DeskState`, which is pure logic (no network, no Qt,
its clock injected), so every rule below is unit-tested without servers:

* A station is **offline** when its retained status says so (its last will, which the broker publishes
  after 1.5 keepalives of silence, or a clean stop) **or** when nothing was heard from it for
  ``2 x keepalive``. The desk must not rely on the will alone: a broker restarted from a persistence file
  keeps an ``online`` status whose station died meanwhile, and a station whose network half-died may
  keep its TCP session open.
* An **alarm** is a screening row whose level is in :data:`~station.types.ALARM_LEVELS`. It stays latched,
  oldest first, until an acknowledgement for that screening arrives: a row the station logged (its own
  guard's or the desk's, relayed) or one made at this desk. Rows come at least once, not exactly once (a
  station resends everything above the ingester's high-water mark after a reconnect), so every rule is
  idempotent: a screening is counted once, and an acknowledged alarm is never latched again.
* **Today's counters** count each station's screenings whose wall time falls on the desk's local day.

:class:`DeskClient` is the plumbing: paho's network thread only puts what arrives on a thread-safe queue;
the owner's thread (the window's) calls :meth:`DeskClient.poll` to apply it to the state, so the state
needs no lock. :meth:`DeskClient.acknowledge` sends a :class:`~station.fleet.protocol.DeskAck` to the
station (QoS 1; the station logs it as its own acknowledgement, operator ``desk:NAME``) and records it
centrally in ``fleet_desk_acks``.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from station.errors import StationError
from station.fleet import protocol
from station.fleet.protocol import KEEPALIVE_S, ROOT, BrokerUrl, DeskAck, Heartbeat, RowMessage, check_id
from station.types import ALARM_LEVELS, LEVELS, check_action

log = logging.getLogger("station.fleet.desk")

#: A station silent for this many keepalives is offline, whatever its retained status says (the broker's
#: last will comes after 1.5; the heartbeat every HEARTBEAT_S = keepalive / 2).
OFFLINE_AFTER_KEEPALIVES = 2.0
#: How far back the backlog looks for alarms nobody acknowledged (older ones are the station's own business:
#: its window keeps them latched and its log keeps them for the auditor).
BACKLOG_HOURS = 24.0
#: Screenings kept per station for its history table.
HISTORY_ROWS = 50
#: The topics the desk reads (the broker's ACL lets user ``desk`` read ``fleet/#``).
SUBSCRIPTIONS: tuple[tuple[str, int], ...] = (
    (f"{ROOT}/+/+/status", 1),
    (f"{ROOT}/+/+/heartbeat", 0),
    (f"{ROOT}/+/+/row/#", 1),
)
DESK_USER = "desk"


def _local_day(wall_time: str) -> date | None:
    """The desk's local calendar day of a station's ``wall_time`` (ISO 8601 UTC); None if unreadable."""
    try:
        moment = datetime.fromisoformat(wall_time)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().date()


def _today() -> date:
    return datetime.now().astimezone().date()


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------- what the state holds
@dataclass(frozen=True)
class Screening:
    """One screening as the desk shows it: a history row, and an alarm when its level is one.

    ``received_at`` is the desk's monotonic clock when the row arrived (the alarm-to-desk latency starts
    there or earlier); None for a row from the backlog.
    """

    site: str
    station: str
    screening_id: int
    wall_time: str
    level: str
    body_c: float | None = None
    u95_c: float | None = None
    skin_c: float | None = None
    skin_site: str | None = None
    quality: tuple[str, ...] = ()
    alarm_id: int | None = None
    received_at: float | None = None

    @property
    def key(self) -> tuple[str, int]:
        """``(station, screening_id)``: unique across the fleet (a station id is unique: it is its MQTT user)."""
        return self.station, self.screening_id

    @property
    def is_alarm(self) -> bool:
        return self.level in ALARM_LEVELS

    @property
    def uncertain(self) -> bool:
        """The interval reaches the fever threshold: the station asks to re-measure before deciding."""
        return "uncertain" in self.quality

    def order(self) -> tuple[str, str, int]:
        """Oldest first across stations: by the station's wall time (ISO UTC, so text order is time order)."""
        return self.wall_time, self.station, self.screening_id

    @classmethod
    def from_row(cls, site: str, station: str, row: Mapping[str, Any], received_at: float | None = None,
                 ) -> Screening:
        """From a station's ``screenings`` row (as published, or as the fleet log keeps it)."""
        quality = row.get("quality") or ()
        if isinstance(quality, str):  # the store keeps it as a JSON list
            import json

            try:
                quality = json.loads(quality)
            except ValueError:
                quality = ()
        alarm_id = row.get("alarm_id")
        return cls(site=site, station=station, screening_id=int(row["id"]), wall_time=str(row.get("wall_time") or ""),
                   level=str(row.get("level") or ""), body_c=_float(row.get("body_c")), u95_c=_float(row.get("u95_c")),
                   skin_c=_float(row.get("skin_c")), skin_site=row.get("site"),
                   quality=tuple(str(q) for q in quality) if isinstance(quality, list | tuple) else (),
                   alarm_id=int(alarm_id) if isinstance(alarm_id, int) and not isinstance(alarm_id, bool) else None,
                   received_at=received_at)


@dataclass
class StationTile:
    """One station as its tile shows it. ``last_heard`` is the desk's monotonic clock (never the station's,
    which may be wrong) when a heartbeat or an ``online`` status last arrived."""

    station: str
    site: str
    status: str | None = None  # the retained status: "online", "offline", or None (never said)
    status_wall_time: str | None = None
    heartbeat: Heartbeat | None = None
    last_heard: float | None = None
    online: bool = False
    offline_reason: str = "not heard from yet"
    day: date | None = None
    today: Counter = field(default_factory=Counter)  # "screened" and one key per level
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY_ROWS))  # Screening, oldest first
    _today_ids: set[int] = field(default_factory=set)
    _history_ids: set[int] = field(default_factory=set)

    def silent_s(self, now: float) -> float | None:
        """Seconds since the station was last heard (None: never)."""
        return None if self.last_heard is None else max(0.0, now - self.last_heard)


@dataclass(frozen=True)
class Backlog:
    """What PostgreSQL says at start: see :func:`read_backlog`."""

    stations: tuple[tuple[str, str], ...] = ()  # (site, station)
    today_rows: tuple[tuple[str, str, int, str, str], ...] = ()  # (site, station, id, wall_time, level)
    recent: tuple[Screening, ...] = ()  # each station's latest screenings, oldest first
    open_alarms: tuple[Screening, ...] = ()  # oldest first
    acknowledged: tuple[tuple[str, int], ...] = ()  # (station, screening id) acknowledged recently


class DeskState:
    """Every station's tile, today's counters and the live alarm list, fed by decoded messages.

    Pure logic: no network, no Qt, no threads (the owner calls it from one thread). Each method that
    takes ``now`` reads the injected monotonic ``clock`` when it is None.

    Parameters
    ----------
    keepalive_s
        The stations' MQTT keepalive: silent for ``OFFLINE_AFTER_KEEPALIVES`` of these, a station is
        offline. The protocol's value by default; tests pass a short one.
    clock
        Monotonic seconds (``time.monotonic``); tests drive it by hand.
    today
        The desk's local day (for today's counters); tests pin it.
    history_rows
        Screenings kept per station for its history table.
    """

    def __init__(self, *, keepalive_s: float = KEEPALIVE_S, clock: Callable[[], float] = time.monotonic,
                 today: Callable[[], date] = _today, history_rows: int = HISTORY_ROWS) -> None:
        if not keepalive_s > 0:
            raise ValueError(f"keepalive_s: expected > 0 seconds, got {keepalive_s!r}")
        self.keepalive_s = float(keepalive_s)
        self.clock = clock
        self.today = today
        self.history_rows = int(history_rows)
        self.tiles: dict[str, StationTile] = {}
        self._alarms: dict[tuple[str, int], Screening] = {}
        #: (station, screening id) of every acknowledgement seen: a screening delivered again stays cleared.
        self._acknowledged: set[tuple[str, int]] = set()
        #: Bumped on every change the window would draw differently; it redraws when this moved.
        self.revision = 0
        self.rejected = 0  # messages that could not be read (logged, dropped)
        self.last_rejection: str | None = None

    # ------------------------------------------------------------------ reading
    @property
    def offline_after_s(self) -> float:
        return OFFLINE_AFTER_KEEPALIVES * self.keepalive_s

    def alarms(self) -> list[Screening]:
        """The latched alarms across stations, oldest first."""
        return sorted(self._alarms.values(), key=Screening.order)

    def stations(self) -> list[StationTile]:
        """Every tile, by station id."""
        return [self.tiles[k] for k in sorted(self.tiles)]

    def is_acknowledged(self, station: str, screening_id: int) -> bool:
        return (station, int(screening_id)) in self._acknowledged

    def counts_today(self) -> Counter:
        """Today's counters over the whole fleet."""
        total: Counter = Counter()
        day = self.today()
        for tile in self.tiles.values():
            if tile.day == day:
                total.update(tile.today)
        return total

    def open_alarms(self, station: str) -> int:
        return sum(1 for a in self._alarms.values() if a.station == station)

    # ------------------------------------------------------------------ feeding
    def handle(self, topic: str, payload: bytes, *, now: float | None = None) -> bool:
        """Decode and apply one MQTT message; False (counted in :attr:`rejected`) when it cannot be read.

        A topic the desk does not use (a desk acknowledgement going to a station, a mark) is ignored (True).
        """
        parsed = protocol.parse_topic(topic)
        if parsed is None:
            return True
        site, station, rest = parsed
        try:
            if rest == ("status",):
                if not payload:  # a retained status cleared: the station was removed from the fleet
                    self.forget(station)
                    return True
                self.apply_status(site, station, *_decode_status(payload), now=now)
            elif rest == ("heartbeat",):
                self.apply_heartbeat(site, station, Heartbeat.decode(payload), now=now)
            elif len(rest) == 2 and rest[0] == "row":
                message = RowMessage.decode(payload)
                if message.table != rest[1]:
                    raise StationError(f"a {message.table} row on the {rest[1]} topic")
                self.apply_row(site, station, message.table, message.row, now=now)
        except (StationError, TypeError, ValueError, KeyError) as exc:
            self.rejected += 1
            self.last_rejection = f"{topic}: {exc}"
            log.warning("desk: ignored a message on %s: %s", topic, exc)
            return False
        return True

    def tile(self, site: str, station: str) -> StationTile:
        """The station's tile, made (offline until heard from) when it is new."""
        tile = self.tiles.get(station)
        if tile is None:
            tile = self.tiles[station] = StationTile(station, site, history=deque(maxlen=self.history_rows))
            self.revision += 1
        elif tile.site != site:  # a station moved to another site: its acks must go to the new topic
            tile.site = site
            self.revision += 1
        return tile

    def forget(self, station: str) -> None:
        if self.tiles.pop(station, None) is not None:
            self.revision += 1

    def apply_status(self, site: str, station: str, state: str, wall_time: str | None = None, *,
                     now: float | None = None) -> None:
        """The station's retained status: ``online`` (it connected) or ``offline`` (its will, or a clean stop)."""
        if state not in ("online", "offline"):
            raise StationError(f"status: expected online or offline, got {state!r}")
        now = self.clock() if now is None else now
        tile = self.tile(site, station)
        tile.status, tile.status_wall_time = state, wall_time
        if state == "online":
            tile.last_heard = now  # a station that says online and then nothing is offline 2 keepalives on
        self._update_online(tile, now)
        self.revision += 1

    def apply_heartbeat(self, site: str, station: str, beat: Heartbeat, *, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        tile = self.tile(site, station)
        tile.heartbeat, tile.last_heard = beat, now
        self._update_online(tile, now)
        self.revision += 1

    def apply_row(self, site: str, station: str, table: str, row: Mapping[str, Any], *,
                  now: float | None = None) -> None:
        """One of the station's log rows: a screening (counters, history, maybe an alarm) or an
        acknowledgement (clears its alarm); the other tables only make the station known."""
        now = self.clock() if now is None else now
        tile = self.tile(site, station)
        if table == "screenings":
            self._add_screening(tile, Screening.from_row(site, station, row, received_at=now))
        elif table == "acknowledgements":
            screening_id = row.get("screening_id")
            if not isinstance(screening_id, int) or isinstance(screening_id, bool):
                raise StationError("acknowledgement row without a screening_id")
            self.acknowledged(station, screening_id)

    def acknowledged(self, station: str, screening_id: int) -> bool:
        """An acknowledgement of ``station``'s screening (its own row, or made at this desk): the alarm is
        released, and stays released however often its screening arrives again. True if one was latched."""
        key = (station, int(screening_id))
        self._acknowledged.add(key)
        found = self._alarms.pop(key, None) is not None
        if found:
            self.revision += 1
        return found

    def apply_backlog(self, backlog: Backlog) -> None:
        """What PostgreSQL said at start (rows arriving live afterwards are counted once all the same)."""
        for station, screening_id in backlog.acknowledged:
            self._acknowledged.add((station, int(screening_id)))
        for site, station in backlog.stations:
            self.tile(site, station)
        for site, station, screening_id, wall_time, level in backlog.today_rows:
            self._count(self.tile(site, station), screening_id, wall_time, level)
        for screening in itertools.chain(backlog.recent, backlog.open_alarms):
            self._add_screening(self.tile(screening.site, screening.station), screening)
        self.revision += 1

    # ------------------------------------------------------------------ time passing
    def refresh(self, now: float | None = None) -> list[str]:
        """Re-judge every station's online state (silence turns it offline) and roll today's counters over
        at midnight; the stations whose state changed."""
        now = self.clock() if now is None else now
        changed = [tile.station for tile in self.tiles.values() if self._update_online(tile, now)]
        day = self.today()
        for tile in self.tiles.values():
            if tile.day is not None and tile.day != day:
                tile.day, tile.today, tile._today_ids = day, Counter(), set()
                changed.append(tile.station)
        if changed:
            self.revision += 1
        return changed

    def _update_online(self, tile: StationTile, now: float) -> bool:
        """Judge ``tile`` now; True when its online state changed."""
        silent = tile.silent_s(now)
        if tile.status == "offline":
            online, reason = False, "stopped, or lost (its last will)"
        elif silent is None:
            online, reason = False, "not heard from yet"
        elif silent > self.offline_after_s:
            online, reason = False, f"no heartbeat for {silent:.0f} s"
        else:
            online, reason = True, ""
        was = tile.online
        tile.online, tile.offline_reason = online, reason
        return was != online

    # ------------------------------------------------------------------ screenings
    def _add_screening(self, tile: StationTile, screening: Screening) -> None:
        self._count(tile, screening.screening_id, screening.wall_time, screening.level)
        if screening.screening_id not in tile._history_ids:
            if len(tile.history) == tile.history.maxlen:
                tile._history_ids.discard(tile.history[0].screening_id)
            tile.history.append(screening)
            tile._history_ids.add(screening.screening_id)
            if len(tile.history) > 1 and tile.history[-2].screening_id > screening.screening_id:
                ordered = sorted(tile.history, key=lambda s: s.screening_id)  # a late row: keep id order
                tile.history.clear()
                tile.history.extend(ordered)
        if screening.is_alarm and screening.key not in self._acknowledged and screening.key not in self._alarms:
            self._alarms[screening.key] = screening
        self.revision += 1

    def _count(self, tile: StationTile, screening_id: int, wall_time: str, level: str) -> None:
        """Count a screening in today's counters once (rows may arrive twice; the backlog and the live feed
        overlap)."""
        day = self.today()
        if tile.day != day:
            tile.day, tile.today, tile._today_ids = day, Counter(), set()
        if _local_day(wall_time) != day or screening_id in tile._today_ids:
            return
        tile._today_ids.add(screening_id)
        tile.today["screened"] += 1
        if level in LEVELS:
            tile.today[level] += 1


def _decode_status(payload: bytes) -> tuple[str, str | None]:
    value = protocol._loads(payload, "status")
    state = value.get("state")
    if state not in ("online", "offline"):
        raise StationError(f"status: expected online or offline, got {state!r}")
    wall = value.get("wall_time")
    return state, wall if isinstance(wall, str) else None


# ---------------------------------------------------------------------- PostgreSQL
def day_start_utc(day: date) -> str:
    """The desk's local midnight starting ``day``, as the stations' wall times are written (ISO UTC, fixed
    width), so a text comparison in SQL selects "today"."""
    local = datetime(day.year, day.month, day.day).astimezone()
    return local.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read_backlog(conn: Any, *, day: date | None = None, backlog_hours: float = BACKLOG_HOURS,
                 history_rows: int = HISTORY_ROWS) -> Backlog:
    """What the fleet log says when the desk starts.

    Parameters
    ----------
    conn
        A psycopg connection as a role in ``fleet_desk`` (SELECT on the views).
    day
        The desk's local day for today's counters (default: today).
    backlog_hours
        How far back to look for alarms nobody acknowledged, at the station or at a desk.
    history_rows
        The latest screenings per station to read for the history tables.
    """
    day = day or _today()
    since_day = day_start_utc(day)
    since_alarms = (datetime.now(UTC) - timedelta(hours=backlog_hours)).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")
    columns = ("site, station_id, screening_id, wall_time, level, body_c, u95_c, skin_c, skin_site, "
               "quality, alarm_id")
    with conn.cursor() as cur:
        cur.execute("SELECT DISTINCT site, station_id FROM fleet_rows ORDER BY station_id")
        stations = tuple((str(a), str(b)) for a, b in cur.fetchall())
        cur.execute("SELECT site, station_id, screening_id, wall_time, level FROM fleet_screenings "
                    "WHERE wall_time >= %s", (since_day,))
        today_rows = tuple((str(a), str(b), int(c), str(d), str(e)) for a, b, c, d, e in cur.fetchall())
        cur.execute(f"SELECT {columns} FROM (SELECT *, row_number() OVER (PARTITION BY station_id "
                    "ORDER BY screening_id DESC) AS newest FROM fleet_screenings) s WHERE newest <= %s "
                    "ORDER BY station_id, screening_id", (int(history_rows),))
        recent = tuple(_screening(r) for r in cur.fetchall())
        # made_at is the server's clock: compared with the server's own now()
        cur.execute("SELECT station_id, screening_id FROM fleet_acknowledgements WHERE wall_time >= %s "
                    "UNION SELECT station_id, screening_id FROM fleet_desk_acks "
                    "WHERE made_at >= now() - make_interval(secs => %s)",
                    (since_alarms, float(backlog_hours) * 3600.0))
        acknowledged = tuple((str(a), int(b)) for a, b in cur.fetchall())
        cur.execute(f"SELECT {columns} FROM fleet_screenings s WHERE level IN ('elevated', 'fever') "
                    "AND wall_time >= %s "
                    "AND NOT EXISTS (SELECT 1 FROM fleet_acknowledgements a "
                    "                WHERE a.station_id = s.station_id AND a.screening_id = s.screening_id) "
                    "AND NOT EXISTS (SELECT 1 FROM fleet_desk_acks d "
                    "                WHERE d.station_id = s.station_id AND d.screening_id = s.screening_id) "
                    "ORDER BY wall_time, station_id, screening_id", (since_alarms,))
        open_alarms = tuple(_screening(r) for r in cur.fetchall())
    conn.commit()
    return Backlog(stations, today_rows, recent, open_alarms, acknowledged)


def _screening(r: tuple) -> Screening:
    site, station, screening_id, wall, level, body_c, u95_c, skin_c, skin_site, quality, alarm_id = r
    return Screening.from_row(str(site), str(station), {
        "id": int(screening_id), "wall_time": wall, "level": level, "body_c": body_c, "u95_c": u95_c,
        "skin_c": skin_c, "site": skin_site, "quality": quality, "alarm_id": alarm_id})


def record_desk_ack(conn: Any, site: str, station: str, ack: DeskAck) -> int:
    """Record an acknowledgement made at the desk in ``fleet_desk_acks``; its id (committed)."""
    with conn.cursor() as cur:
        cur.execute("INSERT INTO fleet_desk_acks (site, station_id, screening_id, action, operator, note, "
                    "thermometer_c) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (site, station, int(ack.screening_id), ack.action, ack.operator, ack.note, ack.thermometer_c))
        found = cur.fetchone()
    conn.commit()
    return int(found[0])


# ---------------------------------------------------------------------- credentials
# ---------------------------------------------------------------------- the client
@dataclass(frozen=True)
class AckOutcome:
    """What became of an acknowledgement made at the desk: ``sent`` (handed to the broker, QoS 1; the
    broker keeps it for a station that is away), ``recorded`` (its ``fleet_desk_acks`` id), and the
    reasons when either failed, in words for the guard."""

    ack: DeskAck
    sent: bool
    recorded: int | None
    problems: tuple[str, ...] = ()


class DeskClient:
    """The desk's connection to the fleet: feeds a :class:`DeskState` and sends acknowledgements.

    Parameters
    ----------
    broker
        ``mqtt://HOST:PORT`` or ``mqtts://...`` (a :class:`~station.fleet.protocol.BrokerUrl` or its text).
    password, username
        The desk's MQTT login (user: the URL's, else ``desk``).
    dsn
        The fleet log (a role in ``fleet_desk``): the backlog at :meth:`start`, and every acknowledgement
        recorded centrally. None: live only, acknowledgements sent but not recorded centrally.
    state
        The state to feed (a new one with ``keepalive_s`` by default).
    keepalive_s
        The stations' keepalive, for a new state (tests pass a short one).
    ca_file
        The CA to trust for ``mqtts://`` (default: the system's).
    operator
        Who acknowledges at this desk, by default (a role or badge label, never a person's name).
    on_message
        Called on paho's network thread after each message is queued (the window wakes its own thread
        with it, e.g. by emitting a Qt signal); it must only signal, never touch the state.

    Threads: paho's thread only queues; :meth:`poll` (the owner's thread) applies. Call :meth:`start`,
    then :meth:`poll` often (the window: at every wake-up and every 200 ms), and :meth:`close`.
    """

    def __init__(self, broker: BrokerUrl | str, *, password: str | None, username: str | None = None,
                 dsn: str | None = None, state: DeskState | None = None, keepalive_s: float = KEEPALIVE_S,
                 ca_file: Path | None = None, operator: str = DESK_USER, client_id: str | None = None,
                 on_message: Callable[[], None] | None = None, backlog_hours: float = BACKLOG_HOURS) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.broker = broker if isinstance(broker, BrokerUrl) else BrokerUrl.parse(broker)
        self.username = username or self.broker.username or DESK_USER
        self.dsn = dsn
        self.state = state or DeskState(keepalive_s=keepalive_s)
        self.operator = operator
        self.backlog_hours = backlog_hours
        self._waker = on_message
        self._waker_lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[str, bytes, float]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._connected = False
        self.subscribed = threading.Event()
        self.problem: str | None = None  # the latest connection problem, in one line; None while connected
        self.refused = False  # the broker refused the login itself (a wrong password stays wrong)
        self._conn: Any = None
        self.received = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"desk-{socket.gethostname()}-{os.getpid()}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(self.username, password)
        if self.broker.tls:
            self.client.tls_set(ca_certs=None if ca_file is None else str(ca_file))
        self.client.reconnect_delay_set(1, 10)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # ------------------------------------------------------------------ life
    def start(self) -> DeskClient:
        """Read the backlog (when a DSN is given: a bad DSN or schema fails here, in one line), then connect
        to the broker in the background (a broker that is down is retried; :attr:`problem` says why)."""
        if self.dsn is not None:
            try:
                self.load_backlog()
            except BaseException:
                self._drop_pg()
                raise
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30, clean_start=True)
        self.client.loop_start()
        return self

    def load_backlog(self) -> Backlog:
        from station.fleet.central import ensure_schema

        conn = self._pg()
        ensure_schema(conn)
        try:
            backlog = read_backlog(conn, day=self.state.today(), backlog_hours=self.backlog_hours,
                                   history_rows=self.state.history_rows)
        except Exception as exc:
            conn.rollback()
            raise StationError(f"fleet log: cannot read the desk's backlog ({_first_line(exc)})") from None
        self.state.apply_backlog(backlog)
        return backlog

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def __enter__(self) -> DeskClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    def wait_subscribed(self, timeout: float) -> bool:
        return self.subscribed.wait(timeout)

    # ------------------------------------------------------------------ paho's thread: queue only
    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            with self._lock:
                self.problem = f"broker {self.broker.host}:{self.broker.port} refused the desk ({reason}, " \
                               f"user {self.username})"
                self.refused = str(reason) in ("Bad user name or password", "Not authorized")
            self._wake()
            return
        client.subscribe(list(SUBSCRIPTIONS))
        with self._lock:
            self._connected, self.problem, self.refused = True, None, False
        self._wake()

    def _on_connect_fail(self, _client: Any, _userdata: Any) -> None:
        with self._lock:
            self.problem = f"cannot reach the broker {self.broker.host}:{self.broker.port}; retrying"
        self._wake()

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        with self._lock:
            self._connected = False
            if self.problem is None:
                self.problem = f"lost the broker {self.broker.host}:{self.broker.port} ({reason}); reconnecting"
        self.subscribed.clear()
        self._wake()

    def _on_subscribe(self, _client: Any, _userdata: Any, _mid: int, reasons: Any, _props: Any) -> None:
        refused = [r for r in reasons if r.is_failure]
        if refused:
            with self._lock:
                self.problem = f"the broker refused the desk's subscriptions ({refused[0]})"
            return
        self.subscribed.set()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        self._queue.put((message.topic, bytes(message.payload), time.monotonic()))
        self._wake()

    def set_waker(self, on_message: Callable[[], None] | None) -> None:
        """Set (or, with None, remove) the wake-up called on paho's thread after each message; once this
        returns, the previous one is never called again (a window being closed can rely on it)."""
        with self._waker_lock:
            self._waker = on_message

    def _wake(self) -> None:
        with self._waker_lock:
            if self._waker is None:
                return
            try:
                self._waker()
            except Exception:  # noqa: BLE001 - a wake-up must never kill paho's thread
                log.exception("desk: the wake-up callback failed")

    # ------------------------------------------------------------------ the owner's thread
    def poll(self, max_messages: int = 5000) -> int:
        """Apply what arrived (at most ``max_messages``, so a station sending an hour's backlog cannot
        freeze the window), then re-judge who is online; the number of messages applied."""
        applied = 0
        while applied < max_messages:
            try:
                topic, payload, at = self._queue.get_nowait()
            except queue.Empty:
                break
            self.state.handle(topic, payload, now=at)
            applied += 1
        self.received += applied
        self.state.refresh()
        return applied

    def pending(self) -> bool:
        return not self._queue.empty()

    def acknowledge(self, site: str, station: str, screening_id: int, action: str, operator: str | None = None,
                    note: str = "", thermometer_c: float | None = None) -> AckOutcome:
        """Acknowledge ``station``'s alarm at the desk: send it to the station and record it centrally.

        The station logs it as its own acknowledgement (operator ``desk:NAME``), which then comes back
        here as a row like any other. The alarm is released at the desk at once: the guard has answered it,
        and a station that is away gets the message (QoS 1, queued by the broker) when it is back.

        Raises
        ------
        StationError
            Bad input, in one line (an unknown action, an impossible thermometer reading, no operator);
            nothing is sent then. A broker or database that fails is reported in the outcome instead.
        """
        check_id(site, "site")
        check_id(station, "station id")
        check_action(action, thermometer_c)
        if not isinstance(screening_id, int) or isinstance(screening_id, bool) or screening_id < 1:
            raise StationError(f"screening id: expected a positive integer, got {screening_id!r}")
        operator = (operator if operator is not None else self.operator).strip()
        if not operator:
            raise StationError("an acknowledgement must name who makes it (the desk's operator)")
        ack = DeskAck(screening_id, action, operator, note.strip(), thermometer_c)
        problems: list[str] = []
        sent = False
        try:
            info = self.client.publish(protocol.station_topic(site, station, "desk", "ack"), ack.encode(), qos=1)
            sent = info.rc == 0
            if not sent:  # paho keeps it and sends it when the broker is back
                problems.append("the broker is unreachable now: the acknowledgement goes when the desk "
                                "reconnects")
                sent = True
        except (RuntimeError, ValueError) as exc:
            problems.append(f"NOT sent to the station: {exc}")
        recorded = None
        if self.dsn is not None:
            try:
                recorded = record_desk_ack(self._pg(), site, station, ack)
            except Exception as exc:  # noqa: BLE001 - the guard must be told, the alarm still answered
                self._drop_pg()
                problems.append(f"NOT recorded in the fleet log: {_first_line(exc)}")
        self.state.acknowledged(station, screening_id)
        return AckOutcome(ack, sent, recorded, tuple(problems))

    def _pg(self) -> Any:
        from station.fleet.central import connect

        if self._conn is None or self._conn.closed:
            if self.dsn is None:
                raise StationError("no fleet log (--postgres) given")
            self._conn = connect(self.dsn)
        return self._conn

    def _drop_pg(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
            self._conn = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
