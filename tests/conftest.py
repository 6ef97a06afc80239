"""Shared test set-up: hardware tests run only when asked for, and say so when they do not."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--hardware", action="store_true", help="also run tests that need real cameras attached")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--hardware"):
        return
    skip = pytest.mark.skip(reason="needs real cameras: run with --hardware")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)
