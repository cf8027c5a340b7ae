"""Shared pytest configuration: marks each test with its tier (unit, sim, e2e) from its folder."""

from __future__ import annotations

from pathlib import Path

import pytest

TIERS = ("unit", "sim", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(getattr(pytest.mark, tier))
