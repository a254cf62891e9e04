"""One gateway over the fakes per test module (building the app takes about a second);
each test works in observatories of its own (``api.observatory()``) or in ``OWN``, where
every role has a token, and finds the fakes' switches reset."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.app.fakes import DEFAULT_NOW
from tests.unit.gateway.harness import Api, running_api


@pytest.fixture(scope="module")
async def running():
    async for api in running_api():
        yield api


@pytest.fixture
def api(running: Api) -> Iterator[Api]:
    yield running
    running.world.clock.set(DEFAULT_NOW)
    running.lifecycle.down = False
    running.lifecycle.requests.clear()
    running.probes.down.clear()
    running.feed.connected = True
    running.feed.extra.clear()
