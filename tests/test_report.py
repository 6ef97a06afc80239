"""The auditors' HTML report: aggregates on hand-made data, pauses, escaping, self-containment, speed, Chromium.

The Chromium test renders a real report in headless Chromium and checks the screenshot's pixels: it is
the only proof that the inline SVG actually draws (a typo in an attribute gives a valid file and an
empty chart). It runs where Chromium is installed; elsewhere (a developer's laptop) it is skipped with
the reason printed by ``-ra``, except where ``STATION_REQUIRE_CHROMIUM=1`` (``.ci/run`` installs
Chromium and sets it), where a missing Chromium fails, so CI cannot pass by accident.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest

from station.log.report import (
    HIST_LO_C,
    LEVEL_COLOURS,
    LEVELS,
    STILL_PAUSED,
    STILL_PAUSED_AT_REPORT,
    ReportData,
    body_histogram,
    counts_per_day,
    counts_per_hour,
    pause_intervals,
    period_days,
    render_report,
    screening_columns,
    time_bins,
)
from station.types import LEVELS as STORE_LEVELS

DAY1 = datetime(2026, 11, 23, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
END = DAY1 + timedelta(days=2)


def iso(moment: datetime) -> str:
    """The store's wall_time text: ISO 8601 UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def at(day: datetime, hh: int, mm: int = 0, ss: int = 0, ms: int = 0) -> datetime:
    return day + timedelta(hours=hh, minutes=mm, seconds=ss, milliseconds=ms)


def screening(sid: int, when: datetime, level: str, body: float | None, *, acked: bool = False,
              bb: float | None = 0.05, cal: str = "entrance-1@2026-11-01T08:00:00Z") -> dict:
    return {
        "id": sid, "wall_time": iso(when), "skin_c": None if body is None else round(body - 1.24, 2), "body_c": body,
        "level": level, "quality": [] if body is not None else ["too_far"], "calibration_id": cal,
        "blackbody_error_c": bb, "acknowledged": acked,
    }


def event(kind: str, when: datetime, detail: str = "") -> dict:
    return {"kind": kind, "wall_time": iso(when), "detail": detail or kind}


def small_rows() -> list[dict]:
    """Nine screenings over two days, chosen for the edges: 37.30 exactly, midnight, out-of-range values."""
    return [
        screening(1, at(DAY1, 8, 15), "normal", 36.80),
        screening(2, at(DAY1, 8, 40), "normal", 37.29),
        screening(3, at(DAY1, 9, 5), "elevated", 37.30, acked=True),
        screening(4, at(DAY1, 14, 0), "fever", 38.00),
        screening(5, at(DAY1, 14, 30), "retry", None, bb=None),
        screening(6, at(DAY1, 23, 59, 59, 999), "normal", 33.50),  # last millisecond of day 1, below 34 °C
        screening(7, DAY2, "normal", 36.85),  # first millisecond of day 2
        screening(8, at(DAY2, 8, 10), "fever", 41.20, acked=True),  # above 41 °C
        screening(9, at(DAY2, 8, 20), "elevated", 37.95),
    ]


def make_data(rows: list[dict], *, acks: list[dict] | None = None, events: list[dict] | None = None,
              start: datetime = DAY1, end: datetime = END, **extra) -> ReportData:
    return ReportData(
        period_from=start, period_to=end, station="entrance-1", screenings=rows, acknowledgements=acks or [],
        system_events=events or [], elevated_c=37.3, fever_c=38.0,
        filters={"from": iso(start), "to": iso(end)}, generated_at=end + timedelta(hours=1), **extra,
    )


def synthetic_rows(n: int, days: int, seed: int = 7) -> tuple[list[dict], list[dict]]:
    """``n`` screenings spread over ``days`` with a realistic mix: mostly normal, some alarms and retries.

    Returns the rows and acknowledgements for four alarms in five (the rest are left unacknowledged).
    """
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.uniform(0, days * 86400, n))
    kind = rng.random(n)
    body = np.where(kind < 0.80, rng.normal(36.7, 0.35, n),
                    np.where(kind < 0.92, rng.uniform(37.3, 37.99, n), rng.uniform(38.0, 40.0, n))).round(2)
    retry = rng.random(n) < 0.04
    drift = 0.12 * np.sin(seconds / 86400 * 2 * np.pi) + rng.normal(0, 0.04, n)
    drift[(seconds > 2.3 * 86400) & (seconds < 2.4 * 86400)] += 0.45  # an excursion out of tolerance
    rows, acks = [], []
    for i in range(n):
        b = None if retry[i] else float(body[i])
        level = "retry" if b is None else "normal" if b < 37.3 else "elevated" if b < 38.0 else "fever"
        acked = level in ("elevated", "fever") and i % 5 != 0
        when = DAY1 + timedelta(seconds=float(seconds[i]))
        rows.append(screening(i + 1, when, level, b, acked=acked, bb=float(drift[i])))
        if acked:
            acks.append({"screening_id": i + 1, "wall_time": iso(when + timedelta(seconds=40)),
                         "action": "cleared_secondary_check", "thermometer_c": 36.9, "note": "oral check",
                         "operator": "guard-2"})
    return rows, acks


def svgs(doc: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", doc, flags=re.S)


# ------------------------------------------------------------------------------------- aggregates
def test_levels_match_the_store():
    assert LEVELS == STORE_LEVELS


def test_counts_per_day_split_at_utc_midnight():
    days, counts = counts_per_day(screening_columns(small_rows()), DAY1, END)
    assert days == [DAY1.date(), DAY2.date()]
    by_level = [dict(zip(LEVELS, map(int, counts[d]), strict=True)) for d in range(2)]
    assert by_level[0] == {"normal": 3, "elevated": 1, "fever": 1, "retry": 1}
    assert by_level[1] == {"normal": 1, "elevated": 1, "fever": 1, "retry": 0}


def test_period_days_end_is_excluded():
    assert period_days(DAY1, END) == [DAY1.date(), DAY2.date()]
    assert period_days(DAY1, DAY1 + timedelta(hours=3)) == [DAY1.date()]
    assert period_days(DAY1, DAY1) == [DAY1.date()]  # an empty period still has an axis


def test_counts_per_hour_pool_the_days():
    counts = counts_per_hour(screening_columns(small_rows()))
    assert counts.shape == (24, 4)
    assert counts.sum() == 9
    as_dict = {h: dict(zip(LEVELS, map(int, counts[h]), strict=True)) for h in range(24) if counts[h].any()}
    assert as_dict == {
        0: {"normal": 1, "elevated": 0, "fever": 0, "retry": 0},
        8: {"normal": 2, "elevated": 1, "fever": 1, "retry": 0},  # two from day 1, two from day 2
        9: {"normal": 0, "elevated": 1, "fever": 0, "retry": 0},
        14: {"normal": 0, "elevated": 0, "fever": 1, "retry": 1},
        23: {"normal": 1, "elevated": 0, "fever": 0, "retry": 0},
    }


def test_histogram_bins_clip_and_exact_thresholds():
    hist = body_histogram(screening_columns(small_rows()))
    assert hist.counts.shape == (70, 4)
    assert hist.edges[0] == pytest.approx(34.0) and hist.edges[-1] == pytest.approx(41.0)
    assert (hist.below, hist.above, hist.missing) == (1, 1, 1)
    normal, elevated, fever = (LEVELS.index(k) for k in ("normal", "elevated", "fever"))
    expected = {(0, normal): 1, (28, normal): 2, (32, normal): 1, (33, elevated): 1, (39, elevated): 1,
                (40, fever): 1, (69, fever): 1}
    nonzero = {(int(i), int(k)): int(hist.counts[i, k]) for i, k in zip(*np.nonzero(hist.counts), strict=True)}
    assert nonzero == expected
    # 37.30 is elevated, and lands in the bin that starts at the elevated line, not the one below it.
    assert hist.edges[33] == pytest.approx(37.3)
    assert hist.edges[0] == HIST_LO_C


def test_time_bins_keep_min_and_max():
    t = np.array([0.0, 1.0, 2.0, 50.0, 99.0])
    v = np.array([0.1, -0.4, np.nan, 0.2, 0.6])
    bins = time_bins(t, v, 0.0, 100.0, 10)
    assert bins.count.tolist() == [2, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    assert (bins.minimum[0], bins.maximum[0]) == (-0.4, 0.1)
    assert bins.mean[0] == pytest.approx(-0.15)
    assert np.isnan(bins.mean[1])


# ----------------------------------------------------------------------------------------- pauses
def test_overlapping_causes_make_one_pause_until_all_clear():
    events = [
        event("camera_lost", at(DAY1, 10)),
        event("blackbody_not_seen", at(DAY1, 10, 5)),
        event("camera_recovered", at(DAY1, 10, 10)),  # the blackbody is still not seen: still paused
        event("blackbody_unstable", at(DAY1, 10, 12)),  # another blackbody state, same cause
        event("blackbody_ok", at(DAY1, 10, 20)),
    ]
    assert pause_intervals(events, DAY1, END) == [
        (at(DAY1, 10), at(DAY1, 10, 20), "camera_lost, blackbody_not_seen, blackbody_unstable"),
    ]


def test_nested_pause_inside_a_longer_one():
    events = [
        event("blackbody_out_of_tolerance", at(DAY1, 9)),
        event("camera_lost", at(DAY1, 9, 30)),
        event("camera_recovered", at(DAY1, 9, 31)),
        event("blackbody_ok", at(DAY1, 11)),
        event("camera_lost", at(DAY1, 12)),
        event("camera_recovered", at(DAY1, 12, 1, 30)),
    ]
    assert pause_intervals(events, DAY1, END) == [
        (at(DAY1, 9), at(DAY1, 11), "blackbody_out_of_tolerance, camera_lost"),
        (at(DAY1, 12), at(DAY1, 12, 1, 30), "camera_lost"),
    ]


def test_stopped_then_started():
    events = [event("started", at(DAY1, 7)), event("stopped", at(DAY1, 12)), event("started", at(DAY1, 12, 30))]
    assert pause_intervals(events, DAY1, END) == [(at(DAY1, 12), at(DAY1, 12, 30), "stopped")]


def test_pause_still_open_at_period_end():
    events = [event("blackbody_ok", at(DAY2, 8)), event("blackbody_out_of_tolerance", at(DAY2, 23))]
    [(start, end, why)] = pause_intervals(events, DAY1, END)
    assert (start, end) == (at(DAY2, 23), END)
    assert why == f"blackbody_out_of_tolerance ({STILL_PAUSED})"


def test_expired_calibration_outlasts_its_own_started():
    """The pipeline logs calibration_expired just before its intake logs started: the run stays paused."""
    events = [
        event("stopped", at(DAY1, 12)),
        event("calibration_expired", at(DAY1, 12, 30)),
        event("started", at(DAY1, 12, 30)),
        event("stopped", at(DAY1, 15)),  # a technician recalibrates...
        event("started", at(DAY1, 15, 10)),  # ...and the next run starts with no expiry
    ]
    assert pause_intervals(events, DAY1, END) == [(at(DAY1, 12), at(DAY1, 15, 10), "stopped, calibration_expired")]


def test_started_closes_what_a_crashed_run_left_open():
    events = [event("camera_lost", at(DAY1, 10)), event("started", at(DAY1, 11))]  # no stopped: power cut
    assert pause_intervals(events, DAY1, END) == [(at(DAY1, 10), at(DAY1, 11), "camera_lost")]


def test_pauses_are_clipped_to_the_period_and_sorted():
    events = [
        event("started", at(DAY1, 1)),
        event("stopped", DAY1 - timedelta(hours=1)),  # out of order on purpose
        event("camera_lost", END + timedelta(hours=1)),  # after the period: not shown
        event("blackbody_ok", at(DAY1, 5)),  # an end with nothing open: ignored
        event("source_finished", at(DAY1, 6)),  # not about pauses
    ]
    assert pause_intervals(events, DAY1, END) == [(DAY1, at(DAY1, 1), "stopped")]


def test_no_events_no_pauses():
    assert pause_intervals([], DAY1, END) == []


# A report for December made on 6 December: the period reaches 25 days into the future. Fixed dates, so the test
# never depends on the day it runs.
DEC1, JAN1 = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
MADE = datetime(2026, 12, 6, 17, 0, tzinfo=UTC)  # the export's time, as its clock gave it


def test_a_pause_open_when_the_report_is_made_ends_there_not_at_the_period_end():
    events = [event("started", datetime(2026, 12, 1, 7, tzinfo=UTC)),
              event("camera_lost", datetime(2026, 12, 6, 16, tzinfo=UTC))]
    assert pause_intervals(events, DEC1, JAN1, now=MADE) == [
        (datetime(2026, 12, 6, 16, tzinfo=UTC), MADE, f"camera_lost ({STILL_PAUSED_AT_REPORT})")]
    assert pause_intervals(events, DEC1, JAN1, now=JAN1 + timedelta(days=3)) == pause_intervals(events, DEC1, JAN1), \
        "a report made after the period is unchanged"
    assert pause_intervals(events, DEC1, JAN1, now=DEC1 - timedelta(days=1)) == [], "nothing has happened yet"


def test_a_report_made_mid_period_counts_pauses_only_up_to_its_making():
    events = [event("started", datetime(2026, 12, 1, 7, tzinfo=UTC)),
              event("camera_lost", datetime(2026, 12, 6, 16, tzinfo=UTC))]

    def report(generated_at: datetime) -> str:
        return render_report(ReportData(
            period_from=DEC1, period_to=JAN1, station="entrance-1", screenings=small_rows(), acknowledgements=[],
            system_events=events, elevated_c=37.3, fever_c=38.0, filters={"from": iso(DEC1), "to": iso(JAN1)},
            generated_at=generated_at))

    doc = report(MADE)
    # 1 h paused of the 5 d 17 h that had happened: 0.7 %, not "25 d 8 h (81.7 % of the period)".
    assert "1 pause, 1 h 00 min in all (0.7 % of the period so far, to 2026-12-06 17:00:00 UTC)." in doc
    assert "2026-12-06 17:00:00.000" in doc and STILL_PAUSED_AT_REPORT in doc and STILL_PAUSED not in doc
    assert "not over when this report was made: pauses and availability up to 2026-12-06 17:00:00 UTC" in doc

    def available_width(doc: str) -> float:
        [width] = re.findall(r'<rect class="available" x="[\d.]+" y="[\d.]+" width="([\d.]+)"', doc)
        return float(width)

    after = report(JAN1 + timedelta(hours=1))  # the same period reported once it is over
    assert "25 d 8 h 00 min in all (81.7 % of the period)." in after and "not over" not in after
    assert available_width(doc) / available_width(after) == pytest.approx((5 + 17 / 24) / 31, abs=1e-3), \
        "the screening strip stops at the report's making"
    for chart in svgs(doc):
        ET.fromstring(chart)


# ------------------------------------------------------------------------------------------- HTML
def test_database_text_is_escaped():
    rows = small_rows()
    rows[3]["calibration_id"] = "</td><b>cal</b>"
    acks = [{"screening_id": 4, "wall_time": iso(at(DAY1, 14, 2)), "action": "referred", "thermometer_c": 38.4,
             "note": "<script>alert(1)</script>", "operator": '"><img src=x onerror=alert(2)>'}]
    events = [event("blackbody_unstable", at(DAY1, 16), "<svg onload=alert(3)>"), event("blackbody_ok", at(DAY1, 17))]
    data = make_data(rows, acks=acks, events=events)
    data = ReportData(**{**data.__dict__, "station": "<b>hall</b>", "filters": {"operator<": "<i>x</i>"}})
    doc = render_report(data)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc
    assert "<script" not in doc.lower()
    assert "<img" not in doc and "<b>" not in doc and "<i>" not in doc
    assert "&lt;svg onload=alert(3)&gt;" in doc
    assert "&lt;/td&gt;&lt;b&gt;cal&lt;/b&gt;" in doc
    assert "&quot;&gt;&lt;img src=x" in doc


def test_report_is_self_contained():
    rows, acks = synthetic_rows(2000, 7)
    doc = render_report(make_data(rows, acks=acks, events=[event("stopped", at(DAY1, 3)),
                                                            event("started", at(DAY1, 4))],
                                  end=DAY1 + timedelta(days=7)))
    assert doc.startswith("<!DOCTYPE html>")
    assert "http://" not in doc and "https://" not in doc
    tags = re.findall(r"<[a-zA-Z][^>]*>", doc)
    assert not [t for t in tags if re.search(r"\bsrc\s*=", t)]
    assert all(h.startswith("#") for h in re.findall(r'\bhref="([^"]*)"', doc))
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", doc, flags=re.I)
    assert "url(" not in doc and "@import" not in doc
    assert "default-src 'none'" in doc  # the browser refuses any fetch that slipped in anyway


def test_report_sections_and_wellformed_svg():
    acks = [{"screening_id": 3, "wall_time": iso(at(DAY1, 9, 7)), "action": "cleared_secondary_check",
             "thermometer_c": 36.9, "note": "oral 36.9", "operator": "guard-1"},
            {"screening_id": 8, "wall_time": iso(at(DAY2, 8, 12)), "action": "referred", "thermometer_c": 39.1,
             "note": "", "operator": "guard-2"}]
    events = [event("blackbody_unstable", at(DAY1, 11)), event("blackbody_ok", at(DAY1, 11, 30)),
              event("calibration_expired", at(DAY2, 20))]
    doc = render_report(make_data(small_rows(), acks=acks, events=events))
    charts = svgs(doc)
    assert len(charts) == 4  # per day, per hour, histogram, blackbody timeline
    for chart in charts:
        ET.fromstring(chart)  # well-formed: every element closed, every entity known to XML
    assert "de-identified" in doc.lower() and "no track ids" in doc
    assert doc.count('class="unack">NOT ACKNOWLEDGED') == 2  # the fever of day 1 and the elevated of day 2
    assert "guard-1" in doc and "oral 36.9" in doc and "39.10" in doc
    assert "elevated ≥ 37.30 °C" in doc and "fever ≥ 38.00 °C" in doc
    assert "1 below 34.0 °C counted in the first bin, 1 at or above 41.0 °C in the last" in doc
    assert doc.count('class="paused"') == 2  # the blackbody pause and the open calibration one
    assert STILL_PAUSED in doc
    assert "calibration_expired" in doc and "blackbody_unstable" in doc


def test_empty_period_is_a_valid_report():
    for end in (END, DAY1):  # an ordinary period with nothing in it, and a zero-length one
        doc = render_report(make_data([], end=end))
        assert "No screenings in this period" in doc
        assert not re.search(r"\b(nan|inf)\b", doc, flags=re.I)  # no division by zero leaked into the page
        for chart in svgs(doc):
            ET.fromstring(chart)
        assert doc.rstrip().endswith("</html>")


def test_empty_period_with_pauses_still_shows_them():
    doc = render_report(make_data([], events=[event("stopped", at(DAY1, 18))]))
    assert "No screenings in this period" in doc
    assert doc.count('class="paused"') == 1
    assert "stopped" in doc


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        make_data([], start=datetime(2026, 11, 23))


def test_large_period_renders_quickly():
    rows, acks = synthetic_rows(100_000, 30)
    data = make_data(rows, acks=acks, end=DAY1 + timedelta(days=30),
                     events=[event("camera_lost", at(DAY1 + timedelta(days=3), 2)),
                             event("camera_recovered", at(DAY1 + timedelta(days=3), 3))])
    t0 = time.perf_counter()
    doc = render_report(data)
    elapsed = time.perf_counter() - t0
    print(f"render_report: 100,000 screenings in {elapsed:.2f} s, {len(doc) / 1e6:.1f} MB")
    assert elapsed < 5.0
    # Aggregated, not one element per screening: the charts stay small whatever the row count.
    assert sum(chart.count("<rect") for chart in svgs(doc)) < 3000


# --------------------------------------------------------------------------------------- Chromium
def _chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        message = ("headless Chromium is not installed (looked for `chromium` and `chromium-browser` on PATH); "
                   "install it to run this test (Debian: apt-get install -y chromium)")
        if os.environ.get("STATION_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return binary


def _colour_pixels(bgr: np.ndarray, hex_colour: str, tol: int = 10) -> int:
    rgb = np.array([int(hex_colour[k : k + 2], 16) for k in (1, 3, 5)])
    diff = np.abs(bgr[:, :, ::-1].astype(np.int16) - rgb).max(axis=2)
    return int(np.count_nonzero(diff <= tol))


@pytest.mark.chromium
def test_report_renders_in_chromium(tmp_path):
    binary = _chromium()
    rows, acks = synthetic_rows(3000, 7)
    acks[0]["note"] = "<script>alert(1)</script>"
    events = [event("stopped", at(DAY1 + timedelta(days=1), 22)), event("started", DAY1 + timedelta(days=2, hours=6)),
              event("blackbody_out_of_tolerance", at(DAY1 + timedelta(days=2), 7, 12)),
              event("blackbody_ok", at(DAY1 + timedelta(days=2), 9, 36))]
    page = tmp_path / "report.html"
    page.write_text(render_report(make_data(rows, acks=acks, events=events, end=DAY1 + timedelta(days=7))),
                    encoding="utf-8")
    shot = tmp_path / "report.png"
    command = [binary, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
               "--disable-dev-shm-usage", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
               f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"Chromium wrote no screenshot (exit {result.returncode}):\n{result.stderr[-2000:]}"
    image = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (2400, 1280)
    not_white = np.count_nonzero(image.min(axis=2) < 235)
    assert not_white > 0.03 * image.shape[0] * image.shape[1], "the screenshot is (almost) blank"
    assert image.std() > 20
    # Bars, not only the legend swatches (12 px each): thousands of pixels of each colour.
    assert _colour_pixels(image, LEVEL_COLOURS["normal"]) > 5000
    assert _colour_pixels(image, LEVEL_COLOURS["fever"]) > 1000
    assert _colour_pixels(image, LEVEL_COLOURS["elevated"]) > 1000
