"""``station fleet demo``: a whole fleet on this machine, in a temporary folder (registered into ``station fleet``).

What it starts, in order, and stops in reverse whatever happens (Ctrl-C, SIGTERM, ``--seconds N``, an error):

* a private Mosquitto and a private PostgreSQL (:mod:`station.fleet.servers`: the Debian packages, in the
  folder, on a free port and a Unix socket; nothing of the system's services is touched);
* the fleet log's migrations, and one login per group role (``ingester``, ``auditor``, ``desk``);
* the broker's users ``ingester``, ``desk`` and three stations, each with a generated password written
  to a credentials file (mode 0600) in the folder: no password on a command line;
* ``station fleet ingest``, three ``station run --headless`` stations replaying a recording in real time
  (again and again, into the same log), and the desk window (``station fleet desk``), or with
  ``--no-desk`` a ``station fleet status`` table every few seconds.

The helpers (:func:`prepare_fleet_log`, :func:`station_argv`, :func:`ingest_argv`, :func:`stop_process`)
are what the guarantees' tests and ``bench/fleet.py`` start their processes with, so all three run the
fleet the same way.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import click

from station.cli.group import CONTEXT
from station.errors import StationError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_RECORDING = REPO_ROOT / "recordings" / "demo"
SITE = "demo"
STATIONS: tuple[str, ...] = ("st-a", "st-b", "st-c")
#: The PostgreSQL login roles the demo (and the tests, and the bench) make, and the group role of each.
LOGINS: dict[str, str] = {"ingester": "fleet_ingester", "auditor": "fleet_auditor", "desk": "fleet_desk"}


# ---------------------------------------------------------------------- helpers shared with tests and bench
def station_command() -> list[str]:
    """How to run ``station`` as a child: this interpreter, so a venv's station runs the venv's code."""
    return [sys.executable, "-m", "station.cli.main"]


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def prepare_fleet_log(owner_dsn: str) -> None:
    """Migrate the fleet log (as its owner) and create the login roles of :data:`LOGINS` when missing."""
    from station.fleet.central import connect, migrate

    with connect(owner_dsn) as conn:
        migrate(conn)
        for login, group in LOGINS.items():
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone() is None:
                conn.execute(f'CREATE ROLE "{login}" LOGIN IN ROLE {group}')
        conn.commit()


def write_user_credentials(path: Path, user: str, password: str) -> Path:
    """A credentials file (TOML ``username``/``password``, mode 0600) for ``--credentials`` or
    ``--fleet-credentials``: every participant reads the same format."""
    from station.fleet.credentials import write_credentials

    write_credentials(path, password, user)
    return path


def station_argv(recording: Path, db: Path, broker_url: str, site: str, station_id: str, credentials: Path, *,
                 fast: bool, events: Path | None = None, ca_file: Path | None = None) -> list[str]:
    """``station run`` headless on ``recording``, logging to ``db`` and publishing to the fleet."""
    argv = [*station_command(), "run", "--recording", str(recording), "--headless", "--db", str(db),
            "--events", str(events) if events is not None else os.devnull, "--fleet", broker_url,
            "--site", site, "--station-id", station_id, "--fleet-credentials", str(credentials)]
    if fast:
        argv.append("--fast")
    if ca_file is not None:
        argv += ["--fleet-ca", str(ca_file)]
    return argv


def ingest_argv(broker_url: str, dsn: str, credentials: Path, *, ca_file: Path | None = None) -> list[str]:
    argv = [*station_command(), "fleet", "ingest", "--broker", broker_url, "--postgres", dsn,
            "--credentials", str(credentials)]
    if ca_file is not None:
        argv += ["--ca-file", str(ca_file)]
    return argv


def spawn(argv: Sequence[str], log: Path) -> subprocess.Popen:
    """A child writing stdout and stderr to ``log`` (appended), in its own process group: a Ctrl-C in the
    terminal reaches the demo only, which then stops its children in order."""
    with open(log, "ab") as out:
        return subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=child_env(), start_new_session=True)


def stop_process(process: subprocess.Popen | None, timeout: float = 15.0) -> int | None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; the exit code (None if it was never started)."""
    if process is None:
        return None
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(10)
    return process.returncode


def station_counts(db: Path) -> dict[str, int]:
    """Rows per published table in a station's SQLite log (read-only)."""
    from station.fleet.protocol import PUBLISHED_TABLES

    if not db.exists():
        return dict.fromkeys(PUBLISHED_TABLES, 0)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in PUBLISHED_TABLES}
    finally:
        conn.close()


def fleet_counts(dsn: str) -> dict[str, dict[str, int]]:
    """Rows per station and table in the fleet log."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT station_id, table_name, count(*) FROM fleet_rows GROUP BY 1, 2").fetchall()
    counts: dict[str, dict[str, int]] = {}
    for station, table, n in rows:
        counts.setdefault(station, {})[table] = int(n)
    return counts


def caught_up(dsn: str, dbs: dict[str, Path]) -> bool:
    """Whether the fleet log holds as many rows of every station and table as the stations' logs."""
    central = fleet_counts(dsn)
    return all({t: n for t, n in station_counts(db).items() if n} == central.get(station, {})
               for station, db in dbs.items())


# ---------------------------------------------------------------------- the demo
class _Station:
    """One demo station: ``station run`` replaying its recording in real time, started again when it ends."""

    def __init__(self, station_id: str, argv: list[str], log: Path) -> None:
        self.station_id, self.argv, self.log = station_id, argv, log
        self.process: subprocess.Popen | None = None
        self.runs = 0

    def tend(self, stopping: bool) -> None:
        if not stopping and (self.process is None or self.process.poll() is not None):
            self.process = spawn(self.argv, self.log)
            self.runs += 1


def _print_status(dsn: str) -> None:
    from station.cli.fleet import fleet_status

    with contextlib.suppress(Exception):
        click.get_current_context().invoke(fleet_status, dsn=dsn)


@contextlib.contextmanager
def _signals_stop(stop: threading.Event) -> Iterator[None]:
    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@click.command("demo", context_settings=CONTEXT)
@click.option("--seconds", type=click.FloatRange(1.0, 24 * 3600.0), metavar="N",
              help="Stop after N seconds (default: run until Ctrl-C or SIGTERM).")
@click.option("--no-desk", is_flag=True, help="No window: print `station fleet status` every few seconds instead.")
@click.option("--recording", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              metavar="DIR", help="What the three stations replay, in real time, again and again (default: the "
                                  "demo recording).")
@click.option("--every", "every_s", default=5.0, show_default=True, type=click.FloatRange(1.0, 600.0),
              metavar="S", help="With --no-desk: seconds between status tables.")
@click.option("--folder", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Keep the servers' files, logs and the stations' databases here (default: a temporary "
                   "folder, removed at exit).")
@click.option("--screenshot", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Save the desk window as a PNG after --after seconds, then stop (works offscreen).")
@click.option("--after", "after_s", default=40.0, show_default=True, type=click.FloatRange(1.0, 3600.0),
              metavar="S", help="With --screenshot: seconds before the picture.")
def demo(seconds: float | None, no_desk: bool, recording: Path | None, every_s: float, folder: Path | None,
         screenshot: Path | None, after_s: float) -> None:
    """A fleet on this machine: Mosquitto, PostgreSQL, the ingester, three stations and the desk.

    Everything lives in a temporary folder and stops when the demo does (Ctrl-C, SIGTERM or --seconds N),
    which then prints the fleet's status table and its chains' verification (exit 3 if broken).

    \b
    Examples:
      station fleet demo
      station fleet demo --no-desk --seconds 60
      station fleet demo --screenshot desk.png --after 40
    """
    if screenshot is not None and no_desk:
        raise StationError("--screenshot is a picture of the desk window: not with --no-desk")
    desk_extra = [] if screenshot is None else ["--screenshot", str(screenshot.resolve()), "--after", f"{after_s:g}"]
    recording = recording or DEMO_RECORDING
    if not (recording / "meta.json").is_file():
        raise StationError(f"{recording}: not a recording (no meta.json)")
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="fleet-demo-") as tmp:
            _run_demo(Path(tmp), seconds, no_desk, recording, every_s, desk_extra)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        _run_demo(folder.resolve(), seconds, no_desk, recording, every_s, desk_extra)


def _run_demo(folder: Path, seconds: float | None, no_desk: bool, recording: Path, every_s: float,
              desk_extra: list[str]) -> None:
    from station.cli.fleet import fleet_verify
    from station.fleet.servers import local_broker, local_postgres

    passwords = {user: secrets.token_urlsafe(18) for user in ("ingester", "desk", *STATIONS)}
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    stop = threading.Event()
    deadline = None if seconds is None else time.monotonic() + seconds
    with _signals_stop(stop), local_broker(folder, users=passwords) as broker, local_postgres(folder) as pg:
        prepare_fleet_log(pg.dsn())
        click.echo(f"broker     {broker.url}   (log {broker.log_path})")
        click.echo(f"postgres   {pg.dsn('auditor')}")
        ingester_cred = write_user_credentials(folder / "ingester.toml", "ingester", passwords["ingester"])
        desk_cred = write_user_credentials(folder / "desk.toml", "desk", passwords["desk"])
        stations: list[_Station] = []
        dbs: dict[str, Path] = {}
        for station_id in STATIONS:
            cred = write_user_credentials(folder / f"{station_id}.toml", station_id, passwords[station_id])
            dbs[station_id] = folder / f"{station_id}.db"
            stations.append(_Station(station_id, station_argv(recording, dbs[station_id], broker.url, SITE,
                                                              station_id, cred, fast=False),
                                     logs / f"{station_id}.log"))
        ingester = desk = None
        try:
            ingester = spawn(ingest_argv(broker.url, pg.dsn("ingester"), ingester_cred), logs / "ingester.log")
            for station in stations:
                station.tend(stopping=False)
            click.echo(f"stations   {', '.join(STATIONS)} (site {SITE}) replaying {recording} in real time")
            if not no_desk:
                desk = spawn([*station_command(), "fleet", "desk", "--broker", broker.url, "--postgres",
                              pg.dsn("desk"), "--credentials", str(desk_cred), *desk_extra], logs / "desk.log")
                click.echo("desk       the window is opening (close it or press Ctrl-C here to stop)")
            click.echo(f"logs       {logs}" + ("" if seconds is None else f"; stopping after {seconds:g} s"))
            next_status = time.monotonic() + every_s
            while not stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if ingester.poll() is not None:
                    raise StationError(f"the ingester stopped (exit {ingester.returncode}): see "
                                       f"{logs / 'ingester.log'}")
                if desk is not None and desk.poll() is not None:
                    click.echo(f"the desk window closed (exit {desk.returncode}): stopping")
                    break
                for station in stations:
                    station.tend(stopping=False)
                if no_desk and time.monotonic() >= next_status:
                    click.echo("")
                    _print_status(pg.dsn("auditor"))
                    next_status = time.monotonic() + every_s
                stop.wait(0.2)
            click.echo("\nstopping: the stations, then the ingester once it holds their rows")
        finally:
            stop_process(desk, 10)
            for station in stations:
                stop_process(station.process, 20)
            if ingester is not None and ingester.poll() is None:
                end = time.monotonic() + 15
                while time.monotonic() < end and not _quietly(caught_up, pg.dsn("auditor"), dbs):
                    time.sleep(0.3)
            stop_process(ingester, 20)
        _print_status(pg.dsn("auditor"))
        click.echo("")
        click.get_current_context().invoke(fleet_verify, dsn=pg.dsn("auditor"))


def _quietly(check, *args) -> bool:
    try:
        return bool(check(*args))
    except Exception:  # noqa: BLE001 - a check while stopping: not yet is the answer
        return False
