"""``station fleet desk``: the security desk's window (registered into the ``station fleet`` group).

Everything that can be checked before Qt starts is checked here (the broker URL, the credentials file,
the fleet log's DSN and schema, the broker's answer to the desk's login), so a bad input is one line and
a non-zero exit, not a window with an error in it. The window itself is imported lazily, inside the
command: ``station`` never imports ``ui`` at module level (the import-linter contract).
"""

from __future__ import annotations

from pathlib import Path

import click

from station.cli.group import CONTEXT
from station.errors import StationError

#: How long the command waits for the broker's answer before opening the window anyway (a broker that is
#: down may come back: the window says so in its yellow strip and keeps retrying).
CONNECT_WAIT_S = 5.0


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    try:
        if not sep or int(width) < 640 or int(height) < 480:
            raise ValueError
        return int(width), int(height)
    except ValueError:
        raise StationError(f"--size: expected WIDTHxHEIGHT, at least 640x480, got {text!r}") from None


@click.command("desk", context_settings=CONTEXT)
@click.option("--broker", "broker_url", required=True, metavar="URL", help="mqtt://HOST[:PORT] or mqtts://...")
@click.option("--postgres", "dsn", required=True, metavar="DSN",
              help="The fleet log as a role in fleet_desk, e.g. 'host=db dbname=fleet user=desk'.")
@click.option("--credentials", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The desk's MQTT password (mode 0600): password = \"...\" (TOML) or 'desk:password'.")
@click.option("--ca-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), metavar="FILE",
              help="The CA to trust for mqtts:// (default: the system's).")
@click.option("--operator", default="desk", show_default=True, metavar="NAME",
              help="Who acknowledges at this desk (a role or badge label; the stations log it as desk:NAME).")
@click.option("--screenshot", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Grab the window to this PNG after --after seconds and quit.")
@click.option("--after", "after_s", default=5.0, show_default=True, type=click.FloatRange(0.0, 3600.0),
              metavar="S", help="With --screenshot: seconds to wait first.")
@click.option("--size", default="1600x900", show_default=True, metavar="WxH", help="The window's size.")
@click.option("--keepalive", "keepalive_s", default=None, type=click.FloatRange(0.5, 3600.0), hidden=True,
              help="The stations' MQTT keepalive, seconds (default: the protocol's).")
def desk(broker_url: str, dsn: str, credentials: Path | None, ca_file: Path | None, operator: str,
         screenshot: Path | None, after_s: float, size: str, keepalive_s: float | None) -> None:
    """The security desk: every station's state and every open alarm of the fleet, in one window.

    A tile per station (green online, grey offline within two keepalives), the alarms of all stations
    latched and sounded oldest first, acknowledged here (sent to the station, recorded in the fleet log),
    each station's history and today's counters. The backlog comes from PostgreSQL, the rest live from
    the broker.

    \b
    Example:
      station fleet desk --broker mqtt://broker:1883 --postgres "host=db dbname=fleet user=desk" \\
          --credentials /etc/station/desk.cred --operator desk-1
    """
    try:
        code = _run(broker_url, dsn, credentials, ca_file, operator, screenshot, after_s, _size(size), keepalive_s)
    except StationError as exc:
        raise click.ClickException(str(exc)) from None
    if code:
        raise SystemExit(code)


def _run(broker_url: str, dsn: str, credentials: Path | None, ca_file: Path | None, operator: str,
         screenshot: Path | None, after_s: float, size: tuple[int, int], keepalive_s: float | None) -> int:
    import time

    from station.fleet.credentials import read_credentials
    from station.fleet.desk import DeskClient
    from station.fleet.protocol import KEEPALIVE_S, BrokerUrl

    broker = BrokerUrl.parse(broker_url)
    if broker.tls is False and ca_file is not None:
        raise StationError(f"--ca-file is for mqtts:// brokers; {broker_url} is plain mqtt://")
    operator = operator.strip()
    if not operator:
        raise StationError("--operator: the desk must name who acknowledges (a role or badge label)")
    if screenshot is not None and not screenshot.parent.is_dir():
        raise StationError(f"--screenshot {screenshot}: no such folder {screenshot.parent}")
    secret = read_credentials(credentials) if credentials else None
    user, password = (secret.username, secret.password) if secret else (None, None)
    client = DeskClient(broker, username=user, password=password, dsn=dsn, ca_file=ca_file, operator=operator,
                        keepalive_s=keepalive_s or KEEPALIVE_S)
    client.start()  # the backlog first: a bad DSN, an unreachable database or an old schema stops here
    end = time.monotonic() + CONNECT_WAIT_S
    while time.monotonic() < end and not client.connected:
        if client.refused:  # a wrong password or user stays wrong: say so now
            problem = client.problem
            client.close()
            raise StationError(problem or "the broker refused the desk")
        time.sleep(0.05)

    from ui.desk_window import run_desk

    return run_desk(client, operator=operator, size=size, screenshot=screenshot, after_s=after_s)
