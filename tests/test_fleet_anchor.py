"""A station whose retention deleted its oldest rows before it joined the fleet, against a real Mosquitto and
a real PostgreSQL: it publishes its chain anchor, the fleet's mark counts from there (only when the row after
it follows it), its outbox empties, and ``station fleet verify`` checks the chain from the anchor."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from test_fleet_central import IngesterThread, MarkWatcher, chained_rows, connected, publish, stored, verify

from station.fleet.protocol import Anchor, BrokerUrl, anchor_topic
from station.fleet.publisher import Publisher
from station.log.retention import RetentionPolicy, apply_purge, plan_purge
from station.log.store import EventStore
from station.types import SystemEvent

SITE = "hq"
TABLE = "system_events"


def wait_for(condition, timeout: float = 20.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def anchors(dsn: str, station: str) -> list[tuple[int, str]]:
    with psycopg.connect(dsn) as conn:
        return [(int(a), str(b)) for a, b in conn.execute(
            "SELECT row_id, row_hash FROM fleet_anchors WHERE station_id = %s AND table_name = %s ORDER BY row_id",
            (station, TABLE)).fetchall()]


def test_a_station_that_purged_before_it_joined_is_held_from_its_anchor(tmp_path: Path, fleet_broker, fleet_db):
    db = tmp_path / "events.db"
    with EventStore(db) as store:  # without the fleet: no outbox
        now = datetime.now(UTC)
        for k in range(1, 11):  # rows 1..4 a year old, past any retention
            store.record_system_event(SystemEvent("note", float(k), f"row {k}"),
                                      wall_time=now - timedelta(days=400 if k <= 4 else 1))
        apply_purge(store, plan_purge(store, now, RetentionPolicy()), now)  # the purge event is row 11
        anchor = store.chain_anchors()[TABLE]
        assert anchor[0] == 4
        assert store.verify_chains() == []
    with EventStore(db, outbox=True) as store:  # joining: the rows left are queued, and only those
        queued = [i for i, _ in store.outbox_rows(TABLE)]
    assert queued == list(range(5, 12))

    watcher = MarkWatcher(fleet_broker, "st-a", TABLE)
    ingester = IngesterThread(fleet_broker, fleet_db["ingester"])
    publisher = Publisher(db, broker=BrokerUrl.parse(fleet_broker.url), site=SITE, station_id="st-a",
                          password=fleet_broker.passwords["st-a"], stall_s=3.0).start()
    try:
        watcher.wait_for(11)
        assert [r for r, _ in stored(fleet_db["owner"], "st-a", TABLE)] == queued
        assert anchors(fleet_db["owner"], "st-a") == [anchor]
        with EventStore(db) as store:
            wait_for(lambda: store.outbox_count() == 0, 20, "the outbox pruned")
    finally:
        publisher.close()
        ingester.stop()
        watcher.close()
    result = verify(fleet_db["auditor"])
    assert result.exit_code == 0, result.output


def test_a_forged_anchor_does_not_move_the_mark_and_verify_reports_it(fleet_broker, fleet_db):
    rows = chained_rows(6)
    ingester = IngesterThread(fleet_broker, fleet_db["ingester"])
    try:
        client = connected(fleet_broker, "st-b")  # an anchor the next row does not follow
        client.publish(anchor_topic(SITE, "st-b", TABLE), Anchor(3, "f" * 64).encode(), qos=1,
                       retain=True).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        wait_for(lambda: anchors(fleet_db["owner"], "st-b"), 20, "the anchor stored")
        publish(fleet_broker, "st-b", rows[3:])
        wait_for(lambda: len(stored(fleet_db["owner"], "st-b", TABLE)) == 3, 20, "the rows stored")
        time.sleep(0.5)  # the marks are published just after the commit
        assert ingester.ingester.stats.marks[(SITE, "st-b", TABLE)] == 0

        # the same rows from a station whose anchor the next row follows: held from there
        watcher = MarkWatcher(fleet_broker, "st-c", TABLE)
        client = connected(fleet_broker, "st-c")
        client.publish(anchor_topic(SITE, "st-c", TABLE), Anchor(3, rows[2]["row_hash"]).encode(), qos=1,
                       retain=True).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        publish(fleet_broker, "st-c", rows[3:])
        watcher.wait_for(6)
        watcher.close()
    finally:
        ingester.stop()
    result = verify(fleet_db["auditor"])
    assert result.exit_code == 3, result.output
    assert "st-b" in result.output and "st-c" not in [line.split()[0] for line in result.output.splitlines()
                                                       if "BROKEN" in line]
