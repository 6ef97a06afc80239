"""Alarm images in the fleet, against a real Mosquitto and a real PostgreSQL: shared only when a station
says so, stored only when their sha256 is the one the screening row records, and a row counted as held
(covered by the mark) only once the images it lists are stored."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import psycopg
from test_fleet_central import IngesterThread, MarkWatcher, connected

from station.config import load_config
from station.fleet.protocol import BrokerUrl, RowMessage, row_topic, snapshot_topic
from station.fleet.publisher import Publisher
from station.log.chain import GENESIS, row_hash
from station.log.store import EventStore
from station.types import ScreeningDecision

SITE = "hq"


def crops(shade: int) -> dict[str, np.ndarray]:
    return {"visible": np.full((8, 8, 3), shade, np.uint8), "thermal": np.full((4, 4), 36.0 + shade / 100, np.float32)}


def station_log(tmp_path: Path, name: str) -> tuple[Path, Path, EventStore]:
    """A station's database with a normal screening (1) and two fever screenings with images (2, 3)."""
    db, images = tmp_path / f"{name}.db", tmp_path / f"{name}-snapshots"
    store = EventStore(db, snapshots_dir=images, outbox=True)
    for track, (level, body) in enumerate((("normal", 36.7), ("fever", 38.7), ("fever", 38.9)), start=1):
        decision = ScreeningDecision(track, 1.0, 2.0, round(body - 1.24, 2), body, level, frozenset())
        store.record_screening(decision, calibration_id="c1", model_sha256=None, blackbody_error_c=0.05,
                               source="cameras", snapshots=crops(40 * track))
    return db, images, store


def fleet_images(dsn: str) -> dict[tuple[str, int, str], tuple[str, bytes]]:
    with psycopg.connect(dsn) as conn:
        return {(s, int(i), k): (d, bytes(b)) for s, i, k, d, b in conn.execute(
            "SELECT station_id, screening_id, kind, sha256, image FROM fleet_snapshots")}


def fleet_screenings(dsn: str, station: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [int(r[0]) for r in conn.execute(
            "SELECT row_id FROM fleet_rows WHERE station_id = %s AND table_name = 'screenings' ORDER BY row_id",
            (station,))]


def test_the_config_may_share_alarm_images(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[fleet]\nbroker = "mqtt://desk.local"\nsite = "north"\nstation_id = "st-a"\n'
                    'credentials = "/etc/fleet.toml"\nshare_alarm_images = true\n')
    assert load_config(path).fleet.share_alarm_images is True


def test_a_sharing_station_sends_its_images_and_a_station_that_does_not_keeps_them(tmp_path, fleet_broker, fleet_db):
    ingester = IngesterThread(fleet_broker, fleet_db["ingester"])
    said: list[str] = []
    publishers, watchers, stores = [], [], {}
    try:
        for station, share in (("st-a", True), ("st-b", False)):
            db, images, store = station_log(tmp_path, station)
            stores[station] = store
            if share:  # screening 3's thermal image is gone from the disk: its row must not wait for it
                assert store.snapshots(3)[1]["kind"] == "thermal"
                (images / store.snapshots(3)[1]["path"]).unlink()
            watchers.append(MarkWatcher(fleet_broker, station, "screenings"))
            publishers.append(Publisher(db, broker=BrokerUrl.parse(fleet_broker.url), site=SITE, station_id=station,
                                        password=fleet_broker.passwords[station], stall_s=3.0, share_images=share,
                                        snapshots_dir=images, warn=said.append).start())
        for watcher in watchers:
            watcher.wait_for(3)  # both stations' rows held, the images the sharing one still has with them
    finally:
        for publisher in publishers:
            publisher.close()
        for watcher in watchers:
            watcher.close()
        ingester.stop()

    held = fleet_images(fleet_db["auditor"])
    expected = {("st-a", s["screening_id"], s["kind"]): s["sha256"] for sid in (2, 3)
                for s in stores["st-a"].snapshots(sid)}
    del expected[("st-a", 3, "thermal")]
    assert {k: v[0] for k, v in held.items()} == expected  # nothing of st-b, nothing of the lost file
    for digest, image in held.values():
        assert hashlib.sha256(image).hexdigest() == digest and image[:8] == b"\x89PNG\r\n\x1a\n"
    recorded = json.loads(stores["st-a"].screenings()[1]["snapshot_sha256"])
    assert held[("st-a", 2, "visible")][0] == recorded["visible"]
    lost = [line for line in said if "snapshot not shared" in line]
    assert len(lost) == 1 and "screening 3 thermal" in lost[0] and "\n" not in lost[0], said
    assert fleet_screenings(fleet_db["auditor"], "st-b") == [1, 2, 3]
    for store in stores.values():
        store.close()


def test_an_image_that_does_not_match_its_row_is_not_stored_and_the_row_waits(fleet_broker, fleet_db, caplog):
    caplog.set_level(logging.WARNING, logger="station.fleet.ingester")
    good, bad = b"\x89PNG good image", b"\x89PNG swapped image"
    row = {"id": 1, "wall_time": "2030-01-01T00:00:00.000Z", "level": "fever", "track_id": 1,
           "snapshot_sha256": json.dumps({"visible": hashlib.sha256(good).hexdigest()}, separators=(",", ":"))}
    row["prev_hash"] = GENESIS
    row["row_hash"] = row_hash(GENESIS, row)
    message = RowMessage("screenings", row, ("visible",)).encode()
    ingester = IngesterThread(fleet_broker, fleet_db["ingester"])
    watcher = MarkWatcher(fleet_broker, "st-c", "screenings")
    client = connected(fleet_broker, "st-c")

    def send(image: bytes) -> None:
        for topic, payload in ((snapshot_topic(SITE, "st-c", 1, "visible"), image),
                               (row_topic(SITE, "st-c", "screenings"), message)):
            client.publish(topic, payload, qos=1).wait_for_publish(10)

    try:
        send(bad)
        deadline = time.monotonic() + 20
        while ingester.ingester.stats.held_back < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ingester.ingester.stats.held_back == 1
        assert fleet_images(fleet_db["auditor"]) == {}  # the swapped image: not stored
        assert fleet_screenings(fleet_db["auditor"], "st-c") == []  # its row: not held, so no mark covers it
        assert not watcher.marks or watcher.marks[-1].row_id == 0
        assert any("is not the recorded" in r.getMessage() for r in caplog.records)
        send(good)  # the station's next send (after the mark stalled) brings the right bytes
        watcher.wait_for(1)
    finally:
        client.disconnect()
        client.loop_stop()
        watcher.close()
        ingester.stop()
    assert fleet_screenings(fleet_db["auditor"], "st-c") == [1]
    assert {k: v[1] for k, v in fleet_images(fleet_db["auditor"]).items()} == {("st-c", 1, "visible"): good}
