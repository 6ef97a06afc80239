"""The auditors' export from the fleet log: screenings of many stations, with a station column.

De-identified exactly as a station's own export (:func:`station.log.export.deidentify`: no track ids, no
image hashes; images never reach the fleet log anyway), written atomically, and recorded centrally in
``fleet_exports`` (who, the filters, the format, the stations, the row count, the file's sha256) by a
role in ``fleet_auditor``, whose only INSERT that is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from station.atomic import atomic_writer
from station.digest import sha256_file
from station.errors import StationError
from station.fleet.central import connect
from station.log.export import ExportFilter, deidentify, write_csv
from station.log.store import utc_iso


@dataclass(frozen=True)
class FleetFilter(ExportFilter):
    """A station's export filter (period, levels, acknowledged) and which stations (none: all)."""

    stations: tuple[str, ...] = ()

    def describe(self) -> dict[str, str]:
        out = super().describe()
        if self.stations:
            out["station"] = ",".join(self.stations)
        return out


@dataclass(frozen=True)
class FleetExportResult:
    path: Path
    rows: int
    stations: int
    sha256: str
    export_id: int


_ACKED = ("EXISTS (SELECT 1 FROM fleet_acknowledgements a WHERE a.station_id = s.station_id "
          "AND a.screening_id = s.screening_id)")


def select_screenings(cur: Any, filt: FleetFilter) -> list[dict[str, Any]]:
    """The screenings the filter asks for, by station then id, each row as the station logged it plus
    ``station`` and ``station_site`` first and ``acknowledged`` (0/1), hash columns left out."""
    where = ["s.wall_time >= %s", "s.wall_time < %s"]
    params: list[Any] = [utc_iso(filt.start), utc_iso(filt.end)]
    if filt.levels:
        where.append("s.level = ANY(%s)")
        params.append(list(filt.levels))
    if filt.stations:
        where.append("s.station_id = ANY(%s)")
        params.append(list(filt.stations))
    if filt.acknowledged is not None:
        where.append(_ACKED if filt.acknowledged else f"NOT {_ACKED}")
    cur.execute(f"SELECT s.station_id, s.site, s.payload, {_ACKED} FROM fleet_screenings s "
                f"WHERE {' AND '.join(where)} ORDER BY s.station_id, s.screening_id", params)
    out = []
    for station, site, payload, acked in cur.fetchall():
        row = {k: v for k, v in json.loads(payload).items() if k not in ("prev_hash", "row_hash")}
        out.append({"station": station, "station_site": site, **deidentify(row), "acknowledged": int(bool(acked))})
    return out


def export_fleet(dsn: str, filt: FleetFilter, fmt: str, out: Path, *, operator: str) -> FleetExportResult:
    """Write the export to ``out`` atomically, then record it in ``fleet_exports``; what was written."""
    import psycopg

    with connect(dsn) as conn:
        try:
            with conn.cursor() as cur:
                rows = select_screenings(cur, filt)
            conn.commit()
        except psycopg.Error as exc:
            raise StationError(f"fleet log: cannot read the screenings ({str(exc).splitlines()[0]})") from None
        if fmt == "csv":
            columns: dict[str, None] = {}
            for row in rows:
                columns.update(dict.fromkeys(row))
            rows = [{k: row.get(k) for k in columns} for row in rows]
        try:
            with atomic_writer(out, mode=0o600, newline="") as handle:
                if fmt == "csv":
                    write_csv(rows, handle, lambda _n: None)
                elif fmt == "json":
                    doc = {"export": {"filters": filt.describe(), "deidentified": True, "screenings": len(rows)},
                           "screenings": rows}
                    json.dump(doc, handle, ensure_ascii=False, indent=1)
                else:
                    raise StationError(f"format: expected csv or json, got {fmt!r}")
        except OSError as exc:
            raise StationError(f"{out}: cannot write the export ({exc.strerror or exc})") from None
        digest = sha256_file(out)
        stations = sorted({r["station"] for r in rows})
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("INSERT INTO fleet_exports (operator, filters, format, stations, row_count, path, sha256) "
                            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                            (operator, json.dumps(filt.describe(), sort_keys=True), fmt, ",".join(stations),
                             len(rows), str(out.resolve()), digest))
                export_id = int(cur.fetchone()[0])
        except psycopg.Error as exc:
            out.unlink(missing_ok=True)  # an export not recorded must not stay behind
            raise StationError(f"fleet log: cannot record the export, so nothing was exported "
                               f"({str(exc).splitlines()[0]})") from None
    return FleetExportResult(out, len(rows), len(stations), digest, export_id)
