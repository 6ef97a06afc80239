"""The fleet's central side against a real PostgreSQL and a real Mosquitto: schema, roles, ingester, verify.

No mocks: each test gets its own broker and its own database in one private cluster (the servers of
:mod:`station.fleet.servers`), stations publish real chained rows (hashed with
:func:`station.log.chain.row_hash`) as their own MQTT users, and the ingester runs as it does in service.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from click.testing import CliRunner
from fleet_servers import FLEET_PASSWORDS as PASSWORDS

from station.cli.main import main
from station.fleet import central
from station.fleet.credentials import write_credentials
from station.fleet.ingester import Ingester
from station.fleet.protocol import Hwm, RowMessage, hwm_topic, row_topic
from station.log.chain import GENESIS, row_hash

REPO = Path(__file__).resolve().parents[1]
SITE = "hq"


# ---------------------------------------------------------------------- servers
@pytest.fixture
def broker(fleet_broker):
    return fleet_broker


# ---------------------------------------------------------------------- helpers
def chained_rows(n: int, start: int = 1, prev: str = GENESIS, kind: str = "test") -> list[dict]:
    """``n`` system_events rows as a station logs them: ids from ``start``, each hashed after the one before."""
    rows = []
    for i in range(start, start + n):
        row = {"id": i, "kind": kind, "t": i * 0.5, "wall_time": f"2030-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
               "detail": json.dumps({"n": i})}
        row["prev_hash"] = prev
        row["row_hash"] = prev = row_hash(prev, row)
        rows.append(row)
    return rows


def connected(b, user: str, client_id: str | None = None):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"{user}-{time.monotonic_ns()}",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(user, PASSWORDS[user])
    client.connect("127.0.0.1", b.port)
    client.loop_start()
    return client


def publish(b, station: str, rows: list[dict], table: str = "system_events", times: int = 1,
            raw: list[bytes] = ()) -> None:
    """Publish the rows as ``station`` (QoS 1, each ``times`` times), waiting for every PUBACK."""
    client = connected(b, station)
    try:
        infos = [client.publish(row_topic(SITE, station, table), payload, qos=1) for payload in raw]
        for _ in range(times):
            for row in rows:
                infos.append(client.publish(row_topic(SITE, station, table), RowMessage(table, row).encode(), qos=1))
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


class MarkWatcher:
    """The retained high-water marks a station reads back (as the station's own MQTT user)."""

    def __init__(self, b, station: str, table: str = "system_events"):
        self.marks: list[Hwm] = []
        self.client = connected(b, station)
        self.client.on_message = lambda _c, _u, m: self.marks.append(Hwm.decode(m.payload))
        self.client.subscribe(hwm_topic(SITE, station, table), qos=1)

    def wait_for(self, row_id: int, timeout: float = 20.0) -> Hwm:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.marks and self.marks[-1].row_id == row_id:
                return self.marks[-1]
            time.sleep(0.02)
        raise AssertionError(f"no mark {row_id}; marks seen: {[m.row_id for m in self.marks][-10:]}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class IngesterThread:
    def __init__(self, b, dsn: str, client_id: str = "fleet-ingester"):
        self.ingester = Ingester(b.url, dsn, username="ingester", password=PASSWORDS["ingester"], client_id=client_id)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ingester.subscribed.wait(20), self.error

    def _run(self) -> None:
        try:
            self.ingester.run()
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def stop(self) -> None:
        self.ingester.stop()
        self.thread.join(20)
        assert not self.thread.is_alive()
        assert self.error is None, self.error


def stored(dsn: str, station: str, table: str = "system_events") -> list[tuple[int, str]]:
    with psycopg.connect(dsn) as conn:
        return [(int(a), str(b)) for a, b in conn.execute(
            "SELECT row_id, row_hash FROM fleet_rows WHERE station_id = %s AND table_name = %s ORDER BY row_id",
            (station, table)).fetchall()]


def verify(dsn: str):
    return CliRunner().invoke(main, ["fleet", "verify", "--postgres", dsn])


# ---------------------------------------------------------------------- schema and roles
def test_migrations_are_idempotent_and_nobody_may_update_or_delete(fleet_db):
    assert fleet_db["applied"] == ["001_fleet_log", "002_roles", "003_snapshots", "004_anchors"]
    with psycopg.connect(fleet_db["owner"]) as conn:
        assert central.migrate(conn) == []  # run at every start: nothing to do the second time
        central.ensure_schema(conn)
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [1, 2, 3, 4]
    row = chained_rows(1)[0]
    with psycopg.connect(fleet_db["ingester"]) as conn:
        central.ensure_schema(conn)  # current: the ingester, which may not migrate, only checks
        conn.execute("INSERT INTO fleet_rows (station_id, site, table_name, row_id, prev_hash, row_hash, wall_time, "
                     "payload) VALUES ('st-a', 'hq', 'system_events', 1, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                     (row["prev_hash"], row["row_hash"], row["wall_time"], central.payload_text(row)))
        conn.commit()
        assert central.high_water_mark(conn.cursor(), "st-a", "system_events") == (1, row["row_hash"])
        for sql in ("UPDATE fleet_rows SET wall_time = 'x'", "DELETE FROM fleet_rows", "SELECT payload FROM fleet_rows",
                    "TRUNCATE fleet_rows", "INSERT INTO fleet_exports (operator, filters, format, stations, "
                    "row_count, path, sha256) VALUES ('a', '{}', 'csv', '', 0, 'p', 's')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
            conn.rollback()
    with psycopg.connect(fleet_db["auditor"]) as conn:
        assert conn.execute("SELECT count(*) FROM fleet_rows").fetchone()[0] == 1
        for sql in ("INSERT INTO fleet_rows (station_id, site, table_name, row_id, prev_hash, row_hash, wall_time, "
                    "payload) VALUES ('st-a', 'hq', 'system_events', 2, 'a', 'b', 'c', '{}')",
                    "UPDATE fleet_rows SET payload = '{}'", "DELETE FROM fleet_rows",
                    "INSERT INTO fleet_desk_acks (site, station_id, screening_id, action, operator) "
                    "VALUES ('hq', 'st-a', 1, 'referred', 'x')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
            conn.rollback()
        conn.execute("INSERT INTO fleet_exports (operator, filters, format, stations, row_count, path, sha256) "
                     "VALUES ('a', '{}', 'csv', '', 0, 'p', 's')")  # the auditor's one INSERT
        conn.commit()
    with psycopg.connect(fleet_db["desk"]) as conn:
        conn.execute("INSERT INTO fleet_desk_acks (site, station_id, screening_id, action, operator) "
                     "VALUES ('hq', 'st-a', 1, 'referred', 'desk-1')")
        conn.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE fleet_desk_acks SET operator = 'someone else'")
    with psycopg.connect(fleet_db["owner"]) as conn:  # not even the owner: the trigger refuses
        for sql in ("UPDATE fleet_rows SET wall_time = 'x'", "DELETE FROM fleet_rows", "TRUNCATE fleet_rows",
                    "DELETE FROM fleet_exports", "UPDATE fleet_desk_acks SET operator = 'x'"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(sql)
            conn.rollback()


# ---------------------------------------------------------------------- ingest
def test_rows_sent_twice_land_once_and_a_gap_holds_the_mark_back(broker, fleet_db):
    rows = chained_rows(6)
    watcher = MarkWatcher(broker, "st-a")
    ingester = IngesterThread(broker, fleet_db["ingester"])
    try:
        # rows 1, 2, 4, 5 (every one twice), and junk that must be skipped in one line, not stop the ingester
        publish(broker, "st-a", [rows[0], rows[1], rows[3], rows[4]], times=2,
                raw=[b"not json", b'{"v":1,"table":"screenings","row":{}}',
                     RowMessage("screenings", rows[0]).encode()])  # a table the topic does not name
        mark = watcher.wait_for(2)
        assert mark == Hwm(2, rows[1]["row_hash"])  # the gap at 3 holds it back
        assert stored(fleet_db["owner"], "st-a") == [(r["id"], r["row_hash"]) for r in (rows[0], rows[1], rows[3],
                                                                                            rows[4])]
        gap = verify(fleet_db["auditor"])
        assert gap.exit_code == 3, gap.output
        assert "st-a" in gap.output and "row 3 missing" in gap.output
        publish(broker, "st-a", [rows[2], rows[5], rows[2]])
        assert watcher.wait_for(6) == Hwm(6, rows[5]["row_hash"])
        assert stored(fleet_db["owner"], "st-a") == [(r["id"], r["row_hash"]) for r in rows]
        late = MarkWatcher(broker, "st-a")  # retained: a station connecting later reads the mark back
        try:
            assert late.wait_for(6) == Hwm(6, rows[5]["row_hash"])
        finally:
            late.close()
        stats = ingester.ingester.stats
        assert stats.rejected == 3 and stats.inserted == 6 and stats.duplicates == 5
    finally:
        ingester.stop()
        watcher.close()
    # the mark is computed from PostgreSQL: an ingester restarted publishes it again, unchanged
    with psycopg.connect(fleet_db["owner"]) as conn:
        assert central.high_water_mark(conn.cursor(), "st-a", "system_events") == (6, rows[5]["row_hash"])
        assert central.high_water_mark(conn.cursor(), "st-a", "system_events", (2, rows[1]["row_hash"])) == \
            (6, rows[5]["row_hash"])
    clean = verify(fleet_db["auditor"])
    assert clean.exit_code == 0, clean.output
    assert "ok" in clean.output


def _ingest_subprocess(b, dsn: str, cred: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "station.cli.main", "fleet", "ingest", "--broker", b.url,
                             "--postgres", dsn, "--credentials", str(cred)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "ab"))  # noqa: SIM115 - the child owns it


def _wait_subscribed(log: Path, times: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count("subscribed fleet/") >= times:
            return
        time.sleep(0.05)
    raise AssertionError(log.read_text() if log.exists() else "the ingester logged nothing")


@pytest.mark.slow
def test_ingester_killed_mid_stream_and_restarted_loses_nothing_and_doubles_nothing(broker, fleet_db, tmp_path):
    cred = tmp_path / "ingester.cred"
    write_credentials(cred, PASSWORDS["ingester"], username="ingester")
    log = tmp_path / "ingester.log"
    rows = chained_rows(1500)
    first = _ingest_subprocess(broker, fleet_db["ingester"], cred, log)
    try:
        _wait_subscribed(log, 1)  # from then on the broker queues every row for the ingester's session
        watcher = MarkWatcher(broker, "st-b")
        publisher = threading.Thread(target=publish, args=(broker, "st-b", rows), daemon=True)
        publisher.start()
        deadline = time.monotonic() + 60
        while len(stored(fleet_db["owner"], "st-b")) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)  # mid-stream: rows in flight, some committed and not acknowledged
        first.wait(10)
        held = len(stored(fleet_db["owner"], "st-b"))
        assert 0 < held < len(rows), log.read_text()
        publisher.join(60)  # the broker queues the rest for the ingester's persistent session
        second = _ingest_subprocess(broker, fleet_db["ingester"], cred, log)
        try:
            _wait_subscribed(log, 2)
            # the rows the broker kept for the session arrive by themselves; Mosquitto keeps at most
            # max_queued_messages (1000 by default) per absent client, so the station, reconnecting as the
            # protocol has it, re-sends everything above the retained mark it reads back
            deadline = time.monotonic() + 30
            while len(stored(fleet_db["owner"], "st-b")) <= held and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(stored(fleet_db["owner"], "st-b")) > held, "the session's queued rows never came"
            time.sleep(1.0)
            mark = watcher.marks[-1].row_id
            publish(broker, "st-b", [r for r in rows if r["id"] > mark])
            watcher.wait_for(len(rows), timeout=60)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0, log.read_text()
        watcher.close()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert stored(fleet_db["owner"], "st-b") == [(r["id"], r["row_hash"]) for r in rows]
    with psycopg.connect(fleet_db["owner"]) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT row_id) FROM fleet_rows").fetchone() == (1500, 1500)
    assert verify(fleet_db["auditor"]).exit_code == 0


def test_fleet_verify_names_an_edited_row(broker, fleet_db):
    rows = chained_rows(5)
    watcher = MarkWatcher(broker, "st-c")
    ingester = IngesterThread(broker, fleet_db["ingester"])
    try:
        publish(broker, "st-c", rows)
        watcher.wait_for(5)
    finally:
        ingester.stop()
        watcher.close()
    assert verify(fleet_db["auditor"]).exit_code == 0
    status = CliRunner().invoke(main, ["fleet", "status", "--postgres", fleet_db["auditor"]])
    assert status.exit_code == 0, status.output
    assert "st-c" in status.output and "ok" in status.output
    # The trigger refuses the edit even to the owner; an attacker with superuser rights disables it first.
    with psycopg.connect(fleet_db["owner"]) as conn:
        conn.execute("ALTER TABLE fleet_rows DISABLE TRIGGER fleet_rows_append_only")
        conn.execute("UPDATE fleet_rows SET payload = jsonb_set(payload::jsonb, '{kind}', '\"edited\"')::text "
                     "WHERE station_id = 'st-c' AND row_id = 3")
        conn.execute("ALTER TABLE fleet_rows ENABLE TRIGGER fleet_rows_append_only")
        conn.commit()
    edited = verify(fleet_db["auditor"])
    assert edited.exit_code == 3, edited.output
    assert "st-c" in edited.output and "row 3" in edited.output and "edited" in edited.output
    status = CliRunner().invoke(main, ["fleet", "status", "--postgres", fleet_db["auditor"]])
    assert "BROKEN system_events row 3" in status.output


def test_bad_dsn_or_broker_url_is_one_line_and_non_zero():
    for args in (["--broker", "mqtt://127.0.0.1:1", "--postgres", "notadsn"],
                 ["--broker", "http://nowhere", "--postgres", "dbname=x"]):
        result = CliRunner().invoke(main, ["fleet", "ingest", *args])
        assert result.exit_code == 1, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_fleet_export_has_a_station_column_is_deidentified_and_recorded(fleet_db, tmp_path):
    prev, screenings = GENESIS, []
    for i, level in enumerate(("normal", "fever"), start=1):
        row = {"id": i, "track_id": 40 + i, "wall_time": f"2030-01-0{i}T08:00:00.000Z", "level": level,
               "body_c": 36.6 + i, "u95_c": 0.3, "skin_c": 35.0, "site": "canthus", "quality": "[]",
               "snapshot_sha256": "{}" if level == "fever" else None, "prev_hash": prev}
        row = {k: v for k, v in row.items() if v is not None}
        row["row_hash"] = prev = row_hash(prev, row)
        screenings.append(row)
    with psycopg.connect(fleet_db["ingester"]) as conn:
        for station in ("st-a", "st-b"):
            for row in screenings:
                conn.execute("INSERT INTO fleet_rows (station_id, site, table_name, row_id, prev_hash, row_hash, "
                             "wall_time, payload) VALUES (%s, 'hq', 'screenings', %s, %s, %s, %s, %s)",
                             (station, row["id"], row["prev_hash"], row["row_hash"], row["wall_time"],
                              central.payload_text(row)))
        conn.commit()
    out = tmp_path / "fleet.json"
    result = CliRunner().invoke(main, ["fleet", "export", "--postgres", fleet_db["auditor"], "--from", "2030-01-01",
                                       "--to", "2030-01-31", "--format", "json", "--out", str(out), "--level",
                                       "fever", "--operator", "audit-1"])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert [(r["station"], r["id"], r["level"]) for r in doc["screenings"]] == [("st-a", 2, "fever"),
                                                                                 ("st-b", 2, "fever")]
    assert all("track_id" not in r and "snapshot_sha256" not in r and "row_hash" not in r for r in doc["screenings"])
    with psycopg.connect(fleet_db["owner"]) as conn:
        recorded = conn.execute("SELECT operator, format, stations, row_count, sha256, db_user FROM fleet_exports"
                                ).fetchall()
    assert recorded == [("audit-1", "json", "st-a,st-b", 2, hashlib.sha256(out.read_bytes()).hexdigest(), "auditor")]
    assert verify(fleet_db["auditor"]).exit_code == 0
    # the auditors' own command reaches the fleet log the same way, one station chosen, recorded too
    csv_out = tmp_path / "fleet.csv"
    result = CliRunner().invoke(main, ["export", "--postgres", fleet_db["auditor"], "--from", "2030-01-01", "--to",
                                       "2030-01-31", "--format", "csv", "--out", str(csv_out), "--station", "st-b",
                                       "--operator", "audit-2"])
    assert result.exit_code == 0, result.output
    lines = csv_out.read_text().splitlines()
    assert len(lines) == 3 and all(",st-b," in f",{line}," for line in lines[1:])
    with psycopg.connect(fleet_db["owner"]) as conn:
        assert conn.execute("SELECT operator, stations, row_count FROM fleet_exports WHERE operator = 'audit-2'"
                            ).fetchall() == [("audit-2", "st-b", 2)]
    refused = CliRunner().invoke(main, ["export", "--postgres", fleet_db["auditor"], "--from", "2030-01-01", "--to",
                                        "2030-01-31", "--format", "csv", "--out", str(tmp_path / "x.csv"),
                                        "--include-images", "--operator", "audit-2"])
    assert refused.exit_code == 1 and "images stay at each station" in refused.output
