"""The fleet's delivery guarantees 1-3, end to end, and ``station fleet demo``: real processes only.

Every station here is ``station run --recording ... --headless --fast --fleet ...`` in a subprocess with the
real face model, the ingester is ``station fleet ingest`` in a subprocess, the broker and the fleet log are
the real Mosquitto and PostgreSQL (the ``fleet_broker`` and ``fleet_postgres`` fixtures), and the chains
are checked with ``station fleet verify`` in a subprocess. Nothing is mocked.

How an hour of station time fits in a test: the station's log gets an hour of traffic -- a visitor every
4 s (900 screenings, every tenth an alarm that a guard acknowledges) and a system event a minute, each
with its wall time over the last hour -- written by the station's own :class:`EventStore` with its outbox,
exactly as the engine logs rows while the broker is out of reach; then the demo recording (33 s of
station time) is replayed ``--fast`` (about 10 s). So the station goes back to the fleet with an hour's
backlog (about 1 100 rows) in its outbox, which is what the hour changes for delivery; the reconnect
back-off is capped at 30 s, so a longer wait adds nothing to test.

Guarantees 4 (another station's topic refused, an edited row caught) and 5 (the desk) are tested in
``test_fleet_security.py``, ``test_fleet_central.py`` and ``test_fleet_desk.py``.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from station.cli.fleet_demo import (
    DEMO_RECORDING,
    caught_up,
    ingest_argv,
    prepare_fleet_log,
    spawn,
    station_argv,
    station_command,
    station_counts,
    stop_process,
    write_user_credentials,
)
from station.fleet.central import payload_text
from station.fleet.protocol import PUBLISHED_TABLES, BrokerUrl, RowMessage, row_topic
from station.log.store import EventStore
from station.types import ScreeningDecision, SystemEvent

REPO = Path(__file__).resolve().parents[1]
SITE = "north"
STATION = "st-a"


# ---------------------------------------------------------------------- the fleet's processes
class Fleet:
    """The servers of the fixtures, the fleet log migrated, and the ingester and stations as subprocesses."""

    def __init__(self, broker, postgres, folder: Path) -> None:
        self.broker, self.postgres, self.folder = broker, postgres, folder
        prepare_fleet_log(postgres.dsn())
        self.auditor = postgres.dsn("auditor")
        self.ingester_cred = write_user_credentials(folder / "ingester.toml", "ingester", broker.passwords["ingester"])
        self.ingester_log = folder / "ingester.log"
        self.ingester: subprocess.Popen | None = None
        self.starts = 0
        self.db = folder / f"{STATION}.db"
        self.station_cred = write_user_credentials(folder / f"{STATION}.toml", STATION, broker.passwords[STATION])
        self.station_log = folder / f"{STATION}.log"

    def start_ingester(self) -> None:
        self.ingester = spawn(ingest_argv(self.broker.url, self.postgres.dsn("ingester"), self.ingester_cred),
                              self.ingester_log)
        self.starts += 1
        wait_for(lambda: self.ingester_log.read_text().count("subscribed fleet/") >= self.starts
                 or self.ingester.poll() is not None, 30, "the ingester's subscription")
        assert self.ingester.poll() is None, self.ingester_log.read_text()

    def station(self) -> subprocess.Popen:
        return spawn(station_argv(DEMO_RECORDING, self.db, self.broker.url, SITE, STATION, self.station_cred,
                                  fast=True), self.station_log)

    def run_station(self) -> None:
        process = self.station()
        assert process.wait(120) == 0, self.station_log.read_text()[-3000:]

    def fleet_rows(self) -> dict[str, list[tuple[int, str, str]]]:
        with psycopg.connect(self.postgres.dsn()) as conn:
            rows = conn.execute("SELECT table_name, row_id, row_hash, payload FROM fleet_rows WHERE station_id = %s "
                                "ORDER BY table_name, received_at, row_id", (STATION,)).fetchall()
        found: dict[str, list[tuple[int, str, str]]] = {}
        for table, row_id, digest, payload in rows:
            found.setdefault(table, []).append((int(row_id), digest, payload))
        return found

    def wait_caught_up(self, timeout: float = 40.0) -> None:
        wait_for(lambda: caught_up(self.auditor, {STATION: self.db}), timeout,
                 f"the fleet log to hold every row of the station's log ({station_counts(self.db)})")

    def check_everything_arrived_once_in_order(self) -> None:
        """Every row of the station's log is in the fleet log once, as the station wrote it, in row order;
        ``station fleet verify`` passes; the counts per table are the station's."""
        station = station_rows(self.db)
        central = self.fleet_rows()
        assert {t: len(r) for t, r in central.items()} == {t: len(r) for t, r in station.items() if r}
        for table, rows in station.items():
            if not rows:
                continue
            got = central[table]
            # received in row order (received_at, then row id), every row once, byte for byte the station's
            assert [r[0] for r in got] == [row["id"] for row in rows], f"{table}: not in order or not once"
            assert [(r[1], r[2]) for r in got] == [(row["row_hash"], payload_text(row)) for row in rows], table
        with psycopg.connect(self.postgres.dsn()) as conn:
            total, distinct = conn.execute("SELECT count(*), count(DISTINCT (table_name, row_id)) FROM fleet_rows "
                                           "WHERE station_id = %s", (STATION,)).fetchone()
        assert total == distinct == sum(len(r) for r in station.values())
        verify = subprocess.run([*station_command(), "fleet", "verify", "--postgres", self.auditor], cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "BROKEN" not in verify.stdout

    def close(self) -> None:
        if self.ingester is not None and self.ingester.poll() is None:
            code = stop_process(self.ingester, 20)
            assert code == 0, self.ingester_log.read_text()[-3000:]


@pytest.fixture
def fleet(fleet_broker, fleet_postgres, tmp_path, face_model):
    f = Fleet(fleet_broker, fleet_postgres, tmp_path)
    try:
        yield f
    finally:
        if f.ingester is not None and f.ingester.poll() is None:
            f.ingester.kill()
            f.ingester.wait(10)


def wait_for(condition, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def station_rows(db: Path) -> dict[str, list[dict]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return {t: [dict(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY id")] for t in PUBLISHED_TABLES}
    finally:
        conn.close()


def log_an_hour(db: Path) -> int:
    """An hour of a busy entrance in the station's log, written by its store with the outbox (as the engine
    does while the broker is out of reach): a visitor every 4 s, every tenth an alarm acknowledged by the
    guard, a system event a minute. Returns the rows written."""
    start = datetime.now(UTC) - timedelta(hours=1)
    rows = 0
    with EventStore(db, outbox=True, clock=lambda: datetime.now(UTC)) as store:
        for k in range(900):
            t = 4.0 * k
            wall = start + timedelta(seconds=t)
            level = "fever" if k % 10 == 9 else "normal"
            body = 38.6 if level == "fever" else 36.8
            sid = store.record_screening(ScreeningDecision(k + 1, t, t + 1.5, body - 2.0, body, level),
                                         calibration_id="north-1@2026-11-01", model_sha256=None,
                                         blackbody_error_c=0.1, source="cameras", wall_time=wall)
            rows += 1
            if level == "fever":
                store.acknowledge(sid, "referred", operator="guard-1")
                rows += 1
            if k % 15 == 0:
                store.record_system_event(SystemEvent("note", t, json.dumps({"minute": k // 15})), wall_time=wall)
                rows += 1
    return rows


# ---------------------------------------------------------------------- guarantee 1
def test_a_station_cut_off_for_an_hour_loses_nothing_and_its_chains_verify(fleet):
    """(1) The broker stopped: an hour's rows and a replay go to the outbox; the broker back, the station
    returns (the next run connects) and re-sends everything above the mark: every row, in order, once."""
    fleet.start_ingester()
    fleet.broker.stop()
    hour = log_an_hour(fleet.db)
    fleet.run_station()  # cut off: its publisher never reaches the broker, its rows wait in the outbox
    assert sum(station_counts(fleet.db).values()) > hour
    with psycopg.connect(fleet.postgres.dsn()) as conn:
        assert conn.execute("SELECT count(*) FROM fleet_rows").fetchone()[0] == 0
    fleet.broker.start()
    fleet.run_station()  # back: it reads the marks, re-sends the backlog, then screens its replay
    fleet.wait_caught_up()
    fleet.check_everything_arrived_once_in_order()
    fleet.close()


# ---------------------------------------------------------------------- guarantee 2
def test_the_broker_killed_mid_stream_and_restarted_loses_nothing(fleet):
    """(2) SIGKILL of the broker while the station streams its backlog (Mosquitto loses what it held in
    memory: queued rows, retained marks, sessions), then restarted: the station and the ingester reconnect,
    the station re-sends everything above the mark it reads back, nothing is lost."""
    fleet.start_ingester()
    log_an_hour(fleet.db)
    station = fleet.station()
    try:
        wait_for(lambda: sum(len(r) for r in fleet.fleet_rows().values()) > 0, 60, "the first rows in PostgreSQL")
        fleet.broker.kill()
        held = sum(len(r) for r in fleet.fleet_rows().values())
        assert held < sum(station_counts(fleet.db).values()) or station.poll() is None  # mid-stream
        time.sleep(0.5)
        fleet.broker.start()
        assert station.wait(120) == 0, fleet.station_log.read_text()[-3000:]
    finally:
        stop_process(station, 10)
    fleet.wait_caught_up()
    fleet.check_everything_arrived_once_in_order()
    fleet.close()
    assert "lost the broker" in fleet.ingester_log.read_text()


# ---------------------------------------------------------------------- guarantee 3
def echo_every_row(broker, db: Path) -> int:
    """Publish every row of the station's log once more, as the station's MQTT user on a second connection
    (QoS 1, every PUBACK awaited): with the station's own sending, every message is delivered twice."""
    url = BrokerUrl.parse(broker.url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{STATION}-echo", protocol=mqtt.MQTTv5)
    client.username_pw_set(STATION, broker.passwords[STATION])
    client.connect(url.host, url.port)
    client.loop_start()
    try:
        infos = [client.publish(row_topic(SITE, STATION, table), RowMessage(table, row).encode(), qos=1)
                 for table, rows in station_rows(db).items() for row in rows]
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published()
        return len(infos)
    finally:
        client.disconnect()
        client.loop_stop()


def test_the_ingester_killed_mid_batch_with_every_message_twice_stores_each_row_once(fleet):
    """(3) Every row is sent twice (the station, and a second connection of the station's user re-sending
    its whole log), the ingester is SIGKILLed while rows stream in (a batch inserted and not committed, or
    committed and not acknowledged) and restarted: each row once, as the station wrote it, none missing."""
    fleet.start_ingester()
    log_an_hour(fleet.db)
    echoed: list[int] = []
    echo = threading.Thread(target=lambda: echoed.append(echo_every_row(fleet.broker, fleet.db)), daemon=True)
    station = fleet.station()
    try:
        echo.start()
        wait_for(lambda: sum(len(r) for r in fleet.fleet_rows().values()) >= 100, 60, "rows in PostgreSQL")
        fleet.ingester.send_signal(signal.SIGKILL)
        assert fleet.ingester.wait(10) == -signal.SIGKILL
        held = sum(len(r) for r in fleet.fleet_rows().values())
        echo.join(60)
        assert echoed, "the echo did not finish"
        fleet.start_ingester()
        assert station.wait(120) == 0, fleet.station_log.read_text()[-3000:]
    finally:
        stop_process(station, 10)
    assert held < sum(station_counts(fleet.db).values()), "the ingester was killed after the last row"
    echoed.append(echo_every_row(fleet.broker, fleet.db))  # the replay's rows twice too
    fleet.wait_caught_up()
    time.sleep(1.0)  # the second copies land (and are refused by the primary key) after the first
    fleet.check_everything_arrived_once_in_order()
    fleet.close()
    assert "duplicates" in fleet.ingester_log.read_text()


# ---------------------------------------------------------------------- station fleet demo
def _our_servers(folder_hint: str) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if folder_hint in line]


def test_fleet_demo_runs_three_stations_into_postgres_and_leaves_nothing_running(tmp_path, face_model):
    folder = Path("/tmp") / f"fleet-demo-test-{time.monotonic_ns()}"
    try:
        done = subprocess.run([sys.executable, "-m", "station.cli.main", "fleet", "demo",
                               "--no-desk", "--seconds", "15", "--every", "5", "--folder", str(folder)],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        out = done.stdout
        # the final status table and the verification name all three stations, chains ok
        final = out[out.index("stopping:"):]
        for station in ("st-a", "st-b", "st-c"):
            lines = [line for line in final.splitlines() if line.startswith(station)]
            assert lines and all(line.rstrip().endswith("ok") for line in lines), final
            assert any("system_events" in line for line in lines), final
        assert "BROKEN" not in out
        assert not _our_servers(str(folder)), "a server or station of the demo is still running"
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)
