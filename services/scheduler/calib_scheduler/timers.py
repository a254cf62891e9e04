"""The scheduler's timers: an action repeated forever at an interval."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def every(
    interval_s: float,
    action: Callable[[], Awaitable[object]],
    failed: Callable[[Exception], object],
) -> None:
    """Run ``action`` now and then every ``interval_s`` seconds. A failure is reported to
    ``failed`` (while it is being handled, so a log can show the traceback) and the next
    round tries again."""
    while True:
        try:
            await action()
        except Exception as error:  # noqa: BLE001 - the next round tries again
            failed(error)
        await asyncio.sleep(interval_s)
