"""The store's named queries for export, retention and the audit command, on real SQLite files."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from station.log.store import EventStore, utc_iso
from station.types import ScreeningDecision, SystemEvent

T0 = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Clock:
    """A wall clock the test sets; acknowledgements take their time from it."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def crops() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {"visible": rng.integers(0, 255, (8, 6, 3), dtype=np.uint8),
            "thermal": (35.0 + rng.random((6, 5))).astype(np.float32)}


def screen(store: EventStore, minutes: float, level: str = "normal", track: int = 1, images: bool = False) -> int:
    d = ScreeningDecision(track, 1.0 + track, 1.5 + track, 36.0, 37.0, level, frozenset(), u95_c=0.6)
    return store.record_screening(d, calibration_id="c@1", model_sha256=None, blackbody_error_c=None,
                                  source="rec", wall_time=at(minutes), snapshots=crops() if images else None)


def ack(store: EventStore, clock: Clock, screening_id: int, minutes: float) -> int:
    clock.now = at(minutes)
    return store.acknowledge(screening_id, "referred", operator="guard-1")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[EventStore]:
    with EventStore(tmp_path / "events.db", snapshots_dir=tmp_path / "snaps", clock=clock) as s:
        yield s


@pytest.fixture
def log(store: EventStore, clock: Clock) -> dict[str, int]:
    """Screenings at minutes 0..4 (1 and 3 are alarms, 1 acknowledged, with images), events at 0 and 10."""
    ids = {
        "n0": screen(store, 0, "normal", 1),
        "e1": screen(store, 1, "elevated", 2, images=True),
        "n2": screen(store, 2, "normal", 3),
        "f3": screen(store, 3, "fever", 4, images=True),
        "n4": screen(store, 4, "normal", 5),
    }
    ids["a1"] = ack(store, clock, ids["e1"], 5)
    store.record_system_event(SystemEvent("camera_lost", 1.0, "{}"), wall_time=at(0))
    store.record_system_event(SystemEvent("camera_back", 2.0, "{}"), wall_time=at(10))
    return ids


# ---------------------------------------------------------------------- export
def test_screenings_for_export_filters_period_levels_and_acknowledgement(store: EventStore, log) -> None:
    rows = store.screenings_for_export(at(1), at(4))  # [since, until): minute 4 is out
    assert [r["id"] for r in rows] == [log["e1"], log["n2"], log["f3"]]
    assert [r["acknowledged"] for r in rows] == [1, 0, 0]
    assert isinstance(rows[0]["quality"], str)  # as stored: the export writes the log's own text
    alarms = store.screenings_for_export(at(0), at(10), levels=("elevated", "fever"))
    assert [r["id"] for r in alarms] == [log["e1"], log["f3"]]
    acked = store.screenings_for_export(at(0), at(10), acknowledged=True)
    assert [r["id"] for r in acked] == [log["e1"]]
    open_ = store.screenings_for_export(at(0), at(10), levels=("elevated", "fever"), acknowledged=False)
    assert [r["id"] for r in open_] == [log["f3"]]
    assert store.screenings_for_export(at(0), at(10), levels=("no-such-level",)) == []


@pytest.mark.parametrize("kwargs", [{}, {"levels": ("normal",)}, {"acknowledged": True}, {"acknowledged": False},
                                    {"levels": ("fever", "elevated"), "acknowledged": False}])
def test_count_matches_the_rows_an_export_carries(store: EventStore, log, kwargs) -> None:
    for since, until in ((at(0), at(10)), (at(1), at(3)), (at(5), at(9))):
        count = store.count_screenings_for_export(since, until, **kwargs)
        assert count == len(store.screenings_for_export(since, until, **kwargs))
    assert store.count_screenings_for_export(at(0), at(10)) == 5


def test_related_rows_for_export_only_of_the_given_screenings(store: EventStore, log, clock: Clock) -> None:
    ack(store, clock, log["f3"], 6)
    acks = store.acknowledgements_for_export([log["e1"]])
    assert [a["id"] for a in acks] == [log["a1"]] and acks[0]["operator"] == "guard-1"
    snaps = store.snapshots_for_export([log["f3"]])
    assert {s["kind"] for s in snaps} == {"visible", "thermal"}
    assert {s["screening_id"] for s in snaps} == {log["f3"]} and all("file" not in s for s in snaps)
    assert store.snapshots_for_export([log["n0"], log["n2"]]) == []
    assert store.acknowledgements_for_export([]) == []


def test_related_rows_for_export_read_past_the_parameter_limit(store: EventStore, log) -> None:
    ids = list(range(1, 2001))  # three chunks; ids beyond the log simply match nothing
    assert [s["screening_id"] for s in store.snapshots_for_export(ids)] == [log["e1"]] * 2 + [log["f3"]] * 2
    assert [a["id"] for a in store.acknowledgements_for_export(ids)] == [log["a1"]]


def test_system_events_for_export_within_the_period(store: EventStore, log) -> None:
    kinds = [e["kind"] for e in store.system_events_for_export(at(0), at(10))]
    assert kinds == ["camera_lost"]  # minute 10 is the period's end, not in it
    assert [e["kind"] for e in store.system_events_for_export(at(0), at(11))] == ["camera_lost", "camera_back"]


# ---------------------------------------------------------------------- retention
def test_prefix_before_ends_at_the_first_young_row(store: EventStore) -> None:
    assert store.prefix_before("screenings", at(100)) == 0  # empty table
    screen(store, 0)
    screen(store, 1)
    screen(store, 5)
    screen(store, 2)  # logged late with an old time: waits for the row before it
    assert store.prefix_before("screenings", at(3)) == 2
    assert store.prefix_before("screenings", at(100)) == 4  # none young: every row
    assert store.prefix_before("screenings", at(0)) == 0
    with pytest.raises(ValueError, match="exports"):
        store.prefix_before("exports", at(3))


def test_prefix_span_counts_and_times(store: EventStore, log) -> None:
    assert store.prefix_span("screenings", log["n2"]) == (3, utc_iso(at(0)), utc_iso(at(2)))
    assert store.prefix_span("acknowledgements", 0) == (0, None, None)
    assert store.prefix_span("system_events", 99) == (2, utc_iso(at(0)), utc_iso(at(10)))
    with pytest.raises(ValueError):
        store.prefix_span("screenings; DROP TABLE screenings", 1)


def test_acknowledgement_links(store: EventStore, log, clock: Clock) -> None:
    second = ack(store, clock, log["f3"], 7)
    assert store.acknowledgement_links() == [(log["a1"], log["e1"]), (second, log["f3"])]


def test_snapshots_due_by_images_cutoff_or_screening_prefix(store: EventStore, log) -> None:
    due = store.snapshots_due(at(2), 0)  # only e1's images are older than minute 2
    assert {(s, kind) for _, s, kind, _, _ in due} == {(log["e1"], "visible"), (log["e1"], "thermal")}
    assert all(wall == utc_iso(at(1)) for *_, wall in due)
    assert [row[0] for row in due] == sorted(row[0] for row in due)
    both = store.snapshots_due(at(0), log["f3"])  # no image is old, but f3's screening row goes
    assert {s for _, s, _, _, _ in both} == {log["e1"], log["f3"]}
    assert store.snapshots_due(at(0), 0) == []
    assert {path for _, _, _, path, _ in both} == store.snapshot_paths()


def test_snapshot_paths_name_the_files_in_the_directory(store: EventStore, log) -> None:
    paths = store.snapshot_paths()
    assert len(paths) == 4
    assert paths == {p.name for p in store.snapshots_dir.iterdir()}  # type: ignore[union-attr]


def test_consistent_read_sees_one_log_and_writes_nothing(store: EventStore, log, tmp_path: Path) -> None:
    with EventStore(tmp_path / "events.db") as other:  # a second connection, as the window's would be
        with store.consistent_read():
            before = store.row_counts(["system_events"])
            other.record_system_event(SystemEvent("stopped", 3.0, "{}"), wall_time=at(20))
            assert store.row_counts(["system_events"]) == before  # the read transaction's snapshot
            assert store.db.conn.in_transaction
        assert not store.db.conn.in_transaction
        assert store.row_counts(["system_events"]) == {"system_events": before["system_events"] + 1}


def test_consistent_read_rolls_back_when_the_block_fails(store: EventStore, log) -> None:
    with pytest.raises(RuntimeError), store.consistent_read():
        store.prefix_before("screenings", at(3))
        raise RuntimeError("boom")
    assert not store.db.conn.in_transaction
    screen(store, 30)  # the store still writes


# ---------------------------------------------------------------------- audit
def test_row_counts_and_integrity(store: EventStore, log) -> None:
    tables = ("screenings", "acknowledgements", "system_events", "exports", "retention_log", "chain_anchors",
              "snapshots")
    counts = store.row_counts(tables)
    assert list(counts) == list(tables)
    assert counts == {"screenings": 5, "acknowledgements": 1, "system_events": 2, "exports": 0, "retention_log": 0,
                      "chain_anchors": 0, "snapshots": 4}
    assert store.integrity_check() == "ok"
    with pytest.raises(ValueError, match="_sqlite_migrations"):
        store.row_counts(["_sqlite_migrations"])


def test_integrity_check_reports_a_damaged_index(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with EventStore(path) as store:
        for minute in range(3):
            store.record_system_event(SystemEvent("tick", float(minute), "{}"), wall_time=at(minute))
    conn = sqlite3.connect(path)  # damage below the chains: the index no longer matches its table
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("""UPDATE sqlite_master SET sql = replace(sql, '("wall_time")', '("kind")') """
                 "WHERE name = 'idx_system_events_wall_time'")
    conn.commit()
    conn.close()
    with EventStore.open_read_only(path) as store:
        verdict = store.integrity_check()
    assert verdict != "ok" and "idx_system_events_wall_time" in verdict


def test_audit_queries_work_read_only_and_change_no_byte(store: EventStore, log, tmp_path: Path) -> None:
    path = store.path
    store.close()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    beside = sorted(p.name for p in tmp_path.iterdir())
    with EventStore.open_read_only(path, snapshots_dir=tmp_path / "snaps") as ro:
        with ro.consistent_read():
            assert ro.row_counts(["screenings"]) == {"screenings": 5}
            assert ro.prefix_before("screenings", at(3)) == 3
            assert ro.prefix_span("screenings", 3)[0] == 3
            assert len(ro.acknowledgement_links()) == 1 and len(ro.snapshot_paths()) == 4
            assert len(ro.snapshots_due(at(10), 0)) == 4
        assert ro.integrity_check() == "ok"
        assert ro.count_screenings_for_export(at(0), at(10)) == 5
        assert len(ro.screenings_for_export(at(0), at(10))) == 5
        assert len(ro.system_events_for_export(at(0), at(60))) == 2
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == beside


# ---------------------------------------------------------------------- guarded log
def test_is_logged_finds_exactly_the_row(store: EventStore, log) -> None:
    assert store.is_logged_screening(at(2), 3, 4.5, "rec")
    assert not store.is_logged_screening(at(2), 3, 4.5, "other")
    assert not store.is_logged_screening(at(2), 4, 4.5, "rec")
    assert store.is_logged_system_event(at(10), "camera_back", 2.0, "{}")
    assert not store.is_logged_system_event(at(10), "camera_back", 2.0, '{"x":1}')
    assert not store.is_logged_system_event(at(11), "camera_back", 2.0, "{}")
