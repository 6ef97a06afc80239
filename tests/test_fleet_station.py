"""The station's side of the fleet: the outbox, the publisher against a real Mosquitto, the settings.

The ingester here is a stand-in played by the test (a paho client as the ``ingester`` user): it keeps
the rows it receives and, when told to, publishes the retained high-water mark as the real ingester
does after its PostgreSQL commit. Nothing of paho or the broker is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cli_checks import one_line_error
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion

from station.cli.main import main
from station.config import load_config
from station.errors import StationError
from station.fleet import protocol
from station.fleet.credentials import read_credentials, write_credentials
from station.fleet.protocol import BrokerUrl, DeskAck, Hwm, RowMessage
from station.fleet.publisher import Publisher
from station.headless import fleet_settings
from station.log.chain import verify_chain
from station.log.store import OUTBOX_TABLES, EventStore
from station.types import ScreeningDecision, SystemEvent

SITE = "north"
REPO = Path(__file__).resolve().parents[1]


def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def fever(track: int) -> ScreeningDecision:
    return ScreeningDecision(track, 10.0 * track, 10.0 * track + 1.5, 37.9, 39.0, "fever")


def log_some(store: EventStore, n: int, start: int = 1) -> None:
    for k in range(start, start + n):
        store.record_system_event(SystemEvent("note", float(k), f"row {k}"))


class Ingester:
    """The ingester's part, played by the test: keeps rows, publishes retained marks when ``marking``."""

    def __init__(self, broker, *, marking: bool = True) -> None:
        self.rows: dict[tuple[str, str], dict[int, dict]] = {}
        self.arrivals: list[tuple[str, int]] = []
        self.marking = marking
        self.lock = threading.Lock()
        url = BrokerUrl.parse(broker.url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-ingester", protocol=mqtt.MQTTv5)
        self.client.username_pw_set("ingester", broker.passwords["ingester"])
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe("fleet/+/+/row/#", qos=1)
        self.client.connect(url.host, url.port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        site, station, rest = protocol.parse_topic(message.topic)
        row = RowMessage.decode(message.payload)
        with self.lock:
            table_rows = self.rows.setdefault((station, row.table), {})
            table_rows[row.row["id"]] = row.row
            self.arrivals.append((row.table, row.row["id"]))
        if self.marking:
            self.mark(site, station, row.table, wait=False)  # never wait inside paho's own thread

    def contiguous(self, station: str, table: str) -> int:
        with self.lock:
            have = self.rows.get((station, table), {})
            top = 0
            while top + 1 in have:
                top += 1
            return top

    def mark(self, site: str, station: str, table: str, row_id: int | None = None, *, wait: bool = True) -> None:
        row_id = self.contiguous(station, table) if row_id is None else row_id
        with self.lock:
            digest = self.rows.get((station, table), {}).get(row_id, {}).get("row_hash", "")
        info = self.client.publish(protocol.hwm_topic(site, station, table), Hwm(row_id, digest).encode(), qos=1,
                                   retain=True)
        if wait:
            info.wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Watcher:
    """The desk's view of statuses (a paho client as ``desk``)."""

    def __init__(self, broker) -> None:
        self.status: dict[str, str] = {}
        self.heartbeats: list[dict] = []
        url = BrokerUrl.parse(broker.url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-desk", protocol=mqtt.MQTTv5)
        self.client.username_pw_set("desk", broker.passwords["desk"])
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe("fleet/#", qos=1)
        self.client.connect(url.host, url.port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        parsed = protocol.parse_topic(message.topic)
        if parsed is None or not message.payload:
            return
        _, station, rest = parsed
        if rest == ("status",):
            self.status[station] = json.loads(message.payload)["state"]
        elif rest == ("heartbeat",):
            self.heartbeats.append(json.loads(message.payload))

    def send_ack(self, station: str, ack: DeskAck) -> None:
        self.client.publish(protocol.station_topic(SITE, station, "desk", "ack"), ack.encode(), qos=1) \
            .wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publisher_for(db: Path, broker, station: str = "st-a", **kwargs) -> Publisher:
    return Publisher(db, broker=BrokerUrl.parse(broker.url), site=SITE, station_id=station,
                     password=broker.passwords[station], stall_s=3.0, **kwargs)


# ---------------------------------------------------------------------- the outbox (no network)
def test_the_outbox_gets_every_published_row_in_the_rows_own_transaction(tmp_path):
    assert OUTBOX_TABLES == protocol.PUBLISHED_TABLES
    db = tmp_path / "s.db"
    with EventStore(db, outbox=True) as store:
        sid = store.record_screening(fever(1), calibration_id="c", model_sha256=None, blackbody_error_c=0.1,
                                     source="cam")
        store.acknowledge(sid, "referred", operator="guard-1")
        log_some(store, 2)
        with pytest.raises(StationError):
            store.acknowledge(999, "referred")  # rolled back: no row, no outbox row
        for table in ("screenings", "acknowledgements", "system_events"):
            rows = list(store.db.query(f"SELECT * FROM {table} ORDER BY id"))
            queued = [json.loads(j) for _, j in store.outbox_rows(table)]
            assert [{k: v for k, v in q.items() if v is not None} for q in queued] == \
                [{k: v for k, v in r.items() if v is not None} for r in rows]
            assert verify_chain(table, queued) is None  # the hashes travel with the rows
        assert store.outbox_count() == 4
        assert store.prune_outbox("system_events", 1) == 1
        assert [i for i, _ in store.outbox_rows("system_events")] == [2]


def test_rows_logged_without_the_fleet_are_queued_when_it_is_back_and_audits_write_nothing(tmp_path):
    db = tmp_path / "s.db"
    with EventStore(db) as store:
        log_some(store, 3)
        assert store.outbox_count() == 0
    with EventStore(db, outbox=True) as store:
        assert [i for i, _ in store.outbox_rows("system_events")] == [1, 2, 3]
        store.prune_outbox("system_events", 3)
    with EventStore(db, outbox=True) as store:  # pruned rows are not queued again
        assert store.outbox_count() == 0
        log_some(store, 1, start=4)
    before = db.read_bytes()
    audit = EventStore.open_read_only(db)
    assert audit.outbox_count() == 1
    with pytest.raises(StationError):
        audit.prune_outbox("system_events", 9)
    audit.close()
    assert db.read_bytes() == before


# ---------------------------------------------------------------------- against the broker
def test_rows_written_while_the_broker_is_down_arrive_in_order_and_leave_only_after_a_mark(tmp_path, fleet_broker):
    db = tmp_path / "s.db"
    store = EventStore(db, outbox=True)
    fleet_broker.stop()
    publisher = publisher_for(db, fleet_broker).start()
    try:
        log_some(store, 30)
        time.sleep(0.5)
        assert store.outbox_count() == 30
        fleet_broker.start()
        ingester = Ingester(fleet_broker, marking=False)
        try:
            wait_for(lambda: ingester.contiguous("st-a", "system_events") == 30, 20, "the 30 rows")
            ids = [i for t, i in ingester.arrivals if t == "system_events"]
            assert ids[:30] == list(range(1, 31)), "sent in id order"
            time.sleep(0.5)
            assert store.outbox_count() == 30, "a PUBACK is not delivery: nothing pruned without a mark"
            ingester.mark(SITE, "st-a", "system_events")
            wait_for(lambda: store.outbox_count() == 0, 10, "the pruning")
            rows = list(ingester.rows[("st-a", "system_events")][i] for i in range(1, 31))
            assert verify_chain("system_events", rows) is None
            assert [_non_null(r) for r in rows] == [_non_null(json.loads(j)) for j in _all_rows(db)]
        finally:
            ingester.close()
    finally:
        publisher.close()
        store.close()


def _non_null(row: dict) -> dict:
    return {k: v for k, v in row.items() if v is not None}


def _all_rows(db: Path) -> list[str]:
    with EventStore.open_read_only(db) as store:
        return [json.dumps(r) for r in store.db.query("SELECT * FROM system_events ORDER BY id")]


def test_a_mark_below_the_outbox_head_prunes_only_what_it_covers(tmp_path, fleet_broker):
    db = tmp_path / "s.db"
    store = EventStore(db, outbox=True)
    ingester = Ingester(fleet_broker, marking=False)
    publisher = publisher_for(db, fleet_broker).start()
    try:
        log_some(store, 5)
        wait_for(lambda: ingester.contiguous("st-a", "system_events") == 5, 10, "the rows")
        ingester.mark(SITE, "st-a", "system_events", 2)
        wait_for(lambda: store.outbox_count() == 3, 10, "pruning through 2")
        time.sleep(0.5)
        assert [i for i, _ in store.outbox_rows("system_events")] == [3, 4, 5]
        # The mark stays below what was sent: after the stall time the rows above it go again.
        before = publisher.sent_rows
        wait_for(lambda: publisher.sent_rows >= before + 3, 10, "the resend above a stuck mark")
        ingester.mark(SITE, "st-a", "system_events")
        wait_for(lambda: store.outbox_count() == 0, 10, "the rest pruned")
    finally:
        publisher.close()
        ingester.close()
        store.close()


def test_a_reconnect_resends_everything_above_the_retained_mark(tmp_path, fleet_broker):
    db = tmp_path / "s.db"
    store = EventStore(db, outbox=True)
    ingester = Ingester(fleet_broker, marking=False)
    publisher = publisher_for(db, fleet_broker).start()
    try:
        log_some(store, 4)
        wait_for(lambda: ingester.contiguous("st-a", "system_events") == 4, 10, "the rows")
        ingester.mark(SITE, "st-a", "system_events", 1)
        wait_for(lambda: store.outbox_count() == 3, 10, "pruning through 1")
        # Killed: every session, retained mark and queued message since the last autosave is gone.
        fleet_broker.kill()
        ingester.marking = True  # (it keeps what it stored, as the real one keeps it in PostgreSQL)
        fleet_broker.start()
        wait_for(lambda: store.outbox_count() == 0, 30, "the resend and its marks")
        assert set(ingester.rows[("st-a", "system_events")]) >= {2, 3, 4}
    finally:
        publisher.close()
        ingester.close()
        store.close()


def test_desk_acknowledgements_are_logged_as_the_stations_own_and_published(tmp_path, fleet_broker):
    db = tmp_path / "s.db"
    store = EventStore(db, outbox=True)
    sid = store.record_screening(fever(1), calibration_id="c", model_sha256=None, blackbody_error_c=None,
                                 source="cam")
    seen: list[tuple[DeskAck, int]] = []
    ingester = Ingester(fleet_broker)
    desk = Watcher(fleet_broker)
    publisher = publisher_for(db, fleet_broker, on_desk_ack=lambda ack, row: seen.append((ack, row))).start()
    try:
        assert publisher.wait_connected(10)
        wait_for(lambda: desk.status.get("st-a") == "online", 10, "status online")
        ack = DeskAck(sid, "referred", "Maria", "sent to the nurse")
        desk.send_ack("st-a", ack)
        desk.send_ack("st-a", ack)  # delivered twice: logged once
        wait_for(lambda: ingester.contiguous("st-a", "acknowledgements") == 1, 10, "the acknowledgement row")
        time.sleep(0.5)
        rows = store.acknowledgements(sid)
        assert [(r["operator"], r["action"], r["note"]) for r in rows] == [("desk:Maria", "referred",
                                                                            "sent to the nurse")]
        assert seen == [(ack, rows[0]["id"])]
        wait_for(lambda: desk.heartbeats, 10, "a heartbeat")
        assert desk.heartbeats[0]["version"] and "outbox_rows" in desk.heartbeats[0]
    finally:
        publisher.close()
        wait_for(lambda: desk.status.get("st-a") == "offline", 10, "offline after a clean close")
        desk.close()
        ingester.close()
        store.close()


_KILLED_STATION = """
import sys, time
from pathlib import Path
from station.fleet.protocol import BrokerUrl
from station.fleet.publisher import Publisher
p = Publisher(Path(sys.argv[1]), broker=BrokerUrl.parse(sys.argv[2]), site="north", station_id="st-b",
              password=sys.argv[3]).start()
p.wait_connected(10)
print("connected", flush=True)
time.sleep(600)
"""


def test_the_last_will_says_offline_when_the_station_is_killed(tmp_path, fleet_broker):
    db = tmp_path / "s.db"
    EventStore(db, outbox=True).close()
    desk = Watcher(fleet_broker)
    child = subprocess.Popen([sys.executable, "-c", _KILLED_STATION, str(db), fleet_broker.url,
                              fleet_broker.passwords["st-b"]], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "connected"
        wait_for(lambda: desk.status.get("st-b") == "online", 10, "status online")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        wait_for(lambda: desk.status.get("st-b") == "offline", 10, "the last will")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        desk.close()


# ---------------------------------------------------------------------- settings: one line each
def test_fleet_settings_errors_are_one_line(tmp_path):
    creds = tmp_path / "fleet.toml"
    write_credentials(creds, "s3cret")
    assert read_credentials(creds).password == "s3cret"
    settings = fleet_settings(None, url="mqtt://h:1884", site="north", station_id="st-a", credentials=creds)
    assert settings is not None and settings.broker.port == 1884 and settings.password == "s3cret"
    assert fleet_settings(None) is None
    creds.chmod(0o644)
    bad = [
        dict(url="http://h", site="n", station_id="a", credentials=creds),
        dict(url="mqtt://h", site="n/x", station_id="a", credentials=creds),
        dict(url="mqtt://h", site="n", station_id="a", credentials=creds),  # mode 0644
        dict(url="mqtt://h", site="n", station_id="a", credentials=tmp_path / "nope.toml"),
        dict(url="mqtt://h", station_id="a", credentials=creds),
        dict(site="n"),
    ]
    for kwargs in bad:
        with pytest.raises(StationError) as caught:
            fleet_settings(None, **kwargs)
        assert "\n" not in str(caught.value), str(caught.value)
    (tmp_path / "empty.toml").write_text("user = 'x'\n")
    (tmp_path / "empty.toml").chmod(0o600)
    with pytest.raises(StationError, match="password"):
        read_credentials(tmp_path / "empty.toml")


def test_the_fleet_section_of_the_settings_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[fleet]\nbroker = "mqtt://desk.local"\nsite = "north"\nstation_id = "st-a"\n'
                    'credentials = "/etc/fleet.toml"\n')
    config = load_config(path)
    assert config.fleet is not None and config.fleet.broker_url.host == "desk.local"
    assert config.fleet.share_alarm_images is False
    for text, word in (('[fleet]\nbroker = "ftp://x"\nsite = "n"\nstation_id = "a"\ncredentials = "c"\n', "broker"),
                       ('[fleet]\nbroker = "mqtt://x"\nsite = "n"\nstation_id = "a"\n', "credentials"),
                       ('[fleet]\nbroker = "mqtt://x"\nsite = "n"\nstation_id = "a"\ncredentials = "c"\nx = 1\n',
                        "unknown key"),
                       ('fleet = 3\n', "fleet")):
        path.write_text(text)
        with pytest.raises(StationError, match=word) as caught:
            load_config(path)
        assert "\n" not in str(caught.value)


def test_station_run_refuses_bad_fleet_options_in_one_line(tmp_path):
    result = CliRunner().invoke(main, ["run", "--headless", "--recording", str(tmp_path), "--db",
                                       str(tmp_path / "s.db"), "--fleet", "mqtt://h", "--site", "north"])
    assert "--station-id" in one_line_error(result)
    result = CliRunner().invoke(main, ["run", "--headless", "--recording", str(tmp_path), "--db",
                                       str(tmp_path / "s.db"), "--fleet", "nope://h", "--site", "north",
                                       "--station-id", "st-a", "--fleet-credentials", str(tmp_path / "c")])
    assert "broker URL" in one_line_error(result)
