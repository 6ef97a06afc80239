"""Issue 13, 5.2: retention anchors are evidence. An anchor is only accepted when the hash-chained retention log
records it and a purge event, written in the same transaction, vouches for that record; old logs keep verifying."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlite_utils import Database

from station.cli.main import main
from station.errors import StationError
from station.headless import snapshots_dir_for
from station.log.chain import GENESIS, row_hash
from station.log.retention import RetentionPolicy, apply_purge, plan_purge
from station.log.store import MIGRATIONS, EventStore, utc_iso
from station.types import ScreeningDecision, SystemEvent

NOW = datetime(2027, 12, 1, 12, 0, tzinfo=UTC)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def screen(store: EventStore, when: datetime, level: str = "normal") -> int:
    body = {"normal": 36.7, "fever": 38.7}[level]
    crops = {"visible": np.full((8, 8, 3), 80, np.uint8), "thermal": np.full((4, 4), 37.5, np.float32)}
    return store.record_screening(ScreeningDecision(1, 1.0, 2.0, round(body - 1.24, 2), body, level, frozenset()),
                                  calibration_id="entrance-1@2027-01-01T00:00:00Z", model_sha256=None,
                                  blackbody_error_c=None, source="cameras",
                                  snapshots=crops if level == "fever" else None, wall_time=when)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """Ten days of screenings, the oldest two of them fever alarms, and a few system events."""
    db = tmp_path / "station.db"
    with EventStore(db, snapshots_dir=snapshots_dir_for(db), clock=lambda: NOW) as store:
        store.record_system_event(SystemEvent("started", 0.0, ""), wall_time=ago(10))
        for day, level in ((10, "fever"), (9, "normal"), (8, "fever"), (5, "normal"), (1, "normal")):
            screen(store, ago(day), level)
        store.record_system_event(SystemEvent("stopped", 9.0, ""), wall_time=ago(1))
    return db


def verify(db: Path):
    return CliRunner().invoke(main, ["audit", "verify", "--db", str(db)])


def rows(db: Path, query: str, params=()) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def sql(db: Path, *statements: tuple[str, list]) -> None:
    conn = sqlite3.connect(db)
    with conn:
        for statement, params in statements:
            conn.execute(statement, params)
    conn.close()


def delete_oldest_screenings(db: Path, through: int) -> None:
    """What the issue did: the oldest screenings (a fever alarm among them) gone, their images with them."""
    for (name,) in rows(db, "SELECT path FROM snapshots WHERE screening_id <= ?", [through]):
        (snapshots_dir_for(db) / name).unlink()
    sql(db, ("DELETE FROM snapshots WHERE screening_id <= ?", [through]),
        ("DELETE FROM screenings WHERE id <= ?", [through]))


def append_chained(db: Path, table: str, row: dict) -> tuple[int, str]:
    """Append a correctly hashed row, as someone who read station/log/chain.py could."""
    (last,) = rows(db, f"SELECT id, row_hash FROM {table} ORDER BY id DESC LIMIT 1") or [(0, GENESIS)]
    full = {"id": last[0] + 1, **row}
    full["prev_hash"] = last[1]
    full["row_hash"] = row_hash(last[1], full)
    sql(db, (f"INSERT INTO {table} ({', '.join(full)}) VALUES ({', '.join('?' for _ in full)})", list(full.values())))
    return full["id"], full["row_hash"]


def test_deleting_the_oldest_rows_and_inserting_an_anchor_breaks_the_log(log):
    (kept_after,) = rows(log, "SELECT row_hash FROM screenings WHERE id = 3")
    delete_oldest_screenings(log, 3)
    sql(log, ("INSERT INTO chain_anchors VALUES ('screenings', 3, ?, ?)", [kept_after[0], utc_iso(NOW)]))
    result = verify(log)
    assert result.exit_code == 3
    assert "screenings row 4: does not follow the start of the log" in result.output
    assert ("chain_anchors: screenings is anchored at row 3, but the retention log records no anchor: the anchor "
            "was set by hand") in result.output


def test_an_anchor_with_a_forged_retention_log_row_but_no_purge_event_breaks_the_log(log):
    (kept_after,) = rows(log, "SELECT row_hash, wall_time FROM screenings WHERE id = 3")
    delete_oldest_screenings(log, 3)
    sql(log, ("INSERT INTO chain_anchors VALUES ('screenings', 3, ?, ?)", [kept_after[0], utc_iso(NOW)]))
    anchors = json.dumps({"screenings": [3, kept_after[0], kept_after[1]]}, sort_keys=True, separators=(",", ":"))
    append_chained(log, "retention_log", {"kind": "purge", "wall_time": utc_iso(NOW),
                                          "images_cutoff": utc_iso(ago(7)), "records_cutoff": utc_iso(ago(365)),
                                          "images_horizon": utc_iso(ago(7)), "anchors": anchors})
    result = verify(log)
    assert result.exit_code == 3
    assert "retention_log row 1: no retention purge logged it: its anchors were not set by the station" in result.output


def test_a_forged_purge_claiming_yesterday_was_past_retention_breaks_the_log(log):
    """Even with a retention log row and a purge event forged in both chains, the purge must look lawful."""
    (kept_after,) = rows(log, "SELECT row_hash, wall_time FROM screenings WHERE id = 3")
    delete_oldest_screenings(log, 3)
    sql(log, ("INSERT INTO chain_anchors VALUES ('screenings', 3, ?, ?)", [kept_after[0], utc_iso(NOW)]))
    anchors = json.dumps({"screenings": [3, kept_after[0], kept_after[1]]}, sort_keys=True, separators=(",", ":"))
    ref = append_chained(log, "retention_log", {"kind": "purge", "wall_time": utc_iso(NOW),
                                                "images_cutoff": utc_iso(ago(1)), "records_cutoff": utc_iso(ago(1)),
                                                "images_horizon": utc_iso(ago(1)), "anchors": anchors})
    append_chained(log, "system_events", {"kind": "retention_purge", "t": 0.0, "wall_time": utc_iso(NOW),
                                          "detail": json.dumps({"retention_log": list(ref)})})
    result = verify(log)
    assert result.exit_code == 3
    assert "a purge of records younger than 30 days, which no retention policy allows" in result.output


def test_a_lawful_purge_verifies_and_its_event_vouches_for_its_anchors(log):
    with EventStore(log, snapshots_dir=snapshots_dir_for(log)) as store:
        later = NOW + timedelta(days=35)  # the first three screenings and the start event are past 40 days
        result = apply_purge(store, plan_purge(store, later, RetentionPolicy(7, 40)), later)
        assert (result.screenings, result.system_events) == (3, 1)
        (logged,) = store.retention_log()
        detail = json.loads(result.event.detail)
        assert detail["retention_log"] == [logged["id"], logged["row_hash"]]
        assert json.loads(logged["anchors"])["screenings"][0] == 3
    verified = verify(log)
    assert verified.exit_code == 0, verified.output
    assert "retention_log            1 rows  ok" in verified.output
    assert "chain_anchors            2 rows  ok" in verified.output
    assert ("retention         1 purges logged, the last at 2028-01-05T12:00:00.000Z: records before "
            "2027-11-26T12:00:00.000Z, images before 2027-12-29T12:00:00.000Z") in verified.output


def test_deleting_the_newest_purge_event_from_the_end_breaks_the_log(log):
    """Truncating system events back past the last purge leaves its anchors unvouched, export or no export."""
    with EventStore(log, snapshots_dir=snapshots_dir_for(log)) as store:
        later = NOW + timedelta(days=35)
        result = apply_purge(store, plan_purge(store, later, RetentionPolicy(7, 40)), later)
    sql(log, ("DELETE FROM system_events WHERE id = ?", [result.event_id]))
    verified = verify(log)
    assert verified.exit_code == 3
    assert "retention_log row 1: no retention purge logged it" in verified.output


def test_a_forged_adoption_after_a_purge_breaks_the_log(log):
    """Adopted anchors escape the purge checks, so only the upgrade's first row may adopt."""
    with EventStore(log, snapshots_dir=snapshots_dir_for(log)) as store:
        later = NOW + timedelta(days=35)
        apply_purge(store, plan_purge(store, later, RetentionPolicy(7, 40)), later)
    (kept_after,) = rows(log, "SELECT row_hash FROM screenings WHERE id = 4")
    delete_oldest_screenings(log, 4)
    (events,) = rows(log, "SELECT last_id, last_hash FROM chain_anchors WHERE table_name = 'system_events'")
    anchors = {"screenings": [4, kept_after[0], None], "system_events": [events[0], events[1], None]}
    ref = append_chained(log, "retention_log", {"kind": "adopted", "wall_time": utc_iso(NOW),
                                                "anchors": json.dumps(anchors, sort_keys=True, separators=(",", ":"))})
    append_chained(log, "system_events", {"kind": "retention_log_adopted", "t": 0.0, "wall_time": utc_iso(NOW),
                                          "detail": json.dumps({"retention_log": list(ref)})})
    sql(log, ("UPDATE chain_anchors SET last_id = 4, last_hash = ? WHERE table_name = 'screenings'", [kept_after[0]]))
    result = verify(log)
    assert result.exit_code == 3
    assert "retention_log row 2: adopts anchors after the log was already keeping them" in result.output


def test_moving_a_lawful_anchor_by_hand_breaks_the_log(log):
    with EventStore(log, snapshots_dir=snapshots_dir_for(log)) as store:
        later = NOW + timedelta(days=35)
        apply_purge(store, plan_purge(store, later, RetentionPolicy(7, 40)), later)
    (fifth,) = rows(log, "SELECT row_hash FROM screenings WHERE id = 4")
    sql(log, ("DELETE FROM screenings WHERE id = 4", []),
        ("UPDATE chain_anchors SET last_id = 4, last_hash = ? WHERE table_name = 'screenings'", [fifth[0]]))
    result = verify(log)
    assert result.exit_code == 3
    assert "chain_anchors: screenings is anchored at row 4, but the retention log records row 3" in result.output


def test_an_interrupted_purge_changes_nothing(log):
    """Deletions, anchors, retention log row and event are one transaction: a fault part-way leaves the log whole."""
    with EventStore(log, snapshots_dir=snapshots_dir_for(log)) as store:
        later = NOW + timedelta(days=35)
        plan = plan_purge(store, later, RetentionPolicy(7, 40))

        def fail(_counts):
            raise OSError("power cut")

        with pytest.raises(OSError):
            store.apply_retention(snapshot_ids=[s.id for s in plan.snapshots],
                                  throughs={p.table: p.through_id for p in plan.prefixes},
                                  images_cutoff=plan.images_cutoff, records_cutoff=plan.records_cutoff,
                                  wall_time=later, t=0.0, detail=fail)
        assert [r["id"] for r in store.screenings()] == [1, 2, 3, 4, 5] and store.retention_log() == []
        assert store.verify_chains() == [] and store.verify_snapshots().breaks == []
    assert verify(log).exit_code == 0


def test_purge_prefix_is_still_an_anchor_a_purge_vouches_for(log):
    with EventStore(log, snapshots_dir=snapshots_dir_for(log), clock=lambda: NOW + timedelta(days=40)) as store:
        store.db.execute("DELETE FROM snapshots WHERE screening_id <= 2")
        store.db.conn.commit()
        assert store.purge_prefix("screenings", 2) == 2
        assert store.verify_chains() == []
        with pytest.raises(ValueError, match="purge_prefix"):
            store.purge_prefix("exports", 1)


# ------------------------------------------------------------------------------------------- old logs
def old_log(db: Path) -> None:
    """A log as the station before m005 left it: its retention purged two screenings and anchored the chain."""
    old = Database(db)
    MIGRATIONS.apply(old, stop_before="m005_evidence")
    prev = GENESIS
    for k in range(1, 5):
        row = {"id": k, "track_id": k, "t_first_seen": 1.0, "t_decided": 2.0, "wall_time": utc_iso(ago(400 - k)),
               "skin_c": 35.5, "body_c": 36.7, "level": "normal", "quality": "[]", "recording": "cameras"}
        row["prev_hash"], row["row_hash"] = prev, row_hash(prev, row)
        old["screenings"].insert(row)
        prev = row["row_hash"]
    (anchor,) = old.execute("SELECT id, row_hash FROM screenings WHERE id = 2").fetchall()
    old.execute("DELETE FROM screenings WHERE id <= 2")
    old["chain_anchors"].insert({"table_name": "screenings", "last_id": anchor[0], "last_hash": anchor[1],
                                 "wall_time": utc_iso(ago(30))})
    event = {"id": 1, "kind": "retention_purge", "t": 0.0, "wall_time": utc_iso(ago(30)),
             "detail": json.dumps({"through": {"screenings": 2}})}
    event["prev_hash"], event["row_hash"] = GENESIS, row_hash(GENESIS, event)
    old["system_events"].insert(event)
    old.conn.commit()
    old.close()


def test_an_old_log_with_anchors_verifies_read_only_and_is_left_as_it_was(tmp_path):
    db = tmp_path / "old.db"
    old_log(db)
    before = db.read_bytes()
    result = verify(db)
    assert result.exit_code == 0, result.output
    assert "note: the log predates m005_evidence" in result.output
    assert "were adopted as they stood (retention_log row 1): they could not be checked" in result.output
    assert db.read_bytes() == before


def test_an_old_log_upgraded_by_the_station_verifies_and_purges_on(tmp_path):
    db = tmp_path / "old.db"
    old_log(db)
    with EventStore(db, clock=lambda: NOW) as store:
        assert store.verify_chains() == []
        (adopted,) = store.retention_log()
        assert adopted["kind"] == "adopted"
        event = store.last_system_event(("retention_log_adopted",))
        assert json.loads(event["detail"])["retention_log"] == [1, adopted["row_hash"]]
        apply_purge(store, plan_purge(store, NOW, RetentionPolicy()), NOW)  # screenings 3 and 4 are past a year
        assert store.screenings() == [] and store.verify_chains() == []
        screen(store, NOW, "fever")
        assert store.verify_chains() == []
    assert verify(db).exit_code == 0


def test_a_read_only_store_refuses_to_purge(log):
    with EventStore.open_read_only(log) as store:
        with pytest.raises(StationError, match="opened read-only"):
            store.purge_prefix("screenings", 1)
