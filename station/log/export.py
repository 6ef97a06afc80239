"""The auditors' export: screenings of a period, filtered, de-identified by default, in CSV, JSON or HTML.

Data collected for epidemic control may be used for nothing else, so what leaves the station is the
least an audit needs. By default an export carries no images, no face boxes (the store keeps none) and
no track ids (they would let someone link two passes in front of the camera); screening ids stay, as
row numbers that join acknowledgements to their alarm. ``include_images`` (behind the auditor PIN, and
itself recorded) adds the alarm snapshots, copied beside the export with their sha256.

An export with images hands someone a face as evidence of an alarm, so it is only made when every
image it would carry is the one the log recorded: before anything is written, the snapshots of the
exported screenings are checked against their screenings' chained rows and their files hashed
(:meth:`~station.log.store.EventStore.verify_snapshots`); a swapped, missing or unrecorded image refuses
the whole export (:class:`SnapshotsAltered`, which ``station export`` reports like ``audit verify``
reports an altered log). Each file is hashed again as it is copied, from the very bytes written, so
no file is ever exported under a sha256 it does not have. Images retention purged on purpose are
listed as such (``purged_by_retention``), with the sha256 the log keeps, and no file.

Every export is logged in the store's chained ``exports`` table: who, when, the filters, the format,
the row count, whether images went, and the sha256 of the file written, with the log's chain heads at
that moment.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from station.atomic import atomic_writer
from station.digest import sha256_file
from station.errors import StationError
from station.log.chain import recorded_snapshots
from station.log.store import EventStore, utc_iso

FORMATS = ("csv", "json", "html")
#: Columns an export leaves out unless images are included: they could link visits, or stand for faces
#: (the sha256 of an alarm's face crops identifies the crops to whoever holds them).
IDENTIFYING = ("track_id", "snapshot_sha256")
BATCH = 5000


class SnapshotsAltered(StationError):
    """An export with images was refused: a snapshot is not the image the log recorded (or is gone)."""


def check_out_path(out: Path) -> None:
    """Refuse, in one line, an export path whose directory is missing or is not a directory at all.

    ``afile/e.csv`` where ``afile`` is a file must say so, not that a directory "does not exist":
    the auditor would go looking for the wrong fault.
    """
    parent = out.parent
    if parent.is_dir():
        return
    existing = parent
    while not existing.exists() and existing != existing.parent:  # exists() is False under a file, too
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise StationError(f"{out}: {existing} is not a directory")
    raise StationError(f"{out}: directory {parent} does not exist")


@dataclass(frozen=True)
class ExportFilter:
    """Which screenings an auditor asked for: a period ``[start, end)``, levels, acknowledged or not."""

    start: datetime
    end: datetime
    levels: tuple[str, ...] = ()
    acknowledged: bool | None = None

    def describe(self) -> dict[str, str]:
        out = {"from": utc_iso(self.start), "to": utc_iso(self.end)}
        if self.levels:
            out["level"] = ",".join(self.levels)
        if self.acknowledged is not None:
            out["acknowledged"] = "yes" if self.acknowledged else "no"
        return out


@dataclass
class ExportResult:
    path: Path
    rows: int
    sha256: str
    export_id: int
    images: list[Path] = field(default_factory=list)


def _filter_args(filt: ExportFilter) -> dict[str, Any]:
    return {"since": filt.start, "until": filt.end, "levels": filt.levels, "acknowledged": filt.acknowledged}


def count_screenings(store: EventStore, filt: ExportFilter) -> int:
    return store.count_screenings_for_export(**_filter_args(filt))


def select_screenings(store: EventStore, filt: ExportFilter) -> list[dict[str, Any]]:
    """The screenings the filter asks for, oldest first, each with ``acknowledged`` (0/1)."""
    return store.screenings_for_export(**_filter_args(filt))


def deidentify(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in IDENTIFYING}


def write_csv(rows: list[dict[str, Any]], out: io.TextIOBase, tick: Callable[[int], None]) -> None:
    """One line per screening; ``quality`` stays the JSON list the store holds."""
    if not rows:
        out.write("")
        return
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for k in range(0, len(rows), BATCH):
        writer.writerows(rows[k : k + BATCH])
        tick(len(rows[k : k + BATCH]))


def export(
    store: EventStore,
    filt: ExportFilter,
    fmt: str,
    out: Path,
    *,
    operator: str,
    include_images: bool = False,
    station: str = "",
    elevated_c: float = 37.3,
    fever_c: float = 38.0,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> ExportResult:
    """Write the export to ``out`` (atomically: a temporary file renamed into place), then log it.

    The file is complete on disk before the ``exports`` row is written, and the row carries the
    file's sha256, so an export that was logged can always be checked against the file an auditor holds.
    """
    if fmt not in FORMATS:
        raise StationError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if not operator.strip():
        raise StationError("an export must name who makes it (--operator NAME)")
    check_out_path(out)
    tick = progress or (lambda _n: None)
    rows = select_screenings(store, filt)
    ids = [int(r["id"]) for r in rows]
    if not include_images:
        rows = [deidentify(r) for r in rows]
    acks = store.acknowledgements_for_export(ids)
    events = store.system_events_for_export(filt.start, filt.end)
    images: list[Path] = []
    if include_images:
        _check_images(store, ids)  # before anything is written: a refused export leaves no trace on disk
        snapshots = store.snapshots_for_export(ids)
        rows_by_id = {int(r["id"]): r for r in rows}
        images = _copy_images(store, snapshots, out)
        for snap in snapshots:
            rows_by_id[int(snap["screening_id"])].setdefault("images", []).append(
                {"kind": snap["kind"], "file": f"{out.name}.images/{snap['path']}", "sha256": snap["sha256"]})
        horizon = store.images_horizon()
        for row in rows:
            kept = {i["kind"] for i in row.get("images", [])}
            for kind, digest in sorted((recorded_snapshots(row) or {}).items()):
                if kind not in kept and horizon is not None and str(row["wall_time"]) < horizon:
                    row.setdefault("images", []).append({"kind": kind, "sha256": digest, "purged_by_retention": True})
        if fmt == "csv":
            for row in rows:
                row["images"] = json.dumps(row.get("images", []))
    try:
        with atomic_writer(out, mode=0o600, newline="") as handle:
            if fmt == "csv":
                write_csv(rows, handle, tick)
            elif fmt == "json":
                _write_json(handle, filt, rows, acks, events, include_images, tick)
            else:
                handle.write(_html(filt, rows, acks, events, station, elevated_c, fever_c, clock))
                tick(len(rows))
    except OSError as exc:
        raise StationError(f"{out}: cannot write the export ({exc.strerror or exc})") from None
    digest = sha256_file(out)
    export_id = store.record_export({
        "operator": operator.strip(),
        "period_from": utc_iso(filt.start),
        "period_to": utc_iso(filt.end),
        "filters": json.dumps(filt.describe(), sort_keys=True),
        "format": fmt,
        "row_count": len(rows),
        "include_images": int(include_images),
        "path": str(out.resolve()),
        "sha256": digest,
    })
    return ExportResult(out, len(rows), digest, export_id, images)


def _write_json(handle, filt: ExportFilter, rows, acks, events, include_images: bool, tick) -> None:
    """One JSON document: the filters, then screenings, acknowledgements and system events of the period."""
    for row in rows:
        row["quality"] = json.loads(row["quality"])
    doc = {
        "export": {"filters": filt.describe(), "deidentified": not include_images, "screenings": len(rows)},
        "screenings": rows,
        "acknowledgements": acks,
        "system_events": events,
    }
    json.dump(doc, handle, ensure_ascii=False, indent=1)
    tick(len(rows))


def _html(filt: ExportFilter, rows, acks, events, station: str, elevated_c: float, fever_c: float, clock) -> str:
    from station.log.report import ReportData, render_report

    now = clock() if clock else datetime.now().astimezone()
    if not station:  # the station as its calibration names it: "entrance-1@2026-11-20T08:00:00Z"
        named = sorted({str(r["calibration_id"]).split("@")[0] for r in rows if r.get("calibration_id")})
        station = ", ".join(named) or "fever screening station"
    data = ReportData(
        period_from=filt.start, period_to=filt.end, station=station,
        screenings=[{**r, "quality": json.loads(r["quality"]) if isinstance(r["quality"], str) else r["quality"],
                     "acknowledged": bool(r["acknowledged"])} for r in rows],
        acknowledgements=acks, system_events=events, elevated_c=elevated_c, fever_c=fever_c,
        filters=filt.describe(), generated_at=now,
    )
    return render_report(data)


def _check_images(store: EventStore, ids: list[int]) -> None:
    """Refuse the export unless every snapshot of these screenings is the image the log recorded."""
    if store.snapshots_dir is None:
        raise StationError(f"event store {store.path}: opened without its snapshots directory: cannot export images")
    audit = store.verify_snapshots(ids)
    if audit.breaks:
        more = f" (and {len(audit.breaks) - 1} more)" if len(audit.breaks) > 1 else ""
        raise SnapshotsAltered(f"{audit.breaks[0]}{more}; nothing was exported: keep the log and its snapshots as "
                               "they are and run `station audit verify`")


def _copy_images(store: EventStore, snapshots: Iterable[dict[str, Any]], out: Path) -> list[Path]:
    """Copy the checked snapshots beside the export, each hashed from the bytes written.

    :func:`_check_images` has already compared every file with the log; hashing the bytes actually
    copied closes the gap between that check and the copy, so a file replaced in between is refused
    too (and what this export had copied is removed) rather than exported under the recorded sha256.
    """
    assert store.snapshots_dir is not None  # _check_images refused otherwise
    folder = out.with_name(f"{out.name}.images")
    created = not folder.exists()
    folder.mkdir(mode=0o700, exist_ok=True)
    copied: list[Path] = []
    try:
        for snap in snapshots:
            source = store.snapshots_dir / snap["path"]
            data = source.read_bytes()
            if hashlib.sha256(data).hexdigest() != snap["sha256"]:
                raise SnapshotsAltered(f"snapshots row {snap['id']}: its file {snap['path']} changed while it was "
                                       "being exported; nothing was exported: run `station audit verify`")
            target = folder / snap["path"]
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            target.chmod(0o600)
            copied.append(target)
    except (OSError, SnapshotsAltered) as exc:
        for path in copied:
            path.unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, SnapshotsAltered):
            raise
        raise StationError(f"{out}: cannot copy the snapshots ({exc.strerror or exc})") from None
    return copied
