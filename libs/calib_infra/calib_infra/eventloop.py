"""Running a coroutine to its end when client libraries may leave tasks behind."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_bounded(coro: Coroutine[Any, Any, T], grace_s: float = 5.0) -> T:
    """``asyncio.run``, except that tasks still pending at the end get ``grace_s`` to end
    once cancelled rather than for ever: nats-py's reconnect task can outlive ``close()``
    (its cancellation lost while a server refuses the reconnect), and would otherwise keep
    a stopping service, or a test, from ever ending."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=grace_s))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
