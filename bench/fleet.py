"""The fleet on one machine: N stations, one Mosquitto, one ingester, one PostgreSQL.

Three figures, with the real processes (``station run --headless --fast --fleet``, ``station fleet ingest``,
the Debian Mosquitto and PostgreSQL in a temporary folder, as ``station fleet demo`` starts them):

* ingest rows/s: every station replays at once, as fast as it decodes (the demo recording and simulated
  ones, in turn); rows in the fleet log over the time between the first and the last row's commit (the
  stations' offered load), and the rate at which the returning station's backlog drains (the ingester's);
* alarm-to-desk latency p50/p95/p99: from the station logging an alarm row (its ``wall_time``) to a
  subscriber as MQTT user ``desk`` receiving the row's message (target: p95 < 1 s at 20 stations);
* catch-up: a station whose outbox holds an hour of rows (a visitor every 4 s, written by its store
  while the broker is unreachable, plus a replay ``--fast`` against a port nobody listens on) starts
  again with the broker reachable: seconds until the retained marks cover everything its outbox held,
  from the process's start (which includes loading the face model) and from its first row's arrival.

Usage::

    python bench/fleet.py                    # 20 stations
    python bench/fleet.py --stations 5 --simulated 1
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from station.cli.fleet_demo import (
    DEMO_RECORDING,
    caught_up,
    ingest_argv,
    prepare_fleet_log,
    spawn,
    station_argv,
    station_command,
    station_counts,
    stop_process,
    write_user_credentials,
)
from station.fleet.protocol import Hwm, RowMessage, parse_topic
from station.fleet.servers import free_port, local_broker, local_postgres
from station.log.store import EventStore
from station.types import ScreeningDecision, SystemEvent

SITE = "bench"
ALARMS = ("elevated", "fever")


def log_an_hour(db: Path) -> None:
    """An hour of a busy entrance: a visitor every 4 s, every tenth an acknowledged alarm, an event a minute."""
    start = datetime.now(UTC) - timedelta(hours=1)
    with EventStore(db, outbox=True) as store:
        for k in range(900):
            t, level = 4.0 * k, ("fever" if k % 10 == 9 else "normal")
            body = 38.6 if level == "fever" else 36.8
            sid = store.record_screening(ScreeningDecision(k + 1, t, t + 1.5, body - 2.0, body, level),
                                         calibration_id="bench@1", model_sha256=None, blackbody_error_c=0.1,
                                         source="cameras", wall_time=start + timedelta(seconds=t))
            if level == "fever":
                store.acknowledge(sid, "referred", operator="guard-1")
            if k % 15 == 0:
                store.record_system_event(SystemEvent("note", t, json.dumps({"minute": k // 15})),
                                          wall_time=start + timedelta(seconds=t))


def outbox_tops(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {t: int(n) for t, n in conn.execute("SELECT table_name, max(row_id) FROM outbox GROUP BY 1")}
    finally:
        conn.close()


class Desk:
    """A subscriber as MQTT user ``desk``: when each alarm row and each mark arrived."""

    def __init__(self, url: str, password: str) -> None:
        self.latencies: list[float] = []
        self.seen: set[tuple[str, int]] = set()
        self.marks: dict[tuple[str, str], int] = {}
        self.first_row: dict[str, float] = {}
        self.lock = threading.Lock()
        host, port = url.removeprefix("mqtt://").split(":")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-desk", protocol=mqtt.MQTTv5)
        self.client.username_pw_set("desk", password)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe([("fleet/+/+/row/#", 0), ("fleet/+/+/hwm/#", 0)])
        self.client.connect(host, int(port))
        self.client.loop_start()

    def _on_message(self, _client, _userdata, message) -> None:
        now = datetime.now(UTC)
        parsed = parse_topic(message.topic)
        if parsed is None or not message.payload:
            return
        _, station, rest = parsed
        with self.lock:
            if rest[0] == "hwm":
                self.marks[(station, rest[1])] = Hwm.decode(message.payload).row_id
                return
            self.first_row.setdefault(station, time.monotonic())
            row = RowMessage.decode(message.payload)
            if station == "st-hour" or row.table != "screenings" or row.row.get("level") not in ALARMS:
                return
            if (station, row.row["id"]) in self.seen:
                return
            self.seen.add((station, row.row["id"]))
            logged = datetime.fromisoformat(row.row["wall_time"].replace("Z", "+00:00"))
            self.latencies.append((now - logged).total_seconds())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=20)
    parser.add_argument("--simulated", type=int, default=2, help="Simulated recordings beside the demo.")
    parser.add_argument("--people", type=int, default=6, help="Visitors per simulated recording.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        run(Path(tmp), args)


def run(folder: Path, args) -> None:
    recordings = [DEMO_RECORDING]
    for seed in range(1, args.simulated + 1):
        out = folder / f"sim-{seed}"
        subprocess.run([*station_command(), "simulate", str(out), "--people", str(args.people), "--seed", str(seed),
                        "--fever-fraction", "0.5", "--video", "avi"], check=True, capture_output=True)
        recordings.append(out)
    ids = [f"st-{k:02d}" for k in range(1, args.stations + 1)]
    users = {"ingester": "ingester-pw", "desk": "desk-pw", "st-hour": "st-hour-pw", **{s: f"{s}-pw" for s in ids}}
    logs = folder / "logs"
    logs.mkdir()
    with local_broker(folder, users=users) as broker, local_postgres(folder) as pg:
        prepare_fleet_log(pg.dsn())
        auditor = pg.dsn("auditor")
        ingester = spawn(ingest_argv(broker.url, pg.dsn("ingester"),
                                     write_user_credentials(folder / "ingester.toml", "ingester", users["ingester"])),
                         logs / "ingester.log")
        desk = Desk(broker.url, users["desk"])
        try:
            time.sleep(2.0)
            # ---- N stations at once
            dbs = {s: folder / f"{s}.db" for s in ids}
            started = time.monotonic()
            stations = [spawn(station_argv(recordings[k % len(recordings)], dbs[s], broker.url, SITE, s,
                                           write_user_credentials(folder / f"{s}.toml", s, users[s]), fast=True),
                              logs / f"{s}.log") for k, s in enumerate(ids)]
            codes = [p.wait(1800) for p in stations]
            replayed = time.monotonic() - started
            end = time.monotonic() + 120
            while not caught_up(auditor, dbs) and time.monotonic() < end:
                time.sleep(0.2)
            with psycopg.connect(pg.dsn()) as conn:
                n, first, last = conn.execute("SELECT count(*), min(received_at), max(received_at) "
                                              "FROM fleet_rows").fetchone()
            span = (last - first).total_seconds()
            station_rows = sum(sum(station_counts(db).values()) for db in dbs.values())
            # ---- the station back after an hour
            db = folder / "st-hour.db"
            cred = write_user_credentials(folder / "st-hour.toml", "st-hour", users["st-hour"])
            log_an_hour(db)
            offline = station_argv(DEMO_RECORDING, db, f"mqtt://127.0.0.1:{free_port()}", SITE, "st-hour", cred,
                                   fast=True)
            assert subprocess.run(offline, capture_output=True).returncode == 0
            tops = outbox_tops(db)
            backlog = sum(station_counts(db).values())
            back = time.monotonic()
            returning = spawn(station_argv(DEMO_RECORDING, db, broker.url, SITE, "st-hour", cred, fast=True),
                              logs / "st-hour.log")
            covered = None
            while covered is None and time.monotonic() - back < 300:
                with desk.lock:
                    if all(desk.marks.get(("st-hour", t), 0) >= top for t, top in tops.items()):
                        covered = time.monotonic()
                time.sleep(0.02)
            returning.wait(300)
            first_row = desk.first_row.get("st-hour")
        finally:
            desk.close()
            stop_process(ingester, 30)
    lat = desk.latencies
    print(f"fleet bench: {args.stations} stations replaying {len(recordings)} recordings --fast "
          f"(exit codes {sorted(set(codes))}), one broker, one ingester, one PostgreSQL")
    print(f"{'figure':<44}{'value':>14}")
    print(f"{'rows in the fleet log / in the stations':<44}{f'{n} / {station_rows}':>14}")
    print(f"{'replay wall time (all stations), s':<44}{replayed:>14.1f}")
    print(f"{'ingest rows/s, N stations (first to last)':<44}{n / span if span else float('nan'):>14.0f}")
    print(f"{'alarms seen at the desk':<44}{len(lat):>14d}")
    if lat:
        for q in (50, 95, 99):
            print(f"{f'alarm-to-desk latency p{q}, ms':<44}{1000 * percentile(lat, q):>14.0f}")
        print(f"{'alarm-to-desk latency max, ms':<44}{1000 * max(lat):>14.0f}")
        print(f"{'alarm-to-desk latency mean, ms':<44}{1000 * statistics.fmean(lat):>14.0f}")
    print(f"{'catch-up backlog (outbox rows)':<44}{backlog:>14d}")
    if covered is not None:
        print(f"{'catch-up from process start, s':<44}{covered - back:>14.1f}")
        if first_row is not None:
            print(f"{'catch-up from its first row at the broker, s':<44}{covered - first_row:>14.1f}")
            print(f"{'ingest rows/s draining the backlog':<44}{backlog / max(covered - first_row, 1e-3):>14.0f}")
    else:
        print("catch-up: the marks never covered the outbox within 300 s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
