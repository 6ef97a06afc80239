"""pytest fixtures with real fleet servers: a private Mosquitto broker and a private PostgreSQL cluster.

Registered from ``tests/conftest.py`` (``pytest_plugins``). Each test gets fresh servers in its own
temporary folder, stopped when the test ends, whatever it raised. Where Mosquitto or PostgreSQL is not
installed, the fixtures install the Debian package when they can (as root, with apt-get: the suite sets up
what it needs, as ``.ci/run`` does) and otherwise fail, naming the apt-get line: a missing server must
never turn into a quietly skipped test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from station.errors import StationError
from station.fleet.servers import (
    MOSQUITTO_INSTALL,
    POSTGRES_INSTALL,
    LocalBroker,
    LocalPostgres,
    local_broker,
    local_postgres,
)

#: The Debian package each missing server comes from.
_PACKAGES = {MOSQUITTO_INSTALL: "mosquitto", POSTGRES_INSTALL: "postgresql"}

#: The broker's users in every test: the ingester, the desk and three stations (user name = station id).
FLEET_PASSWORDS: dict[str, str] = {
    "ingester": "ingester-secret",
    "desk": "desk-secret",
    "st-a": "st-a-secret",
    "st-b": "st-b-secret",
    "st-c": "st-c-secret",
}


def _install_if_missing(exc: StationError) -> bool:
    """Install the package a server's one-line error names, when this process may (root, apt-get); True
    when it did, so the caller starts the server again."""
    package = _PACKAGES.get(str(exc))
    if package is None or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(["apt-get", "update", "-qq"], check=False, **quiet)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, check=False, **quiet).returncode == 0


@pytest.fixture
def fleet_broker(tmp_path) -> Iterator[LocalBroker]:
    """A running Mosquitto with the fleet's ACL, a TLS listener too; ``fleet_broker.passwords`` maps each
    user (``ingester``, ``desk``, ``st-a``, ``st-b``, ``st-c``) to its password."""
    for attempt in range(2):
        try:
            with local_broker(tmp_path / f"broker{attempt or ''}", users=FLEET_PASSWORDS, tls=True) as broker:
                yield broker
            return
        except StationError as exc:
            if attempt or not _install_if_missing(exc):
                pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def fleet_postgres(tmp_path) -> Iterator[LocalPostgres]:
    """A running private PostgreSQL with an empty ``fleet`` database; ``fleet_postgres.dsn()`` connects
    as the ``postgres`` superuser over its Unix socket (``dsn(role)`` for the roles the migrations make)."""
    for attempt in range(2):
        try:
            with local_postgres(tmp_path / f"postgres{attempt or ''}") as server:
                yield server
            return
        except StationError as exc:
            if attempt or not _install_if_missing(exc):
                pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def fleet_db(fleet_postgres) -> dict[str, object]:
    """The fleet log migrated, with a login role in each group role: the DSN of each (``owner``,
    ``ingester``, ``auditor``, ``desk``), and ``applied``, the migrations the first run applied."""
    import psycopg

    from station.fleet import central

    owner = fleet_postgres.dsn()
    with psycopg.connect(owner) as conn:
        applied = central.migrate(conn)
        for login, group in (("ingester", "fleet_ingester"), ("auditor", "fleet_auditor"), ("desk", "fleet_desk")):
            conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE {group}")
        conn.commit()
    return {"owner": owner, "applied": applied, **{r: fleet_postgres.dsn(r) for r in ("ingester", "auditor", "desk")}}
