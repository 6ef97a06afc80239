"""pytest fixtures with real fleet servers: a private Mosquitto broker and a private PostgreSQL cluster.

Registered from ``tests/conftest.py`` (``pytest_plugins``). Each test gets fresh servers in its own
temporary folder, stopped when the test ends, whatever it raised. Where Mosquitto or PostgreSQL is not
installed the fixtures fail, naming the apt-get line: CI installs them (``.ci/run``), so a missing server
must never turn into a quietly skipped test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from station.errors import StationError
from station.fleet.servers import LocalBroker, LocalPostgres, local_broker, local_postgres

#: The broker's users in every test: the ingester, the desk and three stations (user name = station id).
FLEET_PASSWORDS: dict[str, str] = {
    "ingester": "ingester-secret",
    "desk": "desk-secret",
    "st-a": "st-a-secret",
    "st-b": "st-b-secret",
    "st-c": "st-c-secret",
}


@pytest.fixture
def fleet_broker(tmp_path) -> Iterator[LocalBroker]:
    """A running Mosquitto with the fleet's ACL, a TLS listener too; ``fleet_broker.passwords`` maps each
    user (``ingester``, ``desk``, ``st-a``, ``st-b``, ``st-c``) to its password."""
    try:
        with local_broker(tmp_path / "broker", users=FLEET_PASSWORDS, tls=True) as broker:
            yield broker
    except StationError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def fleet_postgres(tmp_path) -> Iterator[LocalPostgres]:
    """A running private PostgreSQL with an empty ``fleet`` database; ``fleet_postgres.dsn()`` connects
    as the ``postgres`` superuser over its Unix socket (``dsn(role)`` for the roles the migrations make)."""
    try:
        with local_postgres(tmp_path / "postgres") as server:
            yield server
    except StationError as exc:
        pytest.fail(str(exc), pytrace=False)
