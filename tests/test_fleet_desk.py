"""The security desk: its state's rules without servers, then guarantee 5 against the real Mosquitto and
PostgreSQL with a real (offscreen) window: a silent station shows offline within two keepalives, an alarm
reaches the desk within a second, and an acknowledgement made at the desk reaches the station and the
fleet log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion

from station.errors import StationError
from station.fleet import central
from station.fleet.credentials import Credentials, read_credentials, write_credentials
from station.fleet.desk import Backlog, DeskClient, DeskState, Screening, record_desk_ack
from station.fleet.protocol import BrokerUrl, DeskAck, Heartbeat, RowMessage, station_topic, status_payload
from station.log.chain import GENESIS

REPO = Path(__file__).resolve().parents[1]
SITE = "north"
KEEPALIVE = 1.0  # the tests' keepalive: offline within 2 s instead of 20


def now_iso(offset_s: float = 0.0) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=offset_s)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def screening_row(row_id: int, level: str = "fever", body_c: float | None = 38.9, wall_time: str | None = None,
                  prev: str = GENESIS) -> dict:
    return {"id": row_id, "prev_hash": prev, "row_hash": f"h{row_id:063d}", "wall_time": wall_time or now_iso(),
            "track_id": row_id, "t_first_seen": 1.0, "t_decided": 2.0, "skin_c": 36.9, "body_c": body_c,
            "level": level, "quality": "[]", "calibration_id": "st@1", "model_sha256": "m",
            "blackbody_error_c": 0.05, "recording": "cams", "alarm_id": row_id if level in ("fever", "elevated")
            else None, "body_model": "x", "site": "canthus", "u95_c": 0.3, "snapshot_sha256": None}


def ack_row(row_id: int, screening_id: int) -> dict:
    return {"id": row_id, "prev_hash": GENESIS, "row_hash": f"a{row_id:063d}", "wall_time": now_iso(),
            "screening_id": screening_id, "action": "referred", "thermometer_c": None, "note": "",
            "operator": "guard"}


def beat(**changes) -> Heartbeat:
    values = {"wall_time": now_iso(), "visible_fps": 15.0, "thermal_fps": 8.7, "blackbody_error_c": 0.08,
              "calibration_age_days": 12.0, "storage_fault": None, "outbox_rows": 0, "version": "test"}
    return Heartbeat(**{**values, **changes})


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# ---------------------------------------------------------------------- the state's rules, no servers
def test_a_silent_station_goes_offline_after_two_keepalives_even_if_its_status_says_online():
    clock = Clock()
    state = DeskState(keepalive_s=10, clock=clock)
    state.apply_status(SITE, "st-a", "online", now_iso())
    assert state.tiles["st-a"].online
    clock.t += 5
    state.apply_heartbeat(SITE, "st-a", beat())
    clock.t += 19.9  # 19.9 s after the last heartbeat: still within two keepalives
    assert state.refresh() == [] and state.tiles["st-a"].online
    clock.t += 0.2
    assert state.refresh() == ["st-a"]
    tile = state.tiles["st-a"]
    assert not tile.online and tile.status == "online" and "no heartbeat for 20 s" in tile.offline_reason
    state.apply_heartbeat(SITE, "st-a", beat())  # heard again: back online at once
    assert state.tiles["st-a"].online


def test_a_retained_offline_status_wins_over_a_recent_heartbeat_and_a_never_heard_station_is_offline():
    clock = Clock()
    state = DeskState(keepalive_s=10, clock=clock)
    state.apply_heartbeat(SITE, "st-a", beat())
    assert state.tiles["st-a"].online  # no status seen (yet): the heartbeat alone says it is alive
    state.apply_status(SITE, "st-a", "offline", now_iso())  # the last will
    assert not state.tiles["st-a"].online and "last will" in state.tiles["st-a"].offline_reason
    state.apply_backlog(Backlog(stations=((SITE, "st-b"),)))
    assert not state.tiles["st-b"].online and state.tiles["st-b"].offline_reason == "not heard from yet"


def test_alarms_latch_oldest_first_across_stations_until_the_station_acknowledges_them():
    state = DeskState(keepalive_s=10, clock=Clock())
    state.apply_row(SITE, "st-b", "screenings", screening_row(7, "elevated", 37.8, now_iso(-30)))
    state.apply_row(SITE, "st-a", "screenings", screening_row(1, "fever", 38.9, now_iso(-10)))
    state.apply_row(SITE, "st-a", "screenings", screening_row(2, "normal", 36.8, now_iso(-5)))
    state.apply_row("south", "st-c", "screenings", screening_row(3, "retry", None, now_iso(-60)))
    assert [a.key for a in state.alarms()] == [("st-b", 7), ("st-a", 1)]  # oldest first; no alarm for retry
    assert state.open_alarms("st-a") == 1
    state.apply_row(SITE, "st-a", "acknowledgements", ack_row(1, 1))
    assert [a.key for a in state.alarms()] == [("st-b", 7)]
    # a station back from the broker's outage sends everything above its high-water mark again
    state.apply_row(SITE, "st-a", "screenings", screening_row(1, "fever", 38.9, now_iso(-10)))
    assert [a.key for a in state.alarms()] == [("st-b", 7)]
    assert state.tiles["st-a"].today == {"screened": 2, "fever": 1, "normal": 1}  # counted once
    assert state.counts_today()["screened"] == 4
    # the desk's own acknowledgement releases the alarm at once, before the station's row comes back
    assert state.acknowledged("st-b", 7) and state.alarms() == []


def test_an_acknowledgement_that_arrives_before_its_screening_keeps_it_from_latching():
    state = DeskState(keepalive_s=10, clock=Clock())
    state.apply_row(SITE, "st-a", "acknowledgements", ack_row(1, 4))
    state.apply_row(SITE, "st-a", "screenings", screening_row(4))
    assert state.alarms() == [] and state.is_acknowledged("st-a", 4)


def test_todays_counters_count_only_the_desks_local_day_and_roll_over_at_midnight():
    day = {"today": datetime.now().astimezone().date()}
    state = DeskState(keepalive_s=10, clock=Clock(), today=lambda: day["today"])
    state.apply_row(SITE, "st-a", "screenings", screening_row(1, "normal", 36.7, now_iso()))
    state.apply_row(SITE, "st-a", "screenings", screening_row(2, "normal", 36.7, now_iso(-3 * 86400)))
    assert state.tiles["st-a"].today["screened"] == 1
    assert [s.screening_id for s in state.tiles["st-a"].history] == [1, 2]  # history keeps every day
    day["today"] = day["today"] + timedelta(days=1)
    assert "st-a" in state.refresh()
    assert state.tiles["st-a"].today["screened"] == 0


def test_the_backlog_and_the_live_feed_overlap_without_counting_twice():
    state = DeskState(keepalive_s=10, clock=Clock())
    open_alarm = Screening(SITE, "st-a", 5, now_iso(-60), "fever", 39.1, 0.3)
    state.apply_backlog(Backlog(
        stations=((SITE, "st-a"), (SITE, "st-b")),
        today_rows=((SITE, "st-a", 4, now_iso(-90), "normal"), (SITE, "st-a", 5, now_iso(-60), "fever")),
        recent=(Screening(SITE, "st-a", 4, now_iso(-90), "normal", 36.6), open_alarm),
        open_alarms=(open_alarm,),
        acknowledged=(("st-a", 3),)))
    state.apply_row(SITE, "st-a", "screenings", screening_row(5, "fever", 39.1, now_iso(-60)))  # sent again
    state.apply_row(SITE, "st-a", "screenings", screening_row(3, "fever", 38.5, now_iso(-120)))  # acked already
    assert [a.key for a in state.alarms()] == [("st-a", 5)]
    assert state.tiles["st-a"].today == {"screened": 3, "normal": 1, "fever": 2}
    assert [s.screening_id for s in state.tiles["st-a"].history] == [3, 4, 5]
    assert set(state.tiles) == {"st-a", "st-b"}


def test_messages_the_desk_cannot_read_are_dropped_and_counted_never_raised():
    state = DeskState(keepalive_s=10, clock=Clock())
    assert not state.handle(station_topic(SITE, "st-a", "heartbeat"), b"not json")
    assert not state.handle(station_topic(SITE, "st-a", "status"), b'{"v": 1, "state": "sleeping"}')
    wrong = RowMessage("acknowledgements", ack_row(1, 1)).encode()
    assert not state.handle(station_topic(SITE, "st-a", "row", "screenings"), wrong)
    assert state.handle("other/topic", b"whatever") and state.handle(station_topic(SITE, "st-a", "hwm", "x"), b"")
    assert state.rejected == 3 and state.alarms() == []
    ok = RowMessage("screenings", screening_row(1)).encode()
    assert state.handle(station_topic(SITE, "st-a", "row", "screenings"), ok)
    assert state.handle(station_topic(SITE, "st-a", "status"), status_payload("online", now_iso()))
    assert [a.key for a in state.alarms()] == [("st-a", 1)] and state.tiles["st-a"].online


def test_one_credentials_file_format_for_every_participant(tmp_path):
    """Stations, the ingester and the desk read one format (station.fleet.credentials), private to its owner."""
    path = tmp_path / "desk.cred"
    write_credentials(path, "pw:with:colons", username="desk-2")
    assert read_credentials(path) == Credentials("pw:with:colons", "desk-2")
    path.chmod(0o644)
    with pytest.raises(StationError, match="open to other users"):
        read_credentials(path)
    with pytest.raises(StationError, match="no such file"):
        read_credentials(tmp_path / "missing")


def test_the_desk_refuses_an_impossible_acknowledgement_before_sending_anything():
    client = DeskClient("mqtt://127.0.0.1:1", password=None)  # never started: nothing may be sent
    with pytest.raises(StationError, match="action"):
        client.acknowledge(SITE, "st-a", 1, "ignored", "desk-1")
    with pytest.raises(StationError, match="thermometer"):
        client.acknowledge(SITE, "st-a", 1, "cleared_secondary_check", "desk-1", thermometer_c=52.0)
    with pytest.raises(StationError, match="station id"):
        client.acknowledge(SITE, "st/a", 1, "referred", "desk-1")
    with pytest.raises(StationError, match="name who"):
        client.acknowledge(SITE, "st-a", 1, "referred", "  ")


@pytest.mark.parametrize("args, message", [
    (["--broker", "http://x", "--postgres", "host=/nonexistent dbname=fleet"], "broker URL"),
    (["--broker", "mqtt://127.0.0.1:1", "--postgres", "host=/nonexistent dbname=fleet", "--credentials",
      "/nonexistent/desk.cred"], "no such file"),
    (["--broker", "mqtt://127.0.0.1:1", "--postgres", "this is not a dsn"], "not a PostgreSQL DSN"),
    (["--broker", "mqtt://127.0.0.1:1", "--postgres", "host=/nonexistent dbname=fleet"], "PostgreSQL"),
    (["--broker", "mqtt://127.0.0.1:1", "--postgres", "host=/x", "--size", "10x10"], "WIDTHxHEIGHT"),
])
def test_bad_input_is_one_line_and_a_non_zero_exit(args, message):
    from station.cli.fleet_desk import desk

    result = CliRunner().invoke(desk, args)
    assert result.exit_code != 0, result.output
    text = result.output.strip()
    assert message in text and len(text.splitlines()) == 1 and "Traceback" not in text, text


# ---------------------------------------------------------------------- against the real servers
def station_client(broker, station: str) -> mqtt.Client:
    url = BrokerUrl.parse(broker.url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{station}-{time.monotonic_ns()}",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(station, broker.passwords[station])
    connected = threading.Event()
    client.on_connect = lambda c, u, f, reason, p: connected.set() if not reason.is_failure else None
    client.connect(url.host, url.port, keepalive=30)
    client.loop_start()
    assert connected.wait(10), f"{station} could not connect"
    return client


def publish(client: mqtt.Client, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
    client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)


@pytest.fixture
def desk_db(fleet_postgres):
    """The fleet log migrated, with a login role ``desk`` in ``fleet_desk`` (its DSN), and the owner's DSN."""
    owner = fleet_postgres.dsn()
    with psycopg.connect(owner) as conn:
        central.migrate(conn)
        conn.execute("CREATE ROLE desk LOGIN IN ROLE fleet_desk")
        conn.commit()
    return {"owner": owner, "desk": fleet_postgres.dsn("desk")}


@pytest.fixture
def windows(fleet_broker):
    """Every desk window a test opens, closed (its client disconnected) before the broker stops."""
    opened: list = []
    yield opened
    for window in opened:
        window.close()


def make_window(qtbot, windows, broker, dsn: str | None = None, **kwargs):
    from ui.desk_window import DeskWindow

    client = DeskClient(broker.url, password=broker.passwords["desk"], dsn=dsn, keepalive_s=KEEPALIVE,
                        operator="desk-1")
    client.start()
    assert client.wait_subscribed(10), client.problem
    window = DeskWindow(client, operator="desk-1", poll_ms=100, **kwargs)
    qtbot.addWidget(window)
    windows.append(window)
    window.resize(1600, 900)
    window.show()
    return window


STATION_SCRIPT = r"""
import sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from station.fleet.protocol import Heartbeat, station_topic, status_payload
host, port, password, keepalive = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
status = station_topic("north", "st-a", "status")
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="station-north-st-a", protocol=mqtt.MQTTv5)
c.username_pw_set("st-a", password)
c.will_set(status, status_payload("offline", "2026-01-01T00:00:00.000Z"), qos=1, retain=True)
c.connect(host, port, keepalive=keepalive)
c.loop_start()
c.publish(status, status_payload("online", "2026-01-01T00:00:00.000Z"), qos=1, retain=True).wait_for_publish(5)
print("ready", flush=True)
while True:
    beat = Heartbeat("2026-01-01T00:00:00.000Z", 15.0, 8.7, 0.1, 3.0, None, 0, "sub")
    c.publish(station_topic("north", "st-a", "heartbeat"), beat.encode(), qos=0)
    print("beat", time.monotonic(), flush=True)
    time.sleep(float(keepalive) / 2)
"""


def test_a_station_killed_shows_offline_within_two_keepalives(qtbot, fleet_broker, windows):
    window = make_window(qtbot, windows, fleet_broker)
    url = BrokerUrl.parse(fleet_broker.url)
    station = subprocess.Popen([sys.executable, "-c", STATION_SCRIPT, url.host, str(url.port),
                                fleet_broker.passwords["st-a"], str(int(KEEPALIVE))],
                               stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert station.stdout.readline().strip() == "ready"
        qtbot.waitUntil(lambda: "st-a" in window.tiles and window.state.tiles["st-a"].online, timeout=5000)
        assert window.tiles["st-a"].state.text() == "ONLINE"
        time.sleep(1.2)  # a few heartbeats
        assert window.state.tiles["st-a"].online
        station.send_signal(signal.SIGKILL)  # no clean offline: only silence and the broker's last will
        killed = time.monotonic()
        station.wait(5)
        qtbot.waitUntil(lambda: window.tiles["st-a"].state.text() == "OFFLINE", timeout=int(4000 * KEEPALIVE))
        shown_after = time.monotonic() - killed
    finally:
        if station.poll() is None:
            station.kill()
            station.wait(5)
        station.stdout.close()
    assert shown_after < 2 * KEEPALIVE, f"offline shown {shown_after:.2f} s after the kill"


def test_a_station_that_stops_its_heartbeats_shows_offline_within_two_keepalives(qtbot, fleet_broker, windows):
    """Its TCP session stays open (paho answers the broker's keepalive), so no last will comes: only the
    desk's own rule about silence can show it."""
    window = make_window(qtbot, windows, fleet_broker)
    st_b = station_client(fleet_broker, "st-b")
    try:
        publish(st_b, station_topic(SITE, "st-b", "status"), status_payload("online", now_iso()), retain=True)
        for _ in range(3):
            publish(st_b, station_topic(SITE, "st-b", "heartbeat"), beat().encode(), qos=0)
            last_beat = time.monotonic()
            time.sleep(0.3)
        qtbot.waitUntil(lambda: "st-b" in window.tiles and window.tiles["st-b"].state.text() == "ONLINE",
                        timeout=3000)
        qtbot.waitUntil(lambda: window.tiles["st-b"].state.text() == "OFFLINE", timeout=int(4000 * KEEPALIVE))
        silent_for = time.monotonic() - last_beat
        assert st_b.is_connected()
    finally:
        st_b.disconnect()
        st_b.loop_stop()
    # the rule flips at 2 keepalives after the last heartbeat; the window redraws every 0.1 s
    assert silent_for < 2 * KEEPALIVE + 0.25, f"offline shown {silent_for:.2f} s after the last heartbeat"
    assert "no heartbeat" in window.tiles["st-b"].site.text()


def test_a_fever_reaches_the_desk_within_a_second_and_its_acknowledgement_reaches_the_station(
        qtbot, fleet_broker, desk_db, windows, monkeypatch):
    import ui.desk_window

    asked: list = []

    class Dialog:  # the station's dialog, answered as a guard would (no modal loop in a test)
        def __init__(self, alarm, parent, fever_c):
            asked.append(alarm)

        def setWindowTitle(self, title):  # noqa: N802 - Qt's name
            pass

        def exec(self):
            return ui.desk_window.QDialog.DialogCode.Accepted

        def values(self):
            return "referred", None, "sent to the nurse"

    monkeypatch.setattr(ui.desk_window, "AcknowledgeDialog", Dialog)
    window = make_window(qtbot, windows, fleet_broker, dsn=desk_db["desk"])
    st_a = station_client(fleet_broker, "st-a")
    received: list[DeskAck] = []
    got = threading.Event()

    def on_message(_c, _u, message):
        received.append(DeskAck.decode(message.payload))
        got.set()

    subscribed = threading.Event()
    st_a.on_message = on_message
    st_a.on_subscribe = lambda *a: subscribed.set()
    st_a.subscribe(station_topic(SITE, "st-a", "desk", "ack"), qos=1)  # as the station does
    assert subscribed.wait(5)
    try:
        publish(st_a, station_topic(SITE, "st-a", "status"), status_payload("online", now_iso()), retain=True)
        publish(st_a, station_topic(SITE, "st-a", "heartbeat"), beat().encode(), qos=0)
        qtbot.waitUntil(lambda: "st-a" in window.tiles, timeout=3000)
        shown: list = []
        window.alarm_shown.connect(shown.append)
        sent_at = time.monotonic()
        publish(st_a, station_topic(SITE, "st-a", "row", "screenings"),
                RowMessage("screenings", screening_row(41, "fever", 38.9)).encode())
        qtbot.waitUntil(lambda: bool(shown), timeout=5000)
        latency = shown[0].shown_at - sent_at
        assert latency < 1.0, f"the alarm reached the desk after {latency:.3f} s"
        alarm = window.banner.current()
        assert alarm is shown[0] and window.banner.isVisible() and window.sound.playing
        assert alarm.station == "st-a" and "FEVER" in alarm.headline() and "st-a" in alarm.headline()
        assert window.alarm_list.count() == 1 and "st-a" in window.alarm_list.item(0).text()

        window.ack_button.click()  # the selected alarm of the list (the oldest), through the dialog
        assert asked == [alarm]
        assert got.wait(5), "the station never got the desk's acknowledgement"
        assert received == [DeskAck(41, "referred", "desk-1", "sent to the nurse", None)]
        assert window.banner.pending() == [] and not window.sound.playing and window.alarm_list.count() == 0
        assert "acknowledged at the desk by desk-1" in window.status_message.text()
        with psycopg.connect(desk_db["owner"]) as conn:
            rows = conn.execute("SELECT site, station_id, screening_id, action, operator, note, db_user "
                                "FROM fleet_desk_acks").fetchall()
        assert rows == [(SITE, "st-a", 41, "referred", "desk-1", "sent to the nurse", "desk")]
        # the station logs it as its own acknowledgement, which comes back: nothing latches again
        publish(st_a, station_topic(SITE, "st-a", "row", "acknowledgements"),
                RowMessage("acknowledgements", {**ack_row(9, 41), "operator": "desk:desk-1"}).encode())
        publish(st_a, station_topic(SITE, "st-a", "row", "screenings"),
                RowMessage("screenings", screening_row(41, "fever", 38.9)).encode())  # resent after a reconnect
        qtbot.wait(400)
        assert window.state.alarms() == [] and window.banner.pending() == []
        assert window.state.tiles["st-a"].today == {"screened": 1, "fever": 1}
    finally:
        st_a.disconnect()
        st_a.loop_stop()


def insert_rows(owner_dsn: str, site: str, station: str, table: str, rows: list[dict]) -> None:
    with psycopg.connect(owner_dsn) as conn:
        for row in rows:
            conn.execute("INSERT INTO fleet_rows (station_id, site, table_name, row_id, prev_hash, row_hash, "
                         "wall_time, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                         (station, site, table, row["id"], row["prev_hash"], row["row_hash"], row["wall_time"],
                          central.payload_text(row)))
        conn.commit()


def test_the_backlog_comes_from_postgresql(qtbot, fleet_broker, windows, desk_db):
    insert_rows(desk_db["owner"], SITE, "st-a", "screenings", [
        screening_row(1, "normal", 36.7, now_iso(-600)), screening_row(2, "fever", 38.8, now_iso(-500)),
        screening_row(3, "elevated", 37.9, now_iso(-400)), screening_row(4, "fever", 38.4, now_iso(-350))])
    insert_rows(desk_db["owner"], SITE, "st-a", "acknowledgements", [ack_row(1, 2)])
    with central.connect(desk_db["desk"]) as conn:  # acknowledged at a desk, not yet logged by the station
        record_desk_ack(conn, SITE, "st-a", DeskAck(4, "referred", "desk-2"))
    insert_rows(desk_db["owner"], "south", "st-b", "screenings", [screening_row(1, "normal", 36.5, now_iso(-300))])
    window = make_window(qtbot, windows, fleet_broker, dsn=desk_db["desk"])
    # 2 was acknowledged at the station, 4 at a desk
    assert [a.key for a in window.banner.pending()] == [("st-a", 3)] and window.sound.playing
    assert window.state.tiles["st-a"].today == {"screened": 4, "normal": 1, "fever": 2, "elevated": 1}
    assert set(window.tiles) == {"st-a", "st-b"} and window.tiles["st-b"].state.text() == "OFFLINE"
    window.select_station("st-a")
    assert window.history.rowCount() == 4 and window.history.item(0, 1).text() == "FEVER ✓"
    assert window.history.item(1, 1).text() == "ELEVATED" and window.history.item(2, 1).text() == "FEVER ✓"


def test_the_desk_command_draws_two_stations_and_an_alarm(fleet_broker, desk_db, tmp_path):
    """The command end to end (a subprocess, offscreen): backlog from PostgreSQL, states live from the broker."""
    insert_rows(desk_db["owner"], SITE, "st-a", "screenings", [
        screening_row(1, "normal", 36.7, now_iso(-900)), screening_row(2, "normal", 36.9, now_iso(-800)),
        screening_row(3, "fever", 38.7, now_iso(-120))])
    insert_rows(desk_db["owner"], "south", "st-b", "screenings", [
        screening_row(1, "normal", 36.5, now_iso(-700)), screening_row(2, "retry", None, now_iso(-600))])
    st_a = station_client(fleet_broker, "st-a")
    st_b = station_client(fleet_broker, "st-b")
    publish(st_a, station_topic(SITE, "st-a", "status"), status_payload("online", now_iso()), retain=True)
    publish(st_b, station_topic("south", "st-b", "status"), status_payload("offline", now_iso()), retain=True)
    credentials = tmp_path / "desk.cred"
    credentials.write_text(f'password = "{fleet_broker.passwords["desk"]}"\n')
    credentials.chmod(0o600)
    out = tmp_path / "desk.png"
    stop = threading.Event()

    def beats() -> None:
        while not stop.is_set():
            st_a.publish(station_topic(SITE, "st-a", "heartbeat"), beat().encode(), qos=0)
            stop.wait(0.5)

    beating = threading.Thread(target=beats, daemon=True)
    beating.start()
    try:
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        done = subprocess.run(
            [sys.executable, "-c", "from station.cli.fleet_desk import desk; desk()", "--broker", fleet_broker.url,
             "--postgres", desk_db["desk"], "--credentials", str(credentials), "--operator", "desk-1",
             "--screenshot", str(out), "--after", "2.5", "--keepalive", "2"],
            capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    finally:
        stop.set()
        beating.join(5)
        for client in (st_a, st_b):
            client.disconnect()
            client.loop_stop()
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 10_000
    if os.environ.get("DESK_SCREENSHOT"):  # for a look: DESK_SCREENSHOT=/tmp/desk.png pytest ...
        Path(os.environ["DESK_SCREENSHOT"]).write_bytes(out.read_bytes())


def test_a_wrong_desk_password_is_one_line(fleet_broker, desk_db, tmp_path):
    from station.cli.fleet_desk import desk

    credentials = tmp_path / "desk.cred"
    credentials.write_text('password = "wrong"\n')
    credentials.chmod(0o600)
    result = CliRunner().invoke(desk, ["--broker", fleet_broker.url, "--postgres", desk_db["desk"],
                                       "--credentials", str(credentials)])
    assert result.exit_code == 1
    assert "refused the desk" in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_todays_counters_start_at_the_desks_local_midnight():
    from station.fleet.desk import day_start_utc

    day = date(2026, 11, 23)
    start = day_start_utc(day)
    assert start.endswith("Z") and len(start) == len("2026-11-23T10:00:00.123Z")
    assert datetime.fromisoformat(start).astimezone().date() == day
    assert json.dumps(start)
