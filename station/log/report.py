"""The auditors' HTML report: one self-contained file with the period's counts, alarms, calibration and pauses.

Why it looks as it does:

* **One file, nothing fetched.** The report is opened on an auditor's laptop, attached to an e-mail,
  printed and filed. Anything it loaded from elsewhere (a chart library, a web font) might be gone in
  five years, would tell a third party that the report was opened, and could change what the auditor
  sees. So CSS is inline, the charts are inline SVG drawn here, there is no JavaScript, and a
  Content-Security-Policy ``default-src 'none'`` makes the browser refuse any fetch that slipped in.
* **Aggregated, not plotted point by point.** A busy entrance logs 100,000 screenings a month. Every
  chart is a count per bin (day, hour, 0.1 °C, a slice of the period), so the file and the time to draw
  it grow with the number of bins, not of people, and the browser stays responsive.
* **Everything from the database is text to escape.** Notes and operator names are typed by people
  at the station, calibration ids and event details come from files; each goes through
  :func:`html.escape` before it reaches the page, so a note cannot become markup or a script.
* **De-identified.** The rows handed in carry no images, no face boxes and no track ids (the export
  removes them); the report says so, so the reader knows what a printout can and cannot reveal.
* **Times in UTC.** The store's clock is UTC; converting to local time would make days and hours
  shift with daylight saving and disagree with the CSV/JSON export of the same period.
* **The future is not a pause.** A report for a period that has not ended yet (December's, made on
  6 December) counts pauses and availability only up to the moment it was made
  (:attr:`ReportData.observed_to`): a cause still open then ends there, and the share of time paused is
  of the part of the period that has happened. The rest of the period is left blank, not called a pause.

Everything here is pure (no clock, no files, no Qt): :func:`render_report` returns a string and the
caller writes it, so tests can check the aggregates and the markup directly.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from station.types import ALARM_LEVELS, LEVEL_COLOURS, LEVELS

#: The store's levels (:data:`station.types.LEVELS`, one vocabulary); bars stack in this order. The chart
#: colours are the window's (:data:`station.types.LEVEL_COLOURS`), so a level looks the same on screen and on paper.
PAUSE_COLOUR = "#455a64"
AVAILABLE_COLOUR = "#c8e6c9"

#: The body temperature histogram: 0.1 °C bins from 34 to 41 °C (clinically everything a person can be
#: and still walk through a door; readings outside are counted in the edge bins and said so).
HIST_LO_C = 34.0
HIST_HI_C = 41.0
HIST_STEP_C = 0.1
#: The blackbody tolerance a calibration profile uses by default, shaded on the blackbody timeline.
BLACKBODY_TOLERANCE_C = 0.3
#: How many time slices the blackbody timeline has at most: about two per pixel column of the chart,
#: enough to show every excursion, never one SVG element per screening.
BLACKBODY_BINS = 480

#: System events that pause screening, and the cause each one opens. Causes are tracked separately so
#: that one ending does not hide another still open (the camera recovers while the blackbody is still
#: warming up: the station is still paused).
PAUSE_STARTS: Mapping[str, str] = {
    "blackbody_not_seen": "blackbody",
    "blackbody_unstable": "blackbody",
    "blackbody_out_of_tolerance": "blackbody",
    "camera_lost": "camera",
    "calibration_expired": "calibration",
    "stopped": "stopped",
}
#: System events that end a cause. ``started`` is handled apart (see :func:`pause_intervals`).
PAUSE_ENDS: Mapping[str, str] = {"blackbody_ok": "blackbody", "camera_recovered": "camera"}
STILL_PAUSED = "still paused at the end of the period"
#: The same for a period that reaches past the report's making: the pause is open, its end unknown yet.
STILL_PAUSED_AT_REPORT = "still paused when this report was made"

_DAY_S = 86400.0
_SVG_W = 960.0


# ---------------------------------------------------------------------------------------------- input
@dataclass(frozen=True)
class ReportData:
    """Everything one report shows; built by the export from the store, or by hand in tests.

    Parameters
    ----------
    period_from, period_to
        The period ``[from, to)`` the auditor asked for, timezone-aware.
    station
        The station's name, as printed in the header.
    screenings
        De-identified rows: ``id``, ``wall_time`` (ISO 8601 UTC text or an aware datetime), ``skin_c``,
        ``body_c``, ``level``, ``quality`` (list of flags), ``calibration_id``, ``blackbody_error_c``,
        ``acknowledged`` (bool). Further keys are ignored.
    acknowledgements
        ``screening_id``, ``wall_time``, ``action``, ``thermometer_c``, ``note``, ``operator``.
    system_events
        ``kind``, ``wall_time``, ``detail``: the period's events (pauses, calibration, blackbody).
    elevated_c, fever_c
        The body temperature thresholds in force, drawn on the histogram.
    filters
        The filters as the auditor gave them, printed verbatim (escaped).
    generated_at
        When the report was made; printed in UTC.
    timezone
        The station's timezone, as a label only: all times are shown in UTC (module notes).
    blackbody_tolerance_c
        Half-width of the band drawn on the blackbody timeline.
    """

    period_from: datetime
    period_to: datetime
    station: str
    screenings: list[dict[str, Any]]
    acknowledgements: list[dict[str, Any]]
    system_events: list[dict[str, Any]]
    elevated_c: float
    fever_c: float
    filters: dict[str, str]
    generated_at: datetime
    timezone: str = "UTC"
    blackbody_tolerance_c: float = BLACKBODY_TOLERANCE_C

    def __post_init__(self) -> None:
        # A naive time is ambiguous by up to a day's worth of timezones: refuse it rather than guess.
        for name in ("period_from", "period_to", "generated_at"):
            value = getattr(self, name)
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise ValueError(f"ReportData.{name}: expected a timezone-aware datetime, got {value!r}")
        if self.period_to < self.period_from:
            raise ValueError(f"ReportData: period ends ({self.period_to}) before it starts ({self.period_from})")

    @property
    def observed_to(self) -> datetime:
        """Where what has happened ends: ``period_to``, or ``generated_at`` when the period reaches past it.

        Nothing can be known of the time after the report was made, least of all that the station was
        paused then: a cause still open at ``generated_at`` is open *so far*. Never before
        ``period_from`` (a period that had not begun has nothing observed, not a negative span).
        """
        return max(as_utc(self.period_from), min(as_utc(self.period_to), as_utc(self.generated_at)))

    @property
    def in_progress(self) -> bool:
        """Whether the report was made before its period ended (see :attr:`observed_to`)."""
        return self.observed_to < as_utc(self.period_to)


def as_utc(value: datetime | str) -> datetime:
    """An aware UTC datetime from the store's text (``...Z``) or a datetime.

    Text without an offset is taken as UTC, the store's convention; a naive datetime is refused
    because it comes from code, where the mistake should be fixed rather than guessed around.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"expected a timezone-aware datetime, got naive {value.isoformat()}")
        return value.astimezone(UTC)
    moment = datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _opt_float(value: Any) -> float:
    """NaN for a missing reading, so numpy can carry "no value" through the aggregates."""
    return float("nan") if value is None else float(value)


@dataclass(frozen=True)
class ScreeningColumns:
    """The screenings as numpy columns: parsed once, then every aggregate is a vectorised count.

    Attributes
    ----------
    epoch_s
        Wall time as seconds since 1970 UTC.
    level
        Index into :data:`LEVELS`, -1 for a level this report does not know.
    body_c, skin_c, blackbody_error_c
        Readings in °C, NaN where there was none (``retry`` rows, stations without a blackbody).
    """

    epoch_s: np.ndarray
    level: np.ndarray
    body_c: np.ndarray
    skin_c: np.ndarray
    blackbody_error_c: np.ndarray

    def __len__(self) -> int:
        return int(self.epoch_s.size)


def screening_columns(screenings: Sequence[Mapping[str, Any]]) -> ScreeningColumns:
    """Parse the rows' times, levels and readings into :class:`ScreeningColumns`."""
    n = len(screenings)
    index = {name: k for k, name in enumerate(LEVELS)}
    return ScreeningColumns(
        epoch_s=np.fromiter((as_utc(r["wall_time"]).timestamp() for r in screenings), dtype=np.float64, count=n),
        level=np.fromiter((index.get(r.get("level"), -1) for r in screenings), dtype=np.int64, count=n),
        body_c=np.fromiter((_opt_float(r.get("body_c")) for r in screenings), dtype=np.float64, count=n),
        skin_c=np.fromiter((_opt_float(r.get("skin_c")) for r in screenings), dtype=np.float64, count=n),
        blackbody_error_c=np.fromiter(
            (_opt_float(r.get("blackbody_error_c")) for r in screenings), dtype=np.float64, count=n
        ),
    )


# ----------------------------------------------------------------------------------------- aggregates
def period_days(period_from: datetime, period_to: datetime) -> list[date]:
    """The UTC calendar days the period ``[from, to)`` touches; at least one, so charts always have an axis."""
    first = as_utc(period_from).date()
    last = (as_utc(period_to) - timedelta(microseconds=1)).date() if period_to > period_from else first
    return [first + timedelta(days=k) for k in range(max((last - first).days, 0) + 1)]


def _midnight_epoch(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def counts_per_day(cols: ScreeningColumns, period_from: datetime, period_to: datetime) -> tuple[list[date], np.ndarray]:
    """Screenings per UTC day and level.

    Returns
    -------
    days, counts
        ``counts[d, k]`` is the number of screenings on ``days[d]`` with level ``LEVELS[k]``. Rows outside
        the period's days or with an unknown level are not counted (the export never produces them).
    """
    days = period_days(period_from, period_to)
    day_idx = np.floor((cols.epoch_s - _midnight_epoch(days[0])) / _DAY_S).astype(np.int64)
    keep = (day_idx >= 0) & (day_idx < len(days)) & (cols.level >= 0)
    flat = day_idx[keep] * len(LEVELS) + cols.level[keep]
    counts = np.bincount(flat, minlength=len(days) * len(LEVELS)).reshape(len(days), len(LEVELS))
    return days, counts


def counts_per_hour(cols: ScreeningColumns) -> np.ndarray:
    """Screenings per UTC hour of day (0-23, all days pooled) and level: ``counts[h, k]``.

    Pooling the days shows the daily rhythm (shift changes, rush hours) an auditor compares with staffing.
    """
    hour = (np.floor(cols.epoch_s / 3600.0).astype(np.int64)) % 24
    keep = cols.level >= 0
    flat = hour[keep] * len(LEVELS) + cols.level[keep]
    return np.bincount(flat, minlength=24 * len(LEVELS)).reshape(24, len(LEVELS))


@dataclass(frozen=True)
class Histogram:
    """Body temperatures counted in fixed bins, per level.

    Attributes
    ----------
    edges
        Bin edges in °C (``n_bins + 1`` values); bin ``i`` is ``[edges[i], edges[i + 1])``.
    counts
        ``counts[i, k]``: readings in bin ``i`` with level ``LEVELS[k]``.
    below, above
        Readings under the first edge / at or over the last one, counted in the first / last bin.
    missing
        Screenings without a body temperature (``retry``), not in the histogram.
    """

    edges: np.ndarray
    counts: np.ndarray
    below: int
    above: int
    missing: int


def body_histogram(
    cols: ScreeningColumns, lo_c: float = HIST_LO_C, hi_c: float = HIST_HI_C, step_c: float = HIST_STEP_C
) -> Histogram:
    """Histogram of body temperatures, values outside ``[lo_c, hi_c)`` clipped into the edge bins.

    Binning is done on hundredths of a degree, as integers: the station rounds body temperatures to
    0.01 °C before judging them, and ``(37.3 - 34) / 0.1`` is 32.999... in binary floating point, which
    would put a 37.30 reading (elevated) into the bin below the elevated line.
    """
    lo, step = round(lo_c * 100), round(step_c * 100)
    n_bins = round((hi_c - lo_c) / step_c)
    finite = np.isfinite(cols.body_c)
    centi = np.round(cols.body_c[finite] * 100.0).astype(np.int64)
    idx = (centi - lo) // step
    below, above = int(np.count_nonzero(idx < 0)), int(np.count_nonzero(idx >= n_bins))
    idx = np.clip(idx, 0, n_bins - 1)
    level = cols.level[finite]
    keep = level >= 0
    flat = idx[keep] * len(LEVELS) + level[keep]
    counts = np.bincount(flat, minlength=n_bins * len(LEVELS)).reshape(n_bins, len(LEVELS))
    edges = (lo + step * np.arange(n_bins + 1)) / 100.0
    return Histogram(edges=edges, counts=counts, below=below, above=above, missing=int(np.count_nonzero(~finite)))


@dataclass(frozen=True)
class TimeBins:
    """A reading summarised per time slice: min, max and mean of each slice that has readings."""

    edges_s: np.ndarray
    count: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    mean: np.ndarray


def time_bins(epoch_s: np.ndarray, values: np.ndarray, t0: float, t1: float, n_bins: int) -> TimeBins:
    """Min / max / mean of ``values`` in ``n_bins`` equal slices of ``[t0, t1)`` (NaN values skipped).

    Min and max, not only the mean, because a blackbody excursion of a few seconds is exactly what an
    auditor looks for, and a mean over an hour would hide it.
    """
    n_bins = max(int(n_bins), 1)
    span = max(t1 - t0, 1e-9)
    ok = np.isfinite(values) & (epoch_s >= t0) & (epoch_s < t1)
    idx = np.clip(np.floor((epoch_s[ok] - t0) / span * n_bins).astype(np.int64), 0, n_bins - 1)
    v = values[ok]
    count = np.bincount(idx, minlength=n_bins)
    total = np.bincount(idx, weights=v, minlength=n_bins)
    minimum = np.full(n_bins, np.inf)
    maximum = np.full(n_bins, -np.inf)
    np.minimum.at(minimum, idx, v)
    np.maximum.at(maximum, idx, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return TimeBins(edges_s=np.linspace(t0, t0 + span, n_bins + 1), count=count, minimum=minimum,
                    maximum=maximum, mean=mean)


def pause_intervals(
    system_events: Iterable[Mapping[str, Any]], period_from: datetime, period_to: datetime,
    now: datetime | None = None,
) -> list[tuple[datetime, datetime, str]]:
    """When the station was not screening, from its system events, clipped to the period.

    Each pausing kind opens a *cause* (blackbody, camera, calibration, stopped); the station is paused
    while any cause is open, so overlapping causes make one interval. ``blackbody_ok`` closes the
    blackbody cause, ``camera_recovered`` the camera one. ``started`` begins a new run, whose camera and
    blackbody monitor report afresh, so it closes every cause, except a ``calibration_expired`` raised
    since the previous ``started``: the pipeline reports an expired calibration just *before* its intake
    says ``started``, and that expiry holds for the whole run that is starting.

    Parameters
    ----------
    system_events
        ``kind`` and ``wall_time`` of the period's system events, in any order.
    period_from, period_to
        The period ``[from, to)``.
    now
        When the report is made (the export's time, passed in: this module reads no clock). A period
        reaching past it ends at ``now``: what has not happened yet is not a pause, and an interval
        still open then is open so far, not until ``period_to``. ``None``: the period has ended.

    Returns
    -------
    list of (start, end, reason)
        In time order, UTC. ``reason`` lists the kinds that paused the station during the interval; an
        interval still open at the period's end (``period_to``, or ``now`` if earlier) ends there and its
        reason says so (:data:`STILL_PAUSED`, :data:`STILL_PAUSED_AT_REPORT`). A pause open before the
        first event cannot be known (its start is not in the period's events) and is not invented.
    """
    start, end = as_utc(period_from), as_utc(period_to)
    still = STILL_PAUSED
    if now is not None and as_utc(now) < end:
        end, still = max(as_utc(now), start), STILL_PAUSED_AT_REPORT
    events = sorted(
        ((as_utc(e["wall_time"]), k, str(e["kind"])) for k, e in enumerate(system_events)),
        key=lambda item: (item[0], item[1]),
    )
    open_causes: dict[str, int] = {}  # cause -> number of `started` seen when it was raised
    runs = 0
    began: datetime | None = None
    kinds: list[str] = []
    raw: list[tuple[datetime, datetime, str]] = []
    for when, _, kind in events:
        if kind in PAUSE_STARTS:
            if not open_causes:
                began, kinds = when, []
            open_causes[PAUSE_STARTS[kind]] = runs
            if kind not in kinds:
                kinds.append(kind)
            continue
        was_open = bool(open_causes)
        if kind in PAUSE_ENDS:
            open_causes.pop(PAUSE_ENDS[kind], None)
        elif kind == "started":
            open_causes = {c: r for c, r in open_causes.items() if c == "calibration" and r == runs}
            runs += 1
        if was_open and not open_causes and began is not None:
            raw.append((began, when, ", ".join(kinds)))
    if open_causes and began is not None:
        raw.append((began, max(end, began), f"{', '.join(kinds)} ({still})"))
    clipped = [(max(a, start), min(b, end), why) for a, b, why in raw]
    return [(a, b, why) for a, b, why in clipped if b > a]


# ---------------------------------------------------------------------------------------- formatting
def _e(value: Any) -> str:
    """Escape anything for HTML text or attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt_time(moment: datetime, ms: bool = False) -> str:
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{moment.microsecond // 1000:03d}" if ms else text


def _fmt_c(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _e(value)
    return f"{number:.{digits}f}" if math.isfinite(number) else "—"


def _fmt_duration(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h {minutes:02d} min"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _num(value: float) -> str:
    """SVG coordinates with one decimal: sub-pixel enough, and keeps the file small."""
    return f"{value:.1f}"


def nice_ticks(top: float, target: int = 5, integer: bool = False) -> list[float]:
    """Round axis ticks from 0 to at least ``top`` (1, 2, 2.5 or 5 times a power of ten apart)."""
    if not math.isfinite(top) or top <= 0:
        return [0.0, 1.0]
    raw = top / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    steps = (1.0, 2.0, 5.0, 10.0) if integer else (1.0, 2.0, 2.5, 5.0, 10.0)
    step = next(m * magnitude for m in steps if raw <= m * magnitude * (1 + 1e-9))
    if integer:
        step = max(step, 1.0)
    n = max(math.ceil(top / step - 1e-9), 1)
    return [k * step for k in range(n + 1)]


# ------------------------------------------------------------------------------------------ SVG parts
@dataclass(frozen=True)
class _Plot:
    """A chart's plotting area and the data range it maps onto it."""

    left: float
    top: float
    width: float
    height: float
    x_min: float
    x_max: float
    y_min: float
    y_max: float

    def x(self, value: float) -> float:
        return self.left + (value - self.x_min) / max(self.x_max - self.x_min, 1e-12) * self.width

    def y(self, value: float) -> float:
        return self.top + self.height - (value - self.y_min) / max(self.y_max - self.y_min, 1e-12) * self.height

    @property
    def bottom(self) -> float:
        return self.top + self.height


def _svg(height: float, label: str, body: Iterable[str]) -> str:
    """An inline SVG with a text alternative, scaled to the page width (and to the paper when printed)."""
    return (f'<svg viewBox="0 0 {_num(_SVG_W)} {_num(height)}" role="img" aria-label="{_e(label)}" '
            f'preserveAspectRatio="xMidYMid meet"><title>{_e(label)}</title>{"".join(body)}</svg>')


def _axes(plot: _Plot, y_ticks: Sequence[float], x_ticks: Sequence[tuple[float, str]], y_title: str,
          y_fmt: str = "{:g}") -> list[str]:
    """Grid lines, tick labels and the axis title."""
    out = []
    for value in y_ticks:
        y = plot.y(value)
        out.append(f'<line class="grid" x1="{_num(plot.left)}" y1="{_num(y)}" x2="{_num(plot.left + plot.width)}" '
                   f'y2="{_num(y)}"/>')
        out.append(f'<text class="tick" x="{_num(plot.left - 6)}" y="{_num(y + 4)}" text-anchor="end">'
                   f"{_e(y_fmt.format(value))}</text>")
    for value, label in x_ticks:
        x = plot.x(value)
        out.append(f'<line class="axis" x1="{_num(x)}" y1="{_num(plot.bottom)}" x2="{_num(x)}" '
                   f'y2="{_num(plot.bottom + 4)}"/>')
        out.append(f'<text class="tick" x="{_num(x)}" y="{_num(plot.bottom + 16)}" text-anchor="middle">'
                   f"{_e(label)}</text>")
    out.append(f'<line class="axis" x1="{_num(plot.left)}" y1="{_num(plot.bottom)}" '
               f'x2="{_num(plot.left + plot.width)}" y2="{_num(plot.bottom)}"/>')
    mid = plot.top + plot.height / 2
    out.append(f'<text class="axis-title" x="14" y="{_num(mid)}" transform="rotate(-90 14 {_num(mid)})" '
               f'text-anchor="middle">{_e(y_title)}</text>')
    return out


def _stacked_bars(plot: _Plot, counts: np.ndarray, slot_names: Sequence[str] | None = None,
                  gap: float = 0.12) -> list[str]:
    """One stacked bar per slot (slot ``i`` spans ``[i, i + 1)`` on the x axis), levels bottom-up.

    Zero counts draw nothing, so a sparse month costs as many elements as it has busy days.
    """
    out = []
    n_slots = counts.shape[0]
    tops = np.cumsum(counts, axis=1)
    for i in range(n_slots):
        if not tops[i, -1]:
            continue
        x0, x1 = plot.x(i + gap), plot.x(i + 1 - gap)
        width = max(x1 - x0, 0.6)
        base = 0
        for k, level in enumerate(LEVELS):
            c = int(counts[i, k])
            if c:
                y_top, y_base = plot.y(base + c), plot.y(base)
                tip = f"<title>{_e(slot_names[i])}: {c} {level}</title>" if slot_names else ""
                out.append(f'<rect class="bar-{level}" x="{_num(x0)}" y="{_num(y_top)}" width="{_num(width)}" '
                           f'height="{_num(max(y_base - y_top, 0.5))}">{tip}</rect>')
                base += c
    return out


def _bands(plot: _Plot, spans: Iterable[tuple[float, float]], css: str, y0: float | None = None,
           y1: float | None = None) -> list[str]:
    """Vertical bands over x ranges (pauses), drawn behind the data."""
    top = plot.top if y0 is None else y0
    bottom = plot.bottom if y1 is None else y1
    out = []
    for a, b in spans:
        xa, xb = plot.x(a), plot.x(b)
        out.append(f'<rect class="{css}" x="{_num(xa)}" y="{_num(top)}" width="{_num(max(xb - xa, 1.0))}" '
                   f'height="{_num(bottom - top)}"/>')
    return out


def _legend(levels: Sequence[str] = LEVELS, extra: Sequence[tuple[str, str]] = ()) -> str:
    items = [f'<span class="key"><span class="sw sw-{level}"></span>{_e(level)}</span>' for level in levels]
    items += [f'<span class="key"><span class="sw {css}"></span>{_e(text)}</span>' for css, text in extra]
    return f'<p class="legend">{"".join(items)}</p>'


# --------------------------------------------------------------------------------------------- charts
def _y_range(counts: np.ndarray) -> list[float]:
    top = float(counts.sum(axis=1).max()) if counts.size else 0.0
    return nice_ticks(top, integer=True)


def _per_day_chart(cols: ScreeningColumns, data: ReportData, pauses: Sequence[tuple[datetime, datetime, str]]) -> str:
    """Stacked bars per day over a continuous time axis, with pauses shaded and an availability strip.

    The x axis is time (one slot per UTC day), so pauses, which have hours and minutes, can be drawn
    where they fell within the day rather than rounded to whole days.
    """
    days, counts = counts_per_day(cols, data.period_from, data.period_to)
    day0 = _midnight_epoch(days[0])
    ticks = _y_range(counts)
    plot = _Plot(left=60, top=12, width=_SVG_W - 76, height=210, x_min=0, x_max=len(days), y_min=0, y_max=ticks[-1])
    every = max(math.ceil(len(days) / 14), 1)
    x_ticks = [(i + 0.5, d.strftime("%d %b")) for i, d in enumerate(days) if i % every == 0]
    spans = [((a.timestamp() - day0) / _DAY_S, (b.timestamp() - day0) / _DAY_S) for a, b, _ in pauses]
    # The strip says "screening" only up to the report's making: the rest of the period has not happened.
    period = tuple((as_utc(t).timestamp() - day0) / _DAY_S for t in (data.period_from, data.observed_to))
    strip_top, strip_h = plot.bottom + 34, 14
    body = [
        *_bands(plot, spans, "pause-band"),
        *_axes(plot, ticks, x_ticks, "screenings per day"),
        *_stacked_bars(plot, counts, [d.isoformat() for d in days]),
        *_bands(plot, [period] if period[1] > period[0] else [], "available", strip_top, strip_top + strip_h),
        *_bands(plot, spans, "paused", strip_top, strip_top + strip_h),
        f'<text class="tick" x="{_num(plot.left - 6)}" y="{_num(strip_top + 11)}" text-anchor="end">screening</text>',
    ]
    label = f"Screenings per UTC day by level, {_plural(len(days), 'day')}, with {_plural(len(pauses), 'pause')} shaded"
    return _svg(strip_top + strip_h + 6, label, body)


def _per_hour_chart(cols: ScreeningColumns) -> str:
    counts = counts_per_hour(cols)
    ticks = _y_range(counts)
    plot = _Plot(left=60, top=12, width=_SVG_W - 76, height=170, x_min=0, x_max=24, y_min=0, y_max=ticks[-1])
    x_ticks = [(h + 0.5, f"{h:02d}") for h in range(24)]
    body = [*_axes(plot, ticks, x_ticks, "screenings"),
            *_stacked_bars(plot, counts, [f"{h:02d}:00-{h:02d}:59 UTC" for h in range(24)])]
    return _svg(plot.bottom + 24, "Screenings per UTC hour of day, all days pooled, by level", body)


def _histogram_chart(hist: Histogram, elevated_c: float, fever_c: float) -> str:
    """Stacked by the level each reading was *given*, so relative-mode alarms below the line still show."""
    ticks = _y_range(hist.counts)
    lo, hi = float(hist.edges[0]), float(hist.edges[-1])
    n_bins = hist.counts.shape[0]
    step = (hi - lo) / n_bins
    plot = _Plot(left=60, top=28, width=_SVG_W - 76, height=200, x_min=0, x_max=n_bins, y_min=0, y_max=ticks[-1])
    x_ticks = [((deg - lo) / step, f"{deg:g} °C") for deg in range(math.ceil(lo), math.floor(hi) + 1)]
    names = [f"{hist.edges[i]:.1f}-{hist.edges[i + 1]:.1f} °C" for i in range(n_bins)]
    body = [*_axes(plot, ticks, x_ticks, "people"), *_stacked_bars(plot, hist.counts, names, gap=0.06)]
    for value, name, anchor, dx in ((elevated_c, "elevated", "end", -4), (fever_c, "fever", "start", 4)):
        x = plot.x(min(max((value - lo) / step, 0), n_bins))
        body.append(f'<line class="thr thr-{name}" x1="{_num(x)}" y1="{_num(plot.top - 14)}" x2="{_num(x)}" '
                    f'y2="{_num(plot.bottom)}"/>')
        body.append(f'<text class="thr-label" x="{_num(x + dx)}" y="{_num(plot.top - 16)}" text-anchor="{anchor}">'
                    f"{_e(name)} ≥ {value:.2f} °C</text>")
    label = f"Histogram of body temperatures, {step:.1f} °C bins, thresholds at {elevated_c:.2f} and {fever_c:.2f} °C"
    return _svg(plot.bottom + 24, label, body)


def _time_ticks(t0: float, t1: float) -> list[tuple[float, str]]:
    """Ticks at whole days (or hours, for a short period) in ``[t0, t1)``, at most about 12.

    The end is left out: it is excluded from the period, and its label would overflow the chart.
    """
    span = max(t1 - t0, 1.0)
    for unit in (3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400):
        if span / unit <= 12:
            break
    first = math.ceil(t0 / unit) * unit
    fmt = "%d %b %H:%M" if unit < 86400 else "%d %b"
    return [(t, datetime.fromtimestamp(t, UTC).strftime(fmt)) for t in np.arange(first, t1, unit)]


def _blackbody_chart(cols: ScreeningColumns, data: ReportData,
                     pauses: Sequence[tuple[datetime, datetime, str]]) -> tuple[str, int]:
    """Blackbody error over the period: the tolerance band, min-max per slice, mean line, pauses shaded.

    Returns the SVG and how many readings fell outside the drawn range (clipped to its edge).
    """
    t0, t1 = as_utc(data.period_from).timestamp(), as_utc(data.period_to).timestamp()
    t1 = max(t1, t0 + 1.0)
    bins = time_bins(cols.epoch_s, cols.blackbody_error_c, t0, t1, BLACKBODY_BINS)
    tol = float(data.blackbody_tolerance_c)
    finite = cols.blackbody_error_c[np.isfinite(cols.blackbody_error_c)]
    worst = float(np.abs(finite).max()) if finite.size else 0.0
    reach = min(max(2 * tol, worst * 1.1, 0.1), 5 * max(tol, 0.1))
    clipped = int(np.count_nonzero(np.abs(finite) > reach))
    ticks = [v for v in nice_ticks(reach, target=3) if v <= reach + 1e-9]
    y_ticks = sorted({0.0 - v for v in ticks} | set(ticks))  # 0.0 - v: no "-0.00" tick
    plot = _Plot(left=60, top=10, width=_SVG_W - 76, height=170, x_min=t0, x_max=t1, y_min=-reach, y_max=reach)
    body = [
        *_bands(plot, [(a.timestamp(), b.timestamp()) for a, b, _ in pauses], "pause-band"),
        f'<rect class="tol-band" x="{_num(plot.left)}" y="{_num(plot.y(tol))}" width="{_num(plot.width)}" '
        f'height="{_num(plot.y(-tol) - plot.y(tol))}"/>',
        *_axes(plot, y_ticks, _time_ticks(t0, t1), "blackbody error °C", "{:+.2f}"),
    ]
    has = np.flatnonzero(bins.count)
    for i in has:
        lo = max(float(bins.minimum[i]), -reach)
        hi = min(float(bins.maximum[i]), reach)
        bad = bins.minimum[i] < -tol or bins.maximum[i] > tol
        x0, x1 = plot.x(bins.edges_s[i]), plot.x(bins.edges_s[i + 1])
        y_top, y_bot = plot.y(hi), plot.y(lo)
        body.append(f'<rect class="{"bb-bad" if bad else "bb-ok"}" x="{_num(x0)}" y="{_num(y_top - 0.75)}" '
                    f'width="{_num(max(x1 - x0, 1.2))}" height="{_num(max(y_bot - y_top, 0) + 1.5)}"/>')
    # The mean as one path, broken where a slice has no readings (a pause is not a flat line).
    parts, prev = [], -2
    for i in has:
        x = (plot.x(bins.edges_s[i]) + plot.x(bins.edges_s[i + 1])) / 2
        y = plot.y(min(max(float(bins.mean[i]), -reach), reach))
        parts.append(f"{'L' if i == prev + 1 else 'M'}{_num(x)} {_num(y)}")
        prev = i
    if parts:
        body.append(f'<path class="bb-mean" d="{" ".join(parts)}"/>')
    label = f"Blackbody error per screening over the period, tolerance ±{tol:.2f} °C shaded"
    return _svg(plot.bottom + 24, label, body), clipped


# ------------------------------------------------------------------------------------------- sections
def _header(data: ReportData, cols: ScreeningColumns, n_alarms: int, n_unacked: int) -> str:
    per_level = np.bincount(cols.level[cols.level >= 0], minlength=len(LEVELS)) if len(cols) else np.zeros(4, int)
    filters = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in data.filters.items()) or "<dd>none</dd>"
    levels = ", ".join(f"{int(per_level[k])} {level}" for k, level in enumerate(LEVELS))
    unknown = int(np.count_nonzero(cols.level < 0))
    tz = "" if data.timezone == "UTC" else f" (station timezone {_e(data.timezone)}; times are not converted)"
    period = f"{_fmt_time(data.period_from)} UTC to {_fmt_time(data.period_to)} UTC (end excluded)" + (
        f"; not over when this report was made: pauses and availability up to {_fmt_time(data.observed_to)} UTC"
        if data.in_progress else "")
    return f"""<header>
<h1>Screening report — {_e(data.station)}</h1>
<table class="facts">
<tr><th>Period</th><td>{period}</td></tr>
<tr><th>Times</th><td>All times are UTC{tz}</td></tr>
<tr><th>Filters</th><td><dl class="filters">{filters}</dl></td></tr>
<tr><th>Generated</th><td>{_fmt_time(data.generated_at)} UTC</td></tr>
<tr><th>Screenings</th><td>{len(cols)} ({levels}{f", {unknown} with an unknown level" if unknown else ""})</td></tr>
<tr><th>Alarms</th><td>{n_alarms} elevated or fever, {n_alarms - n_unacked} acknowledged,
 <span class="{"unack" if n_unacked else ""}">{n_unacked} not acknowledged</span></td></tr>
<tr><th>Other rows</th><td>{len(data.acknowledgements)} acknowledgements,
 {len(data.system_events)} system events</td></tr>
<tr><th>Thresholds</th><td>elevated ≥ {data.elevated_c:.2f} °C, fever ≥ {data.fever_c:.2f} °C
 (body temperature)</td></tr>
</table>
<p class="deid"><strong>De-identified report:</strong> no images, no face boxes and no track ids. Screening ids
are row numbers that join an alarm to its acknowledgements; they do not identify a person.</p>
</header>
<nav><a href="#counts">Counts</a> · <a href="#histogram">Temperatures</a> · <a href="#alarms">Alarms</a> ·
<a href="#calibration">Calibration</a> · <a href="#pauses">Pauses</a></nav>"""


def _counts_section(cols: ScreeningColumns, data: ReportData, pauses: Sequence[tuple[datetime, datetime, str]]) -> str:
    legend = _legend(extra=(("sw-pause", "station paused"), ("sw-available", "no pause recorded")))
    if not len(cols):
        empty = '<p class="empty">No screenings in this period.</p>'
        strip = _per_day_chart(cols, data, pauses) if pauses else ""
        return f'<section id="counts"><h2>Screenings per day and per hour</h2>{empty}{strip}</section>'
    return f"""<section id="counts"><h2>Screenings per day and per hour</h2>
{legend}
<figure>{_per_day_chart(cols, data, pauses)}<figcaption>Screenings per UTC day, stacked by level. Grey bands and
the strip below the axis mark when the station was paused (see <a href="#pauses">Pauses</a>).</figcaption></figure>
<figure>{_per_hour_chart(cols)}<figcaption>Screenings per hour of the day (UTC), all days of the period pooled.
</figcaption></figure>
</section>"""


def _histogram_section(cols: ScreeningColumns, data: ReportData) -> str:
    title = '<section id="histogram"><h2>Measured body temperatures</h2>'
    hist = body_histogram(cols)
    measured = int(hist.counts.sum())
    if not measured:
        return f'{title}<p class="empty">No screenings in this period with a body temperature.</p></section>'
    notes = [f"{measured} people measured; {hist.missing} screenings without a reading (retry) are not shown."]
    if hist.below or hist.above:
        notes.append(f"Values outside {HIST_LO_C:.0f}-{HIST_HI_C:.0f} °C are clipped into the edge bins: "
                     f"{hist.below} below {HIST_LO_C:.1f} °C counted in the first bin, {hist.above} at or above "
                     f"{HIST_HI_C:.1f} °C in the last.")
    else:
        notes.append(f"No value fell outside {HIST_LO_C:.0f}-{HIST_HI_C:.0f} °C.")
    notes.append("Bars are coloured by the level the station gave; in relative mode the elevated threshold "
                 "followed the crowd, so elevated readings may lie left of the line drawn.")
    return f"""{title}
{_legend(levels=LEVELS[:3])}
<figure>{_histogram_chart(hist, data.elevated_c, data.fever_c)}<figcaption>Body temperature in
{HIST_STEP_C:.1f} °C bins; the vertical lines are the elevated and fever thresholds. {" ".join(_e(n) for n in notes)}
</figcaption></figure></section>"""


def _acks_by_screening(acks: Iterable[Mapping[str, Any]]) -> dict[Any, list[Mapping[str, Any]]]:
    out: dict[Any, list[Mapping[str, Any]]] = {}
    for ack in acks:
        out.setdefault(ack.get("screening_id"), []).append(ack)
    for items in out.values():
        items.sort(key=lambda a: as_utc(a["wall_time"]) if a.get("wall_time") else datetime.min.replace(tzinfo=UTC))
    return out


def _is_acked(row: Mapping[str, Any], acked_ids: set[Any]) -> bool:
    """Acknowledged by the store's flag or by an acknowledgement in the export (either is proof)."""
    return bool(row.get("acknowledged")) or row.get("id") in acked_ids


def _alarm_rows(data: ReportData, cols: ScreeningColumns) -> tuple[list[int], int]:
    """Indices of the alarm screenings in time order, and how many have no acknowledgement."""
    alarm_idx = [LEVELS.index(level) for level in ALARM_LEVELS]
    rows = np.flatnonzero(np.isin(cols.level, alarm_idx))
    rows = rows[np.argsort(cols.epoch_s[rows], kind="stable")]
    acked = {a.get("screening_id") for a in data.acknowledgements}
    unacked = sum(1 for i in rows if not _is_acked(data.screenings[i], acked))
    return [int(i) for i in rows], unacked


def _ack_cells(row: Mapping[str, Any], acks: Sequence[Mapping[str, Any]]) -> str:
    if not acks:
        if row.get("acknowledged"):
            return '<td colspan="5" class="muted">acknowledged (the acknowledgement is not in this export)</td>'
        return '<td colspan="5" class="unack">NOT ACKNOWLEDGED</td>'

    def cell(values: Iterable[str], css: str = "") -> str:
        return f'<td{f" class={css!r}" if css else ""}>' + "".join(f"<div>{v}</div>" for v in values) + "</td>"

    return (cell((_fmt_time(as_utc(a["wall_time"])) if a.get("wall_time") else "—" for a in acks), "nowrap")
            + cell((_e(a.get("operator")) for a in acks), "nowrap")
            + cell(_e(a.get("action")) for a in acks)
            + cell((_fmt_c(a.get("thermometer_c")) for a in acks), "num")
            + cell(_e(a.get("note")) or "—" for a in acks))


def _alarms_section(data: ReportData, alarm_rows: Sequence[int], n_unacked: int) -> str:
    title = '<section id="alarms"><h2>Alarms (elevated and fever)</h2>'
    if not data.screenings:
        return f'{title}<p class="empty">No screenings in this period.</p></section>'
    if not alarm_rows:
        return f'{title}<p class="empty">No alarms in this period.</p></section>'
    by_screening = _acks_by_screening(data.acknowledgements)
    lines = []
    for i in alarm_rows:
        row = data.screenings[i]
        level = str(row.get("level"))
        lines.append(
            f'<tr><td class="nowrap">{_fmt_time(as_utc(row["wall_time"]), ms=True)}</td>'
            f'<td class="num">{_e(row.get("id"))}</td>'
            f'<td><span class="badge badge-{_e(level)}">{_e(level)}</span></td>'
            f'<td class="num">{_fmt_c(row.get("body_c"))}</td><td class="num">{_fmt_c(row.get("skin_c"))}</td>'
            f"<td>{_e(', '.join(map(str, row.get('quality') or [])))}</td>"
            f"{_ack_cells(row, by_screening.get(row.get('id'), []))}</tr>"
        )
    summary = (f"{len(alarm_rows)} alarms, "
               f'<span class="{"unack" if n_unacked else ""}">{n_unacked} not acknowledged</span>.')
    return f"""{title}<p>{summary}</p>
<table class="alarms"><thead><tr><th>Time (UTC)</th><th>Id</th><th>Level</th><th>Body °C</th><th>Skin °C</th>
<th>Quality</th><th>Acknowledged (UTC)</th><th>By</th><th>Action</th><th>Thermometer °C</th><th>Note</th></tr></thead>
<tbody>
{"".join(lines)}
</tbody></table></section>"""


def _calibration_ids(data: ReportData, cols: ScreeningColumns) -> list[tuple[str, int, float, float]]:
    """Each calibration profile used: (id, screenings, first, last epoch seconds), in order of first use."""
    seen: dict[str, list[float]] = {}
    for row, t in zip(data.screenings, cols.epoch_s.tolist(), strict=True):
        key = row.get("calibration_id") or "(none)"
        entry = seen.get(key)
        if entry is None:
            seen[key] = [1, t, t]
        else:
            entry[0] += 1
            entry[1] = min(entry[1], t)
            entry[2] = max(entry[2], t)
    return sorted(((k, int(v[0]), v[1], v[2]) for k, v in seen.items()), key=lambda item: item[2])


def _calibration_section(data: ReportData, cols: ScreeningColumns,
                         pauses: Sequence[tuple[datetime, datetime, str]]) -> str:
    title = '<section id="calibration"><h2>Calibration and blackbody</h2>'
    parts = [title]
    readings = int(np.count_nonzero(np.isfinite(cols.blackbody_error_c)))
    tol = data.blackbody_tolerance_c
    if not len(cols):
        parts.append('<p class="empty">No screenings in this period.</p>')
    elif not readings:
        parts.append('<p class="empty">No screening in this period has a blackbody reading '
                     "(the calibration profile has no blackbody).</p>")
    else:
        chart, clipped = _blackbody_chart(cols, data, pauses)
        outside = int(np.count_nonzero(np.abs(cols.blackbody_error_c[np.isfinite(cols.blackbody_error_c)]) > tol))
        note = f" {clipped} readings beyond the drawn range are shown at its edge." if clipped else ""
        parts.append(
            _legend(levels=(), extra=(("sw-bb-ok", f"within ±{tol:.2f} °C"), ("sw-bb-bad", f"outside ±{tol:.2f} °C"),
                                      ("sw-pause", "station paused")))
            + f"<figure>{chart}<figcaption>Blackbody reading minus its set point at each screening, summarised "
            f"per time slice (bar: min to max, line: mean). {readings} screenings with a reading, {outside} "
            f"outside the ±{tol:.2f} °C tolerance.{note}</figcaption></figure>"
        )
    if len(cols):
        rows = "".join(
            f"<tr><td>{_e(cal)}</td><td class=\"num\">{n}</td>"
            f"<td>{_fmt_time(datetime.fromtimestamp(a, UTC))}</td>"
            f"<td>{_fmt_time(datetime.fromtimestamp(b, UTC))}</td></tr>"
            for cal, n, a, b in _calibration_ids(data, cols)
        )
        parts.append("<h3>Calibration profiles used</h3><table><thead><tr><th>Calibration id</th><th>Screenings</th>"
                     f"<th>First (UTC)</th><th>Last (UTC)</th></tr></thead><tbody>{rows}</tbody></table>")
    events = [e for e in data.system_events if str(e.get("kind", "")).startswith(("blackbody_", "calibration_"))]
    events.sort(key=lambda e: as_utc(e["wall_time"]))
    if events:
        rows = "".join(f"<tr><td>{_fmt_time(as_utc(e['wall_time']), ms=True)}</td><td>{_e(e.get('kind'))}</td>"
                       f"<td>{_e(e.get('detail'))}</td></tr>" for e in events)
        parts.append("<h3>Calibration and blackbody events</h3><table><thead><tr><th>Time (UTC)</th><th>Kind</th>"
                     f"<th>Detail</th></tr></thead><tbody>{rows}</tbody></table>")
    else:
        parts.append("<h3>Calibration and blackbody events</h3>"
                     "<p>No calibration or blackbody events in this period.</p>")
    parts.append("</section>")
    return "".join(parts)


def _pauses_section(data: ReportData, pauses: Sequence[tuple[datetime, datetime, str]]) -> str:
    title = '<section id="pauses"><h2>Pauses (station not screening)</h2>'
    explain = ("<p class=\"note\">From the system events: a pause begins at blackbody_not_seen, blackbody_unstable, "
               "blackbody_out_of_tolerance, camera_lost, calibration_expired or stopped, and ends when every cause has "
               "cleared (blackbody_ok, camera_recovered, started). A station that lost power logs no stopped event; "
               "such a gap shows only as missing screenings.</p>")
    if not pauses:
        return f"{title}<p>No pauses recorded in this period.</p>{explain}</section>"
    # The share is of the time that has happened: a report made mid-period has not seen the rest.
    span = max(data.observed_to.timestamp() - as_utc(data.period_from).timestamp(), 1e-9)
    total = sum((b - a).total_seconds() for a, b, _ in pauses)
    rows = "".join(
        f"<tr><td>{_fmt_time(a, ms=True)}</td><td>{_fmt_time(b, ms=True)}</td>"
        f'<td class="num">{_fmt_duration((b - a).total_seconds())}</td><td>{_e(why)}</td></tr>'
        for a, b, why in pauses
    )
    share = f"{100 * total / span:.1f} % of the period" + (
        f" so far, to {_fmt_time(data.observed_to)} UTC" if data.in_progress else "")
    return f"""{title}<p>{_plural(len(pauses), "pause")}, {_fmt_duration(total)} in all ({share}).</p>
<table><thead><tr><th>From (UTC)</th><th>To (UTC)</th><th>Duration</th><th>Cause</th></tr></thead>
<tbody>{rows}</tbody></table>{explain}</section>"""


_CSS = f"""
:root {{ color-scheme: light; }}
* {{ -webkit-print-color-adjust: exact; print-color-adjust: exact; box-sizing: border-box; }}
body {{ font-family: system-ui, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; font-size: 14px;
  line-height: 1.4; color: #212121; background: #fff; max-width: 1040px; margin: 20px auto; padding: 0 16px; }}
h1 {{ font-size: 22px; margin: 0 0 10px; }}
h2 {{ font-size: 17px; margin: 28px 0 8px; border-bottom: 2px solid #90a4ae; padding-bottom: 2px; }}
h3 {{ font-size: 14px; margin: 16px 0 6px; }}
table {{ border-collapse: collapse; width: 100%; font-size: 12.5px; }}
th, td {{ border: 1px solid #cfd8dc; padding: 3px 6px; text-align: left; vertical-align: top; }}
thead th, table.facts th {{ background: #eceff1; }}
table.facts th {{ width: 11em; }}
td.nowrap {{ white-space: nowrap; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
dl.filters {{ margin: 0; display: grid; grid-template-columns: max-content auto; gap: 0 10px; }}
dl.filters dt {{ font-weight: 600; }} dl.filters dd {{ margin: 0; }}
.unack {{ background: #ffebee; color: #b71c1c; font-weight: 700; }}
td.unack {{ border: 2px solid #d32f2f; letter-spacing: 0.04em; }}
.muted, .note {{ color: #546e7a; }}
.note {{ font-size: 12px; }}
.empty {{ font-style: italic; padding: 10px; background: #f5f5f5; border: 1px dashed #b0bec5; }}
.deid {{ border-left: 4px solid #1565c0; background: #e3f2fd; padding: 6px 10px; }}
nav {{ margin: 12px 0; font-size: 13px; }} nav a, figcaption a {{ color: #1565c0; }}
figure {{ margin: 8px 0 18px; }}
figcaption {{ font-size: 12px; color: #455a64; margin-top: 4px; }}
svg {{ display: block; width: 100%; height: auto; }}
svg text {{ font-family: inherit; fill: #37474f; }}
svg .tick {{ font-size: 11px; }} svg .axis-title {{ font-size: 11px; font-weight: 600; }}
svg .grid {{ stroke: #e0e0e0; stroke-width: 1; }} svg .axis {{ stroke: #546e7a; stroke-width: 1; }}
svg .thr {{ stroke-width: 2; stroke-dasharray: 6 3; }}
svg .thr-elevated {{ stroke: #b27c00; }} svg .thr-fever {{ stroke: #9a0007; }}
svg .thr-label {{ font-size: 12px; font-weight: 700; fill: #263238; }}
svg .pause-band {{ fill: {PAUSE_COLOUR}; fill-opacity: 0.16; }}
svg .paused {{ fill: {PAUSE_COLOUR}; }} svg .available {{ fill: {AVAILABLE_COLOUR}; }}
svg .tol-band {{ fill: #c8e6c9; fill-opacity: 0.7; }}
svg .bb-ok {{ fill: #2e7d32; fill-opacity: 0.55; }} svg .bb-bad {{ fill: #d32f2f; }}
svg .bb-mean {{ fill: none; stroke: #1b5e20; stroke-width: 1.2; }}
{"".join(f"svg .bar-{lv} {{ fill: {c}; }} .sw-{lv}, .badge-{lv} {{ background: {c}; }}"
         for lv, c in LEVEL_COLOURS.items())}
.sw-pause {{ background: {PAUSE_COLOUR}; }} .sw-available {{ background: {AVAILABLE_COLOUR}; }}
.sw-bb-ok {{ background: #2e7d32; opacity: 0.55; }} .sw-bb-bad {{ background: #d32f2f; }}
.legend {{ font-size: 12px; margin: 4px 0; }}
.key {{ margin-right: 14px; white-space: nowrap; }}
.sw {{ display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px;
  border: 1px solid rgba(0,0,0,0.25); }}
.badge {{ color: #fff; padding: 0 6px; border-radius: 3px; font-weight: 600; }}
.badge-elevated {{ color: #212121; }}
@page {{ size: A4; margin: 12mm; }}
@media print {{
  body {{ max-width: none; margin: 0; padding: 0; font-size: 11px; }}
  nav {{ display: none; }}
  figure, header {{ break-inside: avoid; }}
  h2, h3 {{ break-after: avoid; }}
  thead {{ display: table-header-group; }}
  tr {{ break-inside: avoid; }}
}}
"""


def render_report(data: ReportData) -> str:
    """The whole report as one HTML5 document (see the module notes for what it shows and why).

    Parameters
    ----------
    data
        The period's rows and settings.

    Returns
    -------
    str
        A self-contained document: inline CSS and SVG, no scripts, no external references.
    """
    cols = screening_columns(data.screenings)
    pauses = pause_intervals(data.system_events, data.period_from, data.period_to, now=data.generated_at)
    alarm_rows, n_unacked = _alarm_rows(data, cols)
    title = f"Screening report — {data.station} — {_fmt_time(data.period_from)} to {_fmt_time(data.period_to)} UTC"
    sections = [
        _header(data, cols, len(alarm_rows), n_unacked),
        _counts_section(cols, data, pauses),
        _histogram_section(cols, data),
        _alarms_section(data, alarm_rows, n_unacked),
        _calibration_section(data, cols, pauses),
        _pauses_section(data, pauses),
        f'<footer class="note"><p>Generated {_fmt_time(data.generated_at)} UTC by the fever screening station. '
        "Self-contained: this file loads nothing from the network.</p></footer>",
    ]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
{"".join(sections)}
</body>
</html>
"""


__all__ = [
    "ALARM_LEVELS",
    "BLACKBODY_TOLERANCE_C",
    "LEVELS",
    "LEVEL_COLOURS",
    "STILL_PAUSED",
    "STILL_PAUSED_AT_REPORT",
    "Histogram",
    "ReportData",
    "ScreeningColumns",
    "TimeBins",
    "body_histogram",
    "counts_per_day",
    "counts_per_hour",
    "nice_ticks",
    "pause_intervals",
    "period_days",
    "render_report",
    "screening_columns",
    "time_bins",
]
