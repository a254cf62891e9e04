"""Fixtures of the use-case tests: a world of fakes with one observatory."""

from __future__ import annotations

import pytest

from calib_app.access import Access
from tests.unit.app.fakes import FakeWorld
from tests.unit.app.library_world import observatory


@pytest.fixture
async def world() -> FakeWorld:
    """Every port faked, with the observatory ``OBS`` (default settings)."""
    world = FakeWorld()
    await observatory(world)
    return world


@pytest.fixture
async def admin(world: FakeWorld) -> Access:
    """Server administration over ``world``."""
    return Access(accounts=world.accounts, observatories=world.observatories, clock=world.clock)
