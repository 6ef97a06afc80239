"""The station's side of the fleet: publish the log's outbox, heartbeats and status; take desk acknowledgements.

How a row travels (see :mod:`station.fleet.protocol` for the contract): the store puts every published row
in its ``outbox`` in the row's own transaction (``EventStore(outbox=True)``). The :class:`Publisher`
reads the outbox on a thread of its own, with a connection of its own to the same SQLite file (WAL: the
engine's writes never wait for it, beyond a short ``busy_timeout`` while it prunes), and publishes each
row QoS 1 to ``fleet/<site>/<station>/row/<table>`` in id order. A row leaves the outbox only when the
ingester's retained high-water mark for that table covers it (it committed the row in PostgreSQL); a
PUBACK alone proves nothing. After every (re)connect, and whenever a mark stops moving while rows above
it were sent (a message the broker or the ingester lost), everything above the mark is sent again:
the ingester stores a row once however often it comes.

Chain anchors: when retention has deleted a table's oldest rows, the table's anchor (the last deleted row's
id and hash) is published retained to ``.../anchor/<table>`` at every connect and whenever it changes: rows
deleted before the station joined the fleet never reach it, and the ingester counts the mark from there.

Alarm images (``share_images``, the settings' ``share_alarm_images``): before every (re)send of a screening
row that recorded snapshots, their PNG files are published to ``.../snapshot/<screening id>/<kind>`` and the
row message lists the kinds sent, so the ingester holds the row only once it holds them. A file that is gone
or no longer matches the sha256 its row records is published as nothing and said once, in one line; the row
goes without it (its message says so), or delivery would stall for ever. Without ``share_images`` no image
leaves the station.

Threads: paho's network loop (``loop_start``) runs the MQTT callbacks, which only record what arrived
(marks, connection state, desk acknowledgements) under a lock. The publisher's own worker thread owns the
SQLite connection and does everything else: sending, pruning, heartbeats, logging desk acknowledgements.

Credentials: a TOML file, mode 0600, holding ``password = "..."`` (see :func:`read_credentials`): never on
the command line, where ``ps`` would show it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from station.errors import StationError
from station.fleet import protocol
from station.fleet.credentials import read_credentials, write_credentials  # noqa: F401
from station.fleet.protocol import Anchor, BrokerUrl, DeskAck, Heartbeat, Hwm
from station.log.chain import recorded_snapshots
from station.log.store import EventStore

#: How long the broker keeps this station's session (its subscriptions, QoS 1 messages queued for it)
#: while it is away.
SESSION_EXPIRY_S = 7 * 24 * 3600
#: Rows published and not yet PUBACKed, at most: a station back after an hour sends its backlog in
#: steady batches instead of queueing it all in memory.
MAX_UNACKED = 200
POLL_S = 0.2
#: After subscribing, how long to wait for the retained marks before sending (resending is safe anyway).
MARKS_WAIT_S = 0.5
#: A mark that has not moved for this long while rows above it were sent: send them again.
STALL_S = 15.0
RETRY_STORE_S = 1.0


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- credentials
# ---------------------------------------------------------------------- the publisher
class Publisher:
    """Publishes one station's outbox, heartbeats and status to the fleet's broker, in the background.

    Parameters
    ----------
    store
        The station's database file (opened here, on the worker thread, with ``outbox=True``), or a
        callable returning an open :class:`EventStore` (called on the worker thread).
    broker, site, station_id, password
        Where and who: the MQTT user is the URL's user, else the station id (the broker's ACL lets a
        user write only below its own station's topics).
    ca_file
        The CA certificate that signed the broker's (``mqtts://`` only; default: the system's CAs).
    heartbeat
        Gives the station's state every :data:`~station.fleet.protocol.HEARTBEAT_S` (its
        ``outbox_rows`` is filled in here); None: heartbeats carry no measurements.
    on_desk_ack
        Called (on the worker thread) with each acknowledgement made at the desk, after it is logged
        as this station's own acknowledgement row, and with the new row's id.
    warn
        Where to say what goes wrong (a refused connection, a row the store cannot log).
    share_images, snapshots_dir
        Publish alarm images before their screening rows, read from ``snapshots_dir`` (default: beside
        the database file, ``<stem>-snapshots``, as the station keeps them). Off: no image leaves the station.

    :meth:`start` connects in the background (a broker that is down is retried with back-off, and rows
    wait in the outbox); :meth:`close` says ``offline`` and disconnects cleanly.
    """

    def __init__(
        self,
        store: Path | str | Callable[[], EventStore],
        *,
        broker: BrokerUrl,
        site: str,
        station_id: str,
        password: str | None,
        ca_file: Path | None = None,
        heartbeat: Callable[[], Heartbeat] | None = None,
        on_desk_ack: Callable[[DeskAck, int], None] | None = None,
        warn: Callable[[str], None] = _stderr,
        heartbeat_s: float = protocol.HEARTBEAT_S,
        keepalive_s: int = protocol.KEEPALIVE_S,
        stall_s: float = STALL_S,
        version: str | None = None,
        share_images: bool = False,
        snapshots_dir: Path | None = None,
    ) -> None:
        self.site = protocol.check_id(site, "site")
        self.station_id = protocol.check_id(station_id, "station id")
        self.broker = broker
        self._open_store = store if callable(store) else (lambda p=Path(store): EventStore(p, outbox=True))
        self._heartbeat = heartbeat
        self._on_desk_ack = on_desk_ack
        self._warn = warn
        self.heartbeat_s = heartbeat_s
        self.keepalive_s = keepalive_s
        self.stall_s = stall_s
        self.version = version or _version()
        self.tables = protocol.PUBLISHED_TABLES
        self.share_images = share_images
        if share_images and snapshots_dir is None:
            if callable(store):
                raise ValueError("share_images: give snapshots_dir with a store callable")
            snapshots_dir = Path(store).with_name(f"{Path(store).stem}-snapshots")
        self.snapshots_dir = None if snapshots_dir is None else Path(snapshots_dir)
        self._images_said: set[tuple[int, str]] = set()  # (screening id, kind) lost images already said
        self.prefix = protocol.station_topic(self.site, self.station_id)

        # Shared between paho's thread and the worker, under _lock.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.marks: dict[str, int] = {}  # table -> the ingester's high-water mark
        self._marks_changed: set[str] = set()
        self._acks: list[DeskAck] = []
        self._unacked: set[int] = set()
        self._session = 0  # counts connections: the worker restarts sending at each new one
        self._connected = False
        self._subscribed_at: float | None = None
        self._last_refusal: str | None = None

        # The worker's own state.
        self._sent: dict[str, int] = {}  # table -> highest row id sent in this session
        self._progress: dict[str, float] = {}  # table -> when its mark last moved (or it was resent)
        self._worker_session = 0
        self._anchors_sent: dict[str, tuple[int, str]] = {}  # table -> anchor published in this session
        self._anchor_session = 0
        self._store: EventStore | None = None
        self._store_error: str | None = None
        self._draining = False
        self._waiting: int | None = None  # outbox rows left, counted while draining
        self.sent_rows = 0  # rows published (a resent row counts again), for tests and the bench
        self.sent_images = 0
        self.pruned_rows = 0

        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"station-{self.site}-{self.station_id}",
            protocol=mqtt.MQTTv5)
        self.client.username_pw_set(broker.username or self.station_id, password)
        if broker.tls:
            self.client.tls_set(ca_certs=None if ca_file is None else str(ca_file))
        self.client.reconnect_delay_set(1, 30)
        self.client.max_inflight_messages_set(50)
        self.client.will_set(self._topic("status"), protocol.status_payload("offline", utc_now()), qos=1,
                             retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life
    def start(self) -> Publisher:
        """Connect in the background and start the worker; returns at once."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.keepalive_s,
                                  clean_start=False, properties=props)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name=f"fleet-publisher-{self.station_id}", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 3.0, *, drain_s: float = 0.0) -> None:
        """Stop: say ``offline`` (retained) when connected, disconnect cleanly, close the store connection.

        ``drain_s``: first wait up to this long, while connected, for the fleet to confirm every row in
        the outbox (what is left is sent at the next start: nothing is lost either way).
        """
        end = time.monotonic() + drain_s
        self._waiting = None
        self._draining = drain_s > 0
        self._wake.set()
        while self._draining and time.monotonic() < end and self.connected and self._thread is not None:
            if self._waiting == 0:
                break
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.connected:
            try:
                info = self.client.publish(self._topic("status"), protocol.status_payload("offline", utc_now()),
                                           qos=1, retain=True)
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Publisher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    def wait_connected(self, timeout: float) -> bool:
        """Whether the publisher is connected (waiting up to ``timeout`` seconds for it)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.connected:
                return True
            time.sleep(0.05)
        return self.connected

    # ------------------------------------------------------------------ paho's thread: record only
    def _topic(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            text = f"fleet: broker {self.broker.host}:{self.broker.port} refused the connection ({reason})"
            if text != self._last_refusal:
                self._warn(text + "; retrying")
                self._last_refusal = text
            return
        self._last_refusal = None
        client.publish(self._topic("status"), protocol.status_payload("online", utc_now()), qos=1, retain=True)
        client.subscribe([(self._topic("hwm", "#"), 1), (self._topic("desk", "ack"), 1)])
        with self._lock:
            self._connected = True
            self._subscribed_at = None
            self._session += 1
            self._unacked.clear()
        self._wake.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._lock:
            self._connected = False

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        refused = [r for r in reasons if r.is_failure]
        if refused:
            self._warn(f"fleet: the broker refused a subscription of {self.station_id} ({refused[0]})")
        with self._lock:
            self._subscribed_at = time.monotonic()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        if reason.is_failure:  # v5: a refused publish comes back with a reason code (the ACL)
            self._warn(f"fleet: the broker refused a message of {self.station_id} ({reason})")
        with self._lock:
            self._unacked.discard(mid)
        self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        rest = message.topic[len(self.prefix) + 1:].split("/") if message.topic.startswith(self.prefix + "/") else []
        try:
            if len(rest) == 2 and rest[0] == "hwm" and rest[1] in self.tables:
                if not message.payload:  # a retained mark cleared
                    return
                mark = Hwm.decode(message.payload)
                with self._lock:
                    self.marks[rest[1]] = mark.row_id
                    self._marks_changed.add(rest[1])
            elif rest == ["desk", "ack"]:
                ack = DeskAck.decode(message.payload)
                with self._lock:
                    self._acks.append(ack)
            else:
                return
        except StationError as exc:
            self._warn(f"fleet: ignored a message on {message.topic}: {exc}")
            return
        self._wake.set()

    # ------------------------------------------------------------------ the worker
    def _run(self) -> None:
        next_beat = time.monotonic()
        try:
            while not self._stop.is_set():
                self._wake.wait(POLL_S)
                self._wake.clear()
                if self._stop.is_set():
                    break
                if not self._ensure_store():
                    continue
                try:
                    self._prune()
                    self._log_desk_acks()
                    self._publish_anchors()
                    self._send()
                    if self._draining:
                        self._waiting = self._store.outbox_count()
                    if time.monotonic() >= next_beat:
                        next_beat = time.monotonic() + self.heartbeat_s
                        self._beat()
                except StationError as exc:  # the disk is failing: the guarded log copes; try again later
                    self._store_failed(str(exc))
        finally:
            if self._store is not None:
                self._store.close()
                self._store = None

    def _ensure_store(self) -> bool:
        if self._store is not None:
            return True
        try:
            self._store = self._open_store()
        except StationError as exc:
            self._store_failed(str(exc))
            self._stop.wait(RETRY_STORE_S)
            return False
        if self._store_error is not None:
            self._warn("fleet: the outbox can be read again")
            self._store_error = None
        return True

    def _store_failed(self, message: str) -> None:
        if message != self._store_error:
            self._warn(f"fleet: {message}; rows wait in the outbox")
            self._store_error = message

    def _prune(self) -> None:
        with self._lock:
            changed = {t: self.marks[t] for t in self._marks_changed}
            self._marks_changed.clear()
        assert self._store is not None
        now = time.monotonic()
        for table, mark in changed.items():
            self._progress[table] = now
            self.pruned_rows += self._store.prune_outbox(table, mark)

    def _log_desk_acks(self) -> None:
        with self._lock:
            acks, self._acks = self._acks, []
        assert self._store is not None
        for index, ack in enumerate(acks):
            try:
                row_id = self._log_desk_ack(ack)
            except StationError as exc:
                if "no screening" in str(exc) or "raised no alarm" in str(exc) or "action" in str(exc):
                    self._warn(f"fleet: desk acknowledgement of screening {ack.screening_id} not logged: {exc}")
                    continue
                with self._lock:  # the disk: keep it and the rest for the next round
                    self._acks[:0] = acks[index:]
                raise
            except ValueError as exc:
                self._warn(f"fleet: desk acknowledgement of screening {ack.screening_id} not logged: {exc}")
                continue
            if row_id is not None and self._on_desk_ack is not None:
                try:
                    self._on_desk_ack(ack, row_id)
                except Exception as exc:  # noqa: BLE001 - a display callback must not stop publishing
                    self._warn(f"fleet: desk acknowledgement callback failed: {exc}")

    def _log_desk_ack(self, ack: DeskAck) -> int | None:
        """Log ``ack`` as this station's own acknowledgement; its id, or None when it is logged already
        (a message delivered twice)."""
        assert self._store is not None
        operator = f"desk:{ack.operator}"
        for row in self._store.acknowledgements(ack.screening_id):
            if row["operator"] == operator and row["action"] == ack.action and row["note"] == ack.note \
                    and row["thermometer_c"] == ack.thermometer_c:
                return None
        return self._store.acknowledge(ack.screening_id, ack.action, thermometer_c=ack.thermometer_c,
                                       note=ack.note, operator=operator)

    def _send(self) -> None:
        """Publish the outbox rows above what this session sent (or above the marks), a batch at a time."""
        with self._lock:
            connected, session, subscribed_at = self._connected, self._session, self._subscribed_at
            marks = dict(self.marks)
            room = MAX_UNACKED - len(self._unacked)
        if not connected:
            return
        now = time.monotonic()
        if session != self._worker_session:
            if subscribed_at is None or now - subscribed_at < MARKS_WAIT_S:
                return  # the retained marks arrive just after the subscription: wait for them
            self._worker_session = session
            self._sent = {}  # everything above the marks again: the last session's messages may be gone
            self._progress = {t: now for t in self.tables}
        assert self._store is not None
        for table in self.tables:
            if room <= 0:
                return  # PUBACKs wake the worker as they free room
            mark = marks.get(table, 0)
            sent = max(self._sent.get(table, 0), mark)
            if sent > mark and now - self._progress.get(table, now) > self.stall_s:
                sent = mark  # the mark is stuck below what was sent: a message was lost on the way
            rows = self._store.outbox_rows(table, sent, min(room, 500))
            if rows and sent <= mark:
                self._progress[table] = now  # rows outstanding from now on: the mark should follow
            for row_id, row_json in rows:
                row = json.loads(row_json)
                images: tuple[str, ...] | None = None
                if self.share_images and table == "screenings":
                    sent_images = self._publish_images(row)
                    if sent_images is False:
                        return  # disconnected meanwhile: the next session sends them again
                    images, room = sent_images, room - len(sent_images)
                payload = protocol.RowMessage(table, row, images).encode()
                info = self.client.publish(protocol.row_topic(self.site, self.station_id, table), payload, qos=1)
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return  # disconnected meanwhile: the next session sends it again
                with self._lock:
                    self._unacked.add(info.mid)
                self._sent[table] = row_id
                self.sent_rows += 1
                room -= 1
            if len(rows) == 500:
                self._wake.set()

    def _publish_anchors(self) -> None:
        """Publish each published table's chain anchor (retained), at every connect and whenever it changes:
        the fleet counts the table's mark from it, the rows below it being deleted before they were sent."""
        with self._lock:
            connected, session = self._connected, self._session
        if not connected:
            return
        if session != self._anchor_session:
            self._anchor_session = session
            self._anchors_sent = {}
        assert self._store is not None
        for table, anchor in self._store.chain_anchors().items():
            if table not in self.tables or self._anchors_sent.get(table) == anchor:
                continue
            info = self.client.publish(protocol.anchor_topic(self.site, self.station_id, table),
                                       Anchor(*anchor).encode(), qos=1, retain=True)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return  # disconnected meanwhile: the next session publishes it again
            self._anchors_sent[table] = anchor

    def _publish_images(self, row: dict[str, Any]) -> tuple[str, ...] | bool:
        """Publish the snapshots a screening row records; the kinds sent (``False``: disconnected)."""
        recorded = recorded_snapshots(row)
        if not recorded:
            return ()
        assert self._store is not None and self.snapshots_dir is not None
        sid = int(row["id"])
        files = {str(r["kind"]): str(r["path"]) for r in self._store.snapshots(sid)}
        sent: list[str] = []
        for kind, digest in sorted(recorded.items()):
            data: bytes | None = None
            why = "no snapshot row"
            if kind in files:
                try:
                    data = (self.snapshots_dir / files[kind]).read_bytes()
                    why = "its file does not match the recorded sha256"
                except OSError as exc:
                    why = f"cannot read {self.snapshots_dir / files[kind]} ({exc.strerror})"
            if data is None or hashlib.sha256(data).hexdigest() != digest:
                if (sid, kind) not in self._images_said:
                    self._images_said.add((sid, kind))
                    self._warn(f"fleet: screening {sid} {kind} snapshot not shared: {why}; its row goes without it")
                continue
            info = self.client.publish(protocol.snapshot_topic(self.site, self.station_id, sid, kind), data, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return False
            with self._lock:
                self._unacked.add(info.mid)
            self.sent_images += 1
            sent.append(kind)
        return tuple(sent)

    def _beat(self) -> None:
        assert self._store is not None
        count = self._store.outbox_count()
        if self._heartbeat is not None:
            beat = self._heartbeat()
            beat = dataclasses.replace(beat, outbox_rows=count, version=beat.version or self.version)
        else:
            beat = Heartbeat(utc_now(), None, None, None, None, self._store_error, count, self.version)
        if self.connected:
            self.client.publish(self._topic("heartbeat"), beat.encode(), qos=0)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fever-station")
    except PackageNotFoundError:
        return "unknown"
