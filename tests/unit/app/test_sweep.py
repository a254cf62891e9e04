"""The scheduler's sweep and the resumption of deferred jobs (calib_app.sweep) over the
fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calib_app.queueing import check_triggers
from calib_app.sweep import after_new_master, resume_deferred, sweep_all, sweep_observatory
from calib_core import events
from calib_core.models import FrameType, JobStatus, JobTrigger
from tests.unit.app.fakes import FakeWorld
from tests.unit.app.library_world import job_queue_of, observatory, stored
from tests.unit.core import factories as make

MINUTE = timedelta(minutes=1)


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


@pytest.fixture
async def obs(world) -> str:
    return await observatory(world, min_frames_for_master=3)


async def frames(world: FakeWorld, n: int, frame_type=FrameType.DARK, **fields):
    return [await stored(world, make.frame(frame_type, **fields)) for _ in range(n)]


def requests(world: FakeWorld) -> list[events.StackRequested]:
    return world.events.bodies(events.STACK_REQUESTED)


async def test_the_sweep_queues_every_group_that_reached_the_threshold(world, obs):
    darks = await frames(world, 3)
    other_exposure = await frames(world, 3, exposure_s=120.0)
    await frames(world, 2, FrameType.FLAT)  # below the threshold
    claimed = await frames(world, 3, FrameType.BIAS, exposure_s=0.0)
    await world.frames.claim([f.id for f in claimed], "m-old")  # already in a master
    await frames(world, 3, FrameType.LIGHT)  # lights are never stacked

    assert await sweep_observatory(job_queue_of(world), obs) == 2

    jobs = await world.jobs.open_jobs(obs)
    assert sorted(sorted(j.frame_ids) for j in jobs) == sorted(
        sorted(f.id for f in group) for group in (darks, other_exposure)
    )
    assert {j.trigger for j in jobs} == {JobTrigger.SWEEP}
    assert sorted(r.job_id for r in requests(world)) == sorted(j.id for j in jobs)


async def test_a_configuration_with_an_open_job_gets_no_second_but_its_request_again(world, obs):
    await frames(world, 3)
    queue = job_queue_of(world)
    assert await sweep_observatory(queue, obs) == 1
    await frames(world, 3)  # enough for another master, but the first is not made yet

    assert await sweep_observatory(queue, obs) == 0

    [job] = await world.jobs.open_jobs(obs)
    assert len(requests(world)) == 1  # the repeat of a request is dropped by the stream
    assert {m.msg_id for m in world.events.duplicates} == {f"{job.id}-1"}


async def test_a_request_lost_after_its_job_was_stored_is_sent_by_the_next_sweep(world, obs):
    """A crash between the insert of the job and the publish of its request."""
    darks = await frames(world, 3)
    queue = job_queue_of(world)
    [job] = await check_triggers(queue, darks, JobTrigger.REGISTRATION)
    world.events.published.clear()
    world.events.duplicates.clear()
    world.clock.advance(days=2)  # past the stream's duplicate window

    await sweep_observatory(queue, obs)

    assert [(r.job_id, r.attempt) for r in requests(world)] == [(job.id, 1)]


async def deferred_flat_job(world: FakeWorld, flats):
    """A flat job the stacker deferred: it had no master dark yet."""
    [job] = await check_triggers(job_queue_of(world), flats, JobTrigger.REGISTRATION)
    await world.jobs.claim(job.id, "stacker-1", world.now())
    await world.jobs.defer(job.id, "no master dark yet", world.now())
    world.events.published.clear()
    return job


async def test_a_deferred_job_is_queued_again_with_the_frames_its_group_holds_now(world, obs):
    flats = await frames(world, 3, FrameType.FLAT)
    job = await deferred_flat_job(world, flats)
    later = await frames(world, 1, FrameType.FLAT)  # arrived while the job waited

    assert await resume_deferred(job_queue_of(world), obs) == 1

    resumed = await world.jobs.get(job.id)
    assert resumed.status == JobStatus.QUEUED
    assert sorted(resumed.frame_ids) == sorted(f.id for f in flats + later)
    assert [(r.job_id, r.attempt) for r in requests(world)] == [(job.id, 2)]
    assert world.log.find("deferred job resumed")[0].fields["job_id"] == job.id
    assert await resume_deferred(job_queue_of(world), obs) == 0  # queued now, not deferred


async def test_a_deferred_job_whose_frames_are_gone_keeps_its_list(world, obs):
    flats = await frames(world, 3, FrameType.FLAT)
    job = await deferred_flat_job(world, flats)
    for flat in flats:
        await world.frames.delete(flat.id)

    assert await resume_deferred(job_queue_of(world), obs) == 1

    assert (await world.jobs.get(job.id)).frame_ids == job.frame_ids


async def test_a_new_master_resumes_the_deferred_jobs_and_sweeps_its_observatory(world, obs):
    flats = await frames(world, 3, FrameType.FLAT)
    job = await deferred_flat_job(world, flats)
    darks = await frames(world, 3)  # left for the sweep (their registration trigger was lost)
    elsewhere = await observatory(world, "obs-2", min_frames_for_master=3)
    await frames(world, 3, observatory_id=elsewhere)

    await after_new_master(job_queue_of(world), obs)

    assert (await world.jobs.get(job.id)).status == JobStatus.QUEUED
    [dark_job] = [j for j in await world.jobs.open_jobs(obs) if j.id != job.id]
    assert sorted(dark_job.frame_ids) == sorted(f.id for f in darks)
    assert await world.jobs.open_jobs(elsewhere) == []


async def test_the_timer_sweeps_every_observatory(world, obs):
    await frames(world, 3)
    second = await observatory(world, "obs-2", min_frames_for_master=3)
    await frames(world, 3, observatory_id=second)
    job = await deferred_flat_job(world, await frames(world, 3, FrameType.FLAT))

    await sweep_all(job_queue_of(world), world.observatories)

    assert (
        len(await world.jobs.open_jobs(obs)) == 2 and len(await world.jobs.open_jobs(second)) == 1
    )
    assert (await world.jobs.get(job.id)).status == JobStatus.QUEUED
    [finished] = world.log.find("sweep finished")
    assert finished.fields == {"observatories": 2, "resumed": 1, "queued": 2}
