"""Issue 13, 5.4 and 5.5: an export's period and output path are refused in one line, before the log is opened."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_checks import one_line_error
from click.testing import CliRunner

from station.cli.main import main
from station.log.store import EventStore
from station.types import SystemEvent


@pytest.fixture
def log(tmp_path: Path) -> Path:
    db = tmp_path / "station.db"
    with EventStore(db) as store:
        store.record_system_event(SystemEvent("started", 0.0, ""), wall_time=datetime(2026, 12, 1, tzinfo=UTC))
    return db


def export(log: Path, out: Path, start: str = "2026-12-01", end: str = "2026-12-31"):
    return CliRunner().invoke(main, ["export", "--from", start, "--to", end, "--format", "csv", "--out", str(out),
                                     "--operator", "audit-1", "--db", str(log)])


def untouched(log: Path):
    """The log's bytes and what lies beside it, to show a refused export did not even open it."""
    return hashlib.sha256(log.read_bytes()).hexdigest(), sorted(p.name for p in log.parent.iterdir())


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [("2026-12-01", "9999-12-31", "--to 9999-12-31: out of the calendar's range"),
     ("2026-12-01", "9999-12-31T23:00-05:00", "--to 9999-12-31T23:00-05:00: out of the calendar's range"),
     ("0001-01-01T00:30+01:00", "2026-12-31", "--from 0001-01-01T00:30+01:00: out of the calendar's range"),
     ("2026-12-01", "9999-12-30", "one export spans at most 36525 days")],
)
def test_a_period_past_the_calendar_or_of_millennia_is_one_line(log, tmp_path, start, end, message):
    before = untouched(log)
    line = one_line_error(export(log, tmp_path / "e.csv", start, end))
    assert message in line and "OverflowError" not in line
    assert untouched(log) == before and not (tmp_path / "e.csv").exists()


def test_a_century_is_still_one_export(log, tmp_path):
    result = export(log, tmp_path / "e.csv", "2000-01-01", "2099-12-31")
    assert result.exit_code == 0, result.output


def test_an_output_under_a_file_says_it_is_not_a_directory(log, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("a file")
    before = untouched(log)
    assert one_line_error(export(log, afile / "e.csv")) == f"Error: {afile / 'e.csv'}: {afile} is not a directory"
    assert f"{afile} is not a directory" in one_line_error(export(log, afile / "deeper" / "e.csv"))
    assert untouched(log) == before and afile.read_text() == "a file"


def test_an_output_in_a_missing_directory_still_says_it_does_not_exist(log, tmp_path):
    out = tmp_path / "nowhere" / "e.csv"
    assert one_line_error(export(log, out)) == f"Error: {out}: directory {out.parent} does not exist"
