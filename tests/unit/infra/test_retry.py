"""The one start-up retry loop: waits with growing delays, tidies up after each failed
attempt, and returns the first success."""

from __future__ import annotations

import asyncio

from calib_infra import retry
from tests.unit.app.fakes import FakeLog


async def test_failures_are_waited_out_with_growing_delays(monkeypatch):
    slept: list[float] = []

    async def no_wait(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(asyncio, "sleep", no_wait)
    failures = iter([ConnectionError("refused")] * 12)
    tidied: list[str] = []

    async def attempt() -> str:
        if (error := next(failures, None)) is not None:
            raise error
        return "connected"

    async def tidy() -> None:
        tidied.append("stopped")
        raise RuntimeError("already stopped")  # best effort: never escapes

    log = FakeLog()
    assert await retry.until_it_works(attempt, log, "nats", on_failure=tidy) == "connected"
    assert slept[:3] == [0.5, 0.75, 1.125]
    assert max(slept) == retry.MAX_DELAY_S and len(slept) == 12
    assert tidied == ["stopped"] * 12
    assert len(log.records) == 12
