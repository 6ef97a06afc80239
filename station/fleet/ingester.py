"""The central ingester: stations' rows from Mosquitto into the fleet log in PostgreSQL, then the marks.

It subscribes ``fleet/+/+/row/#`` as MQTT user ``ingester`` (MQTT v5, a persistent session: ``clean_start``
off with a session expiry, so QoS 1 rows queued while it was down are delivered when it is back) and
acknowledges nothing by itself: a PUBACK goes back only after the row is committed, so a row the broker
handed to an ingester that died is handed again. Rows are inserted in batches with ``ON CONFLICT DO
NOTHING`` (a row sent twice is stored once), the batch is committed, and only THEN is the retained
high-water mark ``fleet/<site>/<station>/hwm/<table>`` published for every station table the batch
touched: the highest ``row_id`` with every row below it held, computed from PostgreSQL (so it survives an
ingester restart, and a gap holds it back). See :mod:`station.fleet.protocol` for why.

Alarm images (``fleet/+/+/snapshot/#``, from stations that share them) wait in memory until their
screening's row arrives: a snapshot is stored in ``fleet_snapshots`` only when its bytes' sha256 is the one
the row records, in the row's transaction, and a row whose message lists images is stored only once each
of them is (otherwise it is dropped in one line, its mark stays below it, and the station sends images and
row again). An image held in memory is lost with the ingester: harmless, as its row is then not held either.

Chain anchors (``fleet/+/+/anchor/<table>``, retained, from stations whose retention deleted rows before
they could be sent) are stored append-only in ``fleet_anchors``; a station table's mark counts from its
lowest anchor when the row after it follows it (:func:`station.fleet.central.anchored_base`).

A malformed message (bad JSON, a table the topic does not name, a topic that is not a fleet row topic) is
logged in one line and dropped (acknowledged, or the broker would hand it over for ever). Both servers are
reconnected with back-off; SIGTERM finishes the batch, commits it, publishes its marks and disconnects.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from station.errors import StationError
from station.fleet.central import anchored_base, connect, ensure_schema, high_water_mark, payload_text
from station.fleet.protocol import (
    PUBLISHED_TABLES,
    ROOT,
    Anchor,
    BrokerUrl,
    Hwm,
    RowMessage,
    check_id,
    hwm_topic,
    parse_topic,
)
from station.log.chain import GENESIS, recorded_snapshots

log = logging.getLogger("station.fleet.ingester")

SUBSCRIPTION = f"{ROOT}/+/+/row/#"
SNAPSHOT_SUBSCRIPTION = f"{ROOT}/+/+/snapshot/#"
#: Stations' retained chain anchors: the mark of a station that purged rows before it joined counts from there.
ANCHOR_SUBSCRIPTION = f"{ROOT}/+/+/anchor/#"
#: Alarm images received and waiting for their screening's row, at most (the oldest go first: the station
#: sends them again with the row's next send).
MAX_PENDING_IMAGES = 1000
CLIENT_ID = "fleet-ingester"
#: How long the broker keeps the ingester's session (and the rows queued for it) while it is away.
SESSION_EXPIRY_S = 7 * 24 * 3600
#: QoS 1 messages the broker may have in flight to us unacknowledged (MQTT v5 Receive Maximum).
RECEIVE_MAXIMUM = 2000
BATCH_ROWS = 500
#: A batch is committed when it is full or when no new row came for this long.
LINGER_S = 0.05
BACKOFF_S = (0.5, 30.0)


@dataclass
class _Incoming:
    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes


@dataclass
class Stats:
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    snapshots: int = 0  # alarm images stored
    held_back: int = 0  # rows dropped because an image they list is not stored (the station re-sends them)
    marks: dict[tuple[str, str, str], int] = field(default_factory=dict)


class Ingester:
    """One ingester: :meth:`run` until :meth:`stop` (or SIGTERM through the command) is called.

    Parameters
    ----------
    broker_url
        ``mqtt://HOST:PORT`` (or ``mqtts://``) of the broker.
    dsn
        The fleet log's PostgreSQL DSN (a role in ``fleet_ingester``).
    username, password
        The MQTT user (``ingester`` by default) and its password.
    ca_file
        The CA to trust for ``mqtts://`` (default: the system's).
    """

    def __init__(self, broker_url: str, dsn: str, *, username: str | None = None, password: str | None = None,
                 ca_file: Path | None = None, client_id: str = CLIENT_ID, batch_rows: int = BATCH_ROWS,
                 linger_s: float = LINGER_S, on_commit: Callable[[Stats], None] | None = None):
        self.broker = BrokerUrl.parse(broker_url)
        self.dsn = dsn
        self.username = username or self.broker.username or "ingester"
        self.password = password
        self.ca_file = ca_file
        self.client_id = client_id
        self.batch_rows = batch_rows
        self.linger_s = linger_s
        self.on_commit = on_commit
        self.stats = Stats()
        self._queue: queue.Queue[_Incoming] = queue.Queue()
        self._stop = threading.Event()
        self._generation = 0
        self._generation_lock = threading.Lock()
        self._connected = threading.Event()
        #: Set once the broker confirmed the subscription: from then on it queues every row for this session.
        self.subscribed = threading.Event()
        self._fatal: str | None = None
        self._conn: Any = None
        self._client: Any = None
        # marks known held (the log never loses a row): each recomputation reads only the rows above
        self._marks: dict[tuple[str, str], tuple[int, str]] = {}
        # alarm images waiting for their screening's row: (station, screening_id, kind) -> PNG bytes
        self._pending: OrderedDict[tuple[str, int, str], bytes] = OrderedDict()

    # ------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        """Ask :meth:`run` to finish its batch, commit, publish the marks and disconnect."""
        self._stop.set()

    def run(self) -> None:
        """Ingest until stopped. Raises :class:`StationError` for what retrying cannot mend (a malformed
        DSN, a refused login, a schema this role may not migrate)."""
        self._conn = connect(self.dsn)  # a malformed DSN or a wrong password: fail now, in one line
        ensure_schema(self._conn)
        self._client = self._make_client()
        try:
            self._client.connect_async(self.broker.host, self.broker.port, keepalive=30,
                                       clean_start=False, properties=self._connect_properties())
            self._client.loop_start()
            self._loop()
        finally:
            self._shutdown()

    def _make_client(self) -> Any:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv5)
        client.manual_ack_set(True)
        client.username_pw_set(self.username, self.password)
        if self.broker.tls:
            client.tls_set(ca_certs=str(self.ca_file) if self.ca_file else None)
        client.reconnect_delay_set(min_delay=1, max_delay=int(BACKOFF_S[1]))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _connect_properties(self) -> Any:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        return props

    # ------------------------------------------------------------------ MQTT callbacks (paho's thread)
    def _on_connect(self, client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("broker %s:%s refused the ingester: %s", self.broker.host, self.broker.port, reason)
            if str(reason) in ("Bad user name or password", "Not authorized"):
                self._fatal = f"broker {self.broker.host}:{self.broker.port}: {reason} (user {self.username})"
                self._stop.set()
            return
        with self._generation_lock:
            self._generation += 1
        client.subscribe([(SUBSCRIPTION, 1), (SNAPSHOT_SUBSCRIPTION, 1), (ANCHOR_SUBSCRIPTION, 1)])
        self._connected.set()
        log.info("connected to broker %s:%s as %s", self.broker.host, self.broker.port, self.username)

    def _on_subscribe(self, _client: Any, _userdata: Any, _mid: int, reasons: Any, _props: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("the broker refused the subscriptions %s, %s: %s", SUBSCRIPTION, SNAPSHOT_SUBSCRIPTION,
                      ", ".join(map(str, reasons)))
            self._fatal = (f"broker {self.broker.host}:{self.broker.port}: subscription {SUBSCRIPTION} or "
                           f"{SNAPSHOT_SUBSCRIPTION} refused")
            self._stop.set()
            return
        log.info("subscribed %s: the broker keeps this session's rows while the ingester is away", SUBSCRIPTION)
        self.subscribed.set()

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("lost the broker %s:%s (%s); reconnecting", self.broker.host, self.broker.port, reason)

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        self._queue.put(_Incoming(self._generation, message.mid, message.qos, message.topic, message.payload))

    # ------------------------------------------------------------------ the batch loop (caller's thread)
    def _loop(self) -> None:
        announced = False
        while True:
            if self._connected.is_set() and not announced:
                announced = self._republish_marks()
            elif not self._connected.is_set():
                announced = False
            batch = self._take_batch()
            if batch:
                self._commit_with_retry(batch)
            if self._fatal:
                raise StationError(self._fatal)
            if self._stop.is_set() and self._queue.empty():
                return

    def _take_batch(self) -> list[_Incoming]:
        batch: list[_Incoming] = []
        try:
            batch.append(self._queue.get(timeout=0.2))
        except queue.Empty:
            return batch
        deadline = time.monotonic() + self.linger_s
        while len(batch) < self.batch_rows:
            try:
                batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _commit_with_retry(self, batch: list[_Incoming]) -> None:
        import psycopg

        delay = BACKOFF_S[0]
        while True:
            try:
                touched = self._insert(batch)
                break
            except psycopg.Error as exc:
                log.warning("PostgreSQL: %s; retrying in %.1f s", _one_line(exc), delay)
                self._reset_connection()
                if self._stop.wait(delay) and self._conn is None:
                    # stopping while PostgreSQL is away: leave the batch unacknowledged, the broker keeps it
                    return
                delay = min(delay * 2, BACKOFF_S[1])
                self._reconnect_postgres()
        self._acknowledge(batch)
        try:
            self._publish_marks(touched)
        except psycopg.Error as exc:  # committed and acknowledged: the next batch or reconnect publishes them
            log.warning("PostgreSQL: %s (marks not published yet)", _one_line(exc))
            self._reset_connection()
        if self.on_commit:
            self.on_commit(self.stats)

    def _insert(self, batch: list[_Incoming]) -> set[tuple[str, str, str]]:
        """Insert the batch's good rows in one transaction and commit; the station tables touched."""
        if self._conn is None:
            self._reconnect_postgres()
            if self._conn is None:
                import psycopg

                raise psycopg.OperationalError("not connected")
        rows: list[tuple[Any, ...]] = []
        touched: set[tuple[str, str, str]] = set()
        messages: list[tuple[str, str, RowMessage]] = []
        anchors: list[tuple[str, str, str, Anchor]] = []
        images = dict(self._pending)
        for item in batch:
            where = parse_topic(item.topic)
            if where is not None and where[2] and where[2][0] == "anchor":
                anchor = self._parse_anchor(item, where)
                if anchor is not None:
                    anchors.append(anchor)
                continue
            if where is not None and where[2] and where[2][0] == "snapshot":
                snapshot = self._parse_snapshot(item, where)
                if snapshot is not None:
                    images[snapshot[0]] = snapshot[1]
                continue
            parsed = self._parse(item)
            if parsed is not None:
                messages.append(parsed)
        self.stats.received += len(messages)
        inserted = stored_images = held_back = 0
        used: set[tuple[str, int, str]] = set()
        with self._conn.transaction(), self._conn.cursor() as cur:
            for site, station, table, anchor in anchors:
                touched.add((site, station, table))
                cur.execute("INSERT INTO fleet_anchors (station_id, table_name, row_id, row_hash) "
                            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", (station, table, anchor.row_id,
                                                                              anchor.row_hash))
            for site, station, message in messages:
                row = message.row
                touched.add((site, station, message.table))
                if message.images is not None and message.table == "screenings":
                    held, new = self._store_images(cur, station, message, images, used)
                    stored_images += new
                    if not held:
                        held_back += 1
                        continue
                rows.append((station, site, message.table, int(row["id"]), row["prev_hash"], row["row_hash"],
                             row["wall_time"], payload_text(row)))
            if rows:
                cur.executemany(
                    "INSERT INTO fleet_rows (station_id, site, table_name, row_id, prev_hash, row_hash, wall_time, "
                    "payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (station_id, table_name, row_id) DO NOTHING", rows)
                inserted = max(cur.rowcount, 0)
                self._report_conflicts(cur, rows)
        # committed: images used (stored, or refused) leave memory; the rest wait for their rows
        self._pending = OrderedDict((k, v) for k, v in images.items() if k not in used)
        while len(self._pending) > MAX_PENDING_IMAGES:
            self._pending.popitem(last=False)
        self.stats.snapshots += stored_images
        self.stats.held_back += held_back
        self.stats.inserted += inserted
        self.stats.duplicates += len(rows) - inserted
        self.stats.batches += 1
        if rows:
            log.debug("committed %d rows (%d new)", len(rows), inserted)
        return touched

    def _report_conflicts(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        """One line for a row that arrived again with a different hash: the station's log changed under it
        (the fleet log keeps the first; ``fleet verify`` compares the chains)."""
        keys = [(r[0], r[2], r[3]) for r in rows]
        cur.execute("SELECT station_id, table_name, row_id, row_hash FROM fleet_rows "
                    "WHERE (station_id, table_name, row_id) IN (SELECT * FROM unnest(%s::text[], %s::text[], "
                    "%s::bigint[]))", ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]))
        held = {(a, b, int(c)): d for a, b, c, d in cur.fetchall()}
        for station, _site, table, row_id, _prev, digest, _wall, _payload in rows:
            if held.get((station, table, row_id), digest) != digest:
                log.warning("station %s %s row %d arrived again with a different hash: kept the first",
                            station, table, row_id)

    def _parse_snapshot(self, item: _Incoming, where: tuple[str, str, tuple[str, ...]]
                        ) -> tuple[tuple[str, int, str], bytes] | None:
        """``((station, screening_id, kind), PNG bytes)`` of an alarm image message; None (said in one line)
        for a malformed one."""
        _site, station, rest = where
        try:
            if len(rest) != 3 or not rest[1].isdigit() or not item.payload:
                raise StationError("expected snapshot/<screening id>/<kind> and the image's bytes")
            check_id(rest[2], "snapshot kind")
        except StationError as exc:
            self._reject(item, str(exc))
            return None
        return (station, int(rest[1]), rest[2]), bytes(item.payload)

    def _store_images(self, cur: Any, station: str, message: RowMessage,
                      images: dict[tuple[str, int, str], bytes], used: set[tuple[str, int, str]]) -> tuple[bool, int]:
        """Store the images a sharing station's screening row lists, each only if its sha256 is the one the
        row records; ``(every listed image is stored, images newly stored)``."""
        sid = int(message.row["id"])
        recorded = recorded_snapshots(message.row) or {}
        listed = set(message.images or ())
        lost = sorted(set(recorded) - listed)
        if lost:
            log.warning("station %s screening %d: its %s snapshot was lost at the station; held without it",
                        station, sid, ", ".join(lost))
        cur.execute("SELECT kind, sha256 FROM fleet_snapshots WHERE station_id = %s AND screening_id = %s",
                    (station, sid))
        held = {str(k): str(d) for k, d in cur.fetchall()}
        complete, new = True, 0
        for kind in sorted(listed):
            expected = recorded.get(kind)
            if expected is None:
                log.warning("station %s screening %d: lists a %s snapshot its row does not record; ignored",
                            station, sid, kind)
                continue
            if held.get(kind) == expected:
                continue
            key = (station, sid, kind)
            png = images.get(key)
            if png is None:
                log.warning("station %s screening %d: its %s snapshot has not arrived; row not held yet",
                            station, sid, kind)
                complete = False
                continue
            used.add(key)
            digest = hashlib.sha256(png).hexdigest()
            if digest != expected:
                log.warning("station %s screening %d: %s snapshot sha256 %s is not the recorded %s; not stored, "
                            "row not held yet", station, sid, kind, digest[:12], expected[:12])
                complete = False
                continue
            cur.execute("INSERT INTO fleet_snapshots (station_id, screening_id, kind, sha256, image) "
                        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", (station, sid, kind, digest, png))
            new += max(cur.rowcount, 0)
        return complete, new

    def _parse_anchor(self, item: _Incoming, where: tuple[str, str, tuple[str, ...]]
                      ) -> tuple[str, str, str, Anchor] | None:
        """``(site, station, table, anchor)`` of a station's chain anchor message; None (said in one line) for
        a malformed one (an empty payload, a retained anchor cleared, is skipped silently)."""
        site, station, rest = where
        if not item.payload:
            return None
        try:
            if len(rest) != 2 or rest[1] not in PUBLISHED_TABLES:
                raise StationError("expected anchor/<published table>")
            return site, station, rest[1], Anchor.decode(item.payload)
        except StationError as exc:
            self._reject(item, str(exc))
            return None

    def _parse(self, item: _Incoming) -> tuple[str, str, RowMessage] | None:
        where = parse_topic(item.topic)
        if where is None or len(where[2]) != 2 or where[2][0] != "row":
            self._reject(item, "not a fleet row topic")
            return None
        site, station, (_row, table) = where
        try:
            message = RowMessage.decode(item.payload)
        except StationError as exc:
            self._reject(item, str(exc))
            return None
        if message.table != table:
            self._reject(item, f"its table {message.table!r} is not the topic's {table!r}")
            return None
        return site, station, message

    def _reject(self, item: _Incoming, why: str) -> None:
        self.stats.rejected += 1
        log.warning("skipped a message on %s: %s", item.topic, why)

    def _acknowledge(self, batch: list[_Incoming]) -> None:
        """PUBACK each message now that its row is committed (only on the connection that delivered it:
        message ids are per connection, and the broker re-sends the others)."""
        for item in batch:
            if item.qos > 0 and item.generation == self._generation and self._connected.is_set():
                self._client.ack(item.mid, item.qos)

    def _publish_marks(self, touched: set[tuple[str, str, str]]) -> None:
        if not touched:
            return
        with self._conn.transaction(), self._conn.cursor() as cur:
            marks = {}
            for site, station, table in sorted(touched):
                known = self._marks.get((station, table), (0, GENESIS))
                base = anchored_base(cur, station, table)  # rows the station purged before it joined
                mark = high_water_mark(cur, station, table, base if base[0] > known[0] else known)
                self._marks[(station, table)] = mark
                marks[(site, station, table)] = mark
        for (site, station, table), (row_id, digest) in marks.items():
            self._client.publish(hwm_topic(site, station, table), Hwm(row_id, digest).encode(), qos=1, retain=True)
            self.stats.marks[(site, station, table)] = row_id

    def _republish_marks(self) -> bool:
        """Every station table's mark, at each (re)connect: a broker that lost its retained messages (killed
        before its autosave) gets them back without waiting for a station to re-send."""
        import psycopg

        from station.fleet.central import stations_tables

        try:
            if self._conn is None:
                self._reconnect_postgres()
            if self._conn is None:
                return False
            with self._conn.transaction(), self._conn.cursor() as cur:
                touched = set(stations_tables(cur))
            self._publish_marks(touched)
            return True
        except psycopg.Error as exc:
            log.warning("PostgreSQL: %s (marks not re-published yet)", _one_line(exc))
            self._reset_connection()
            return False

    # ------------------------------------------------------------------ PostgreSQL connection
    def _reset_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is dropped anyway
                pass

    def _reconnect_postgres(self) -> None:
        try:
            self._conn = connect(self.dsn)
            log.info("connected to PostgreSQL")
        except StationError as exc:
            log.warning("%s", exc)
            self._conn = None

    def _shutdown(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            finally:
                client.loop_stop()
        self._reset_connection()
        log.info("stopped: %d rows received, %d new, %d duplicates, %d skipped", self.stats.received,
                 self.stats.inserted, self.stats.duplicates, self.stats.rejected)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
