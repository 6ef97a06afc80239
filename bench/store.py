"""How fast the log writes and exports: decisions per second (hash chain, synchronous=FULL), exports of 100k rows.

    .venv/bin/python bench/store.py [--decisions 2000] [--screenings 100000] [--dir /tmp/store-bench]

Writes ``--decisions`` screenings one transaction each, as the engine does (each durable when the call
returns), then builds a log of ``--screenings`` screenings over a year (bulk-written through the same
chained insert in one transaction, which is not what is timed) and times ``station export`` of all of
it in CSV, JSON and HTML, and ``audit verify`` over it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from station.log.export import ExportFilter, export  # noqa: E402
from station.log.store import EventStore  # noqa: E402
from station.types import ScreeningDecision  # noqa: E402

LEVELS = ("normal",) * 90 + ("retry",) * 6 + ("elevated",) * 3 + ("fever",)


def _decision(k: int) -> ScreeningDecision:
    level = LEVELS[k % len(LEVELS)]
    body = {"normal": 36.7, "retry": None, "elevated": 37.6, "fever": 38.5}[level]
    if body is None:
        return ScreeningDecision(k, k * 3.0, k * 3.0 + 1.1, None, None, "retry", frozenset({"too_far"}))
    body += (k % 7) * 0.05
    return ScreeningDecision(k, k * 3.0, k * 3.0 + 1.1, round(body - 1.24, 2), round(body, 2), level, frozenset())


def _record(store: EventStore, k: int) -> None:
    store.record_screening(_decision(k), calibration_id="bench@2026-11-01T00:00:00Z", model_sha256="0" * 64,
                           blackbody_error_c=0.04, source="bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--screenings", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="store-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        db = folder / "decisions.db"
        db.unlink(missing_ok=True)
        with EventStore(db) as store:
            start = time.perf_counter()
            for k in range(args.decisions):
                _record(store, k)
            elapsed = time.perf_counter() - start
        print(f"decisions written one durable transaction each (hash chain, synchronous=FULL, WAL): "
              f"{args.decisions / elapsed:,.0f}/s ({1000 * elapsed / args.decisions:.2f} ms each)")

        big = folder / "year.db"
        big.unlink(missing_ok=True)
        first = datetime(2025, 12, 1, tzinfo=UTC)
        step = timedelta(days=365) / args.screenings
        moment = [first]

        def clock() -> datetime:
            moment[0] += step
            return moment[0]

        with EventStore(big, clock=clock) as store:
            start = time.perf_counter()
            conn = store.db.conn
            conn.execute("BEGIN IMMEDIATE")
            store._transaction = _nested(store)  # one transaction for the set-up, not what is measured
            for k in range(args.screenings):
                _record(store, k)
            conn.execute("COMMIT")
            print(f"set-up: {args.screenings:,} screenings over a year in {time.perf_counter() - start:.1f} s")
        with EventStore(big) as store:
            period = ExportFilter(first, first + timedelta(days=366))
            for fmt in ("csv", "json", "html"):
                out = folder / f"export.{fmt}"
                out.unlink(missing_ok=True)
                start = time.perf_counter()
                result = export(store, period, fmt, out, operator="bench")
                elapsed = time.perf_counter() - start
                print(f"export {fmt:<4} {result.rows:,} screenings: {elapsed:.2f} s, "
                      f"{out.stat().st_size / 1e6:.1f} MB")
            start = time.perf_counter()
            breaks = store.verify_chains()
            print(f"audit verify over {args.screenings:,} screenings: {time.perf_counter() - start:.2f} s "
                  f"({'ok' if not breaks else breaks})")
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


def _nested(store: EventStore):
    """The store's transaction, as a savepoint inside the set-up's one outer transaction."""
    return lambda: store.db.atomic()


if __name__ == "__main__":
    main()
