"""Waiting for a dependency: one retry loop with backoff for every start-up step."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 5.0


async def until_it_works(
    attempt: Callable[[], Awaitable[T]],
    log: Any,
    what: str,
    *,
    on_failure: Callable[[], Awaitable[object]] | None = None,
) -> T:
    """Run ``attempt`` until it succeeds, logging each failure and waiting 0.5 s, then
    half as long again each time, up to 5 s: a dependency that is not up yet (or is
    restarting) is waited for, never a reason to crash. ``on_failure`` tidies up after a
    failed attempt."""
    delay = FIRST_DELAY_S
    while True:
        try:
            return await attempt()
        except Exception as error:  # noqa: BLE001 - transient until proven otherwise
            log.warning("dependency not ready, retrying", dependency=what, error=str(error))
            if on_failure is not None:
                with contextlib.suppress(Exception):  # tidying up is best effort
                    await on_failure()
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, MAX_DELAY_S)
