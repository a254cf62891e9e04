"""The scheduler's handlers: its ``master.created`` subscriber (calib_scheduler.main.subscribe)
under FastStream's TestNatsBroker, bound to the sweep over the fakes, and its timers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest
from faststream.nats import TestNatsBroker

from calib_app.queueing import check_triggers
from calib_core import events
from calib_core.models import FrameType, JobStatus, JobTrigger
from calib_infra.config import Config
from calib_infra.runtime import Runtime
from calib_scheduler.main import subscribe
from calib_scheduler.timers import every
from tests.unit.app.fakes import FakeLog, FakeWorld
from tests.unit.app.library_world import job_queue_of, observatory, stored
from tests.unit.core import factories as make


@pytest.fixture
async def scheduler() -> AsyncIterator[tuple[FakeWorld, TestNatsBroker]]:
    """The scheduler's subscriber bound to the sweep over the fakes."""
    world = FakeWorld()
    runtime = Runtime("scheduler", Config(service_instance="scheduler-test"))
    runtime.log = FakeLog(world.log.records)
    subscribe(runtime, job_queue_of(world))
    await observatory(world, min_frames_for_master=3)
    try:
        async with TestNatsBroker(runtime.broker) as broker:
            yield world, broker
    finally:
        await runtime.mongo.close()


async def test_a_new_master_resumes_deferred_flats_and_sweeps(scheduler):
    world, broker = scheduler
    flats = [await stored(world, make.frame(FrameType.FLAT)) for _ in range(3)]
    [flat_job] = await check_triggers(job_queue_of(world), flats, JobTrigger.REGISTRATION)
    await world.jobs.claim(flat_job.id, "stacker-1", world.now())
    await world.jobs.defer(flat_job.id, "no master dark yet", world.now())
    darks = [await stored(world, make.frame(FrameType.DARK)) for _ in range(3)]
    world.events.published.clear()

    body = events.MasterCreated(master_id="m-dark", observatory_id=make.OBS)
    await broker.publish(msgspec.json.encode(body), f"{events.MASTER_CREATED}.{make.OBS}")

    jobs = {job.id: job for job in await world.jobs.open_jobs(make.OBS)}
    assert jobs.pop(flat_job.id).status == JobStatus.QUEUED
    [dark_job] = jobs.values()
    assert sorted(dark_job.frame_ids) == sorted(f.id for f in darks)
    requested = world.events.bodies(events.STACK_REQUESTED)
    assert {(r.job_id, r.attempt) for r in requested} == {(flat_job.id, 2), (dark_job.id, 1)}


async def test_a_timer_reports_a_failed_round_and_keeps_going():
    rounds: list[int] = []
    failures: list[str] = []
    enough = asyncio.Event()

    async def action() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise ConnectionError("nats is down")
        if len(rounds) == 3:
            enough.set()

    timer = asyncio.create_task(every(0.001, action, lambda error: failures.append(str(error))))
    await asyncio.wait_for(enough.wait(), timeout=5)
    timer.cancel()

    assert failures == ["nats is down"] and len(rounds) >= 3
