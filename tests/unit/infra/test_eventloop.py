"""calib_infra.eventloop.run_bounded: a straggling task cannot hold a process for ever."""

from __future__ import annotations

import asyncio
import threading

from calib_infra.eventloop import run_bounded


async def leaves_a_task_that_ignores_cancellation(cancelled: list[int]) -> str:
    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(1)  # swallowed, as a lost cancellation is

    asyncio.get_running_loop().create_task(stubborn())
    await asyncio.sleep(0)
    return "done"


def test_the_result_comes_back_though_a_task_ignores_its_cancellation():
    cancelled: list[int] = []
    results: list[str] = []
    runner = threading.Thread(
        target=lambda: results.append(
            run_bounded(leaves_a_task_that_ignores_cancellation(cancelled), grace_s=0.2)
        ),
        daemon=True,
    )
    runner.start()
    runner.join(timeout=30)  # asyncio.run would wait for the task for ever
    assert not runner.is_alive()
    assert results == ["done"] and cancelled == [1]
