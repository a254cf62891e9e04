"""Queueing stacking jobs (calib_app.queueing) over the fakes: the registration trigger at
its threshold, one open job per configuration, no automatic repeat of a failure."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calib_app.queueing import check_triggers, publish_stack_request, queue_group
from calib_core import events
from calib_core.grouping import group_frames
from calib_core.models import FrameType, JobStatus, JobTrigger
from tests.unit.app.fakes import FakeWorld
from tests.unit.app.library_world import job_queue_of, observatory, stored
from tests.unit.core import factories as make


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


@pytest.fixture
async def obs(world) -> str:
    return await observatory(world)  # the default threshold: 10 frames


async def frames(world: FakeWorld, n: int, frame_type=FrameType.DARK, **fields):
    return [await stored(world, make.frame(frame_type, **fields)) for _ in range(n)]


def requests(world: FakeWorld) -> list[events.StackRequested]:
    return world.events.bodies(events.STACK_REQUESTED)


async def test_nine_frames_queue_nothing_the_tenth_queues_a_job(world, obs):
    queue = job_queue_of(world)
    nine = await frames(world, 9, exposure_s=30.0)
    assert await check_triggers(queue, nine, JobTrigger.REGISTRATION) == []
    assert await world.jobs.list(obs) == [] and requests(world) == []

    tenth = await frames(world, 1, exposure_s=30.0)
    [job] = await check_triggers(queue, tenth, JobTrigger.REGISTRATION)

    assert job.trigger == JobTrigger.REGISTRATION and job.status == JobStatus.QUEUED
    assert sorted(job.frame_ids) == sorted(f.id for f in nine + tenth)
    assert job.configuration["exposure_s"] == 30.0
    assert [(await world.jobs.get(job.id)).id] == [job.id]
    [message] = world.events.published
    assert message.body == events.StackRequested(job_id=job.id, observatory_id=obs, attempt=1)
    assert message.msg_id == f"{job.id}-1"
    assert world.log.find("stacking job queued")[0].fields["trigger"] == "registration"


async def test_frames_of_one_batch_look_once_at_each_configuration(world, obs):
    darks = await frames(world, 10)
    flats = await frames(world, 10, FrameType.FLAT)
    looked: list[str] = []
    same_hardware = world.frames.same_hardware

    async def spy(frame):
        looked.append(frame.frame_type.value)
        return await same_hardware(frame)

    world.frames.same_hardware = spy
    created = await check_triggers(job_queue_of(world), darks + flats, JobTrigger.REGISTRATION)

    assert sorted(j.frame_type.value for j in created) == ["dark", "flat"]
    assert sorted(looked) == ["dark", "flat"]


async def test_lights_and_masters_never_trigger(world, obs):
    lights = await frames(world, 12, FrameType.LIGHT)
    masters = [await stored(world, make.master()) for _ in range(12)]
    looked = []
    world.frames.same_hardware = looked.append  # never called

    assert await check_triggers(job_queue_of(world), lights + masters, JobTrigger.SWEEP) == []
    assert looked == [] and requests(world) == []


async def test_a_configuration_with_an_open_job_is_skipped_without_loading_frames(world, obs):
    queue = job_queue_of(world)
    [first] = await check_triggers(queue, await frames(world, 10), JobTrigger.REGISTRATION)
    looked = []
    world.frames.same_hardware = looked.append

    assert await check_triggers(queue, await frames(world, 10), JobTrigger.REGISTRATION) == []
    assert looked == []
    assert [j.id for j in await world.jobs.open_jobs(obs)] == [first.id]


async def test_queueing_a_group_with_an_open_job_answers_that_job(world, obs):
    queue = job_queue_of(world)
    settings = await world.settings.get(obs)
    [group] = group_frames(await frames(world, 3), settings)
    job, created = await queue_group(
        queue, group, settings, observatory_id=obs, trigger=JobTrigger.MANUAL
    )
    again, created_again = await queue_group(
        queue, group, settings, observatory_id=obs, trigger=JobTrigger.MANUAL
    )

    assert (created, created_again) == (True, False)
    assert again.id == job.id and again.trigger == JobTrigger.MANUAL
    assert [r.job_id for r in requests(world)] == [job.id]


async def test_an_open_job_closed_between_insert_and_look_up_lets_the_new_one_in(world, obs):
    queue = job_queue_of(world)
    settings = await world.settings.get(obs)
    [group] = group_frames(await frames(world, 3), settings)
    blocker, _ = await queue_group(
        queue, group, settings, observatory_id=obs, trigger=JobTrigger.SWEEP
    )
    open_job_for = world.jobs.open_job_for

    async def closed_meanwhile(observatory_id, config_key):
        await world.jobs.finish(blocker.id, JobStatus.SUCCEEDED, world.now())
        return await open_job_for(observatory_id, config_key)

    world.jobs.open_job_for = closed_meanwhile
    job, created = await queue_group(
        queue, group, settings, observatory_id=obs, trigger=JobTrigger.MANUAL
    )

    assert created and job.id != blocker.id
    assert [j.id for j in await world.jobs.open_jobs(obs)] == [job.id]


async def test_frames_a_failed_job_tried_are_not_queued_again_until_a_new_one_comes(world, obs):
    queue = job_queue_of(world)
    darks = await frames(world, 10)
    [failed] = await check_triggers(queue, darks, JobTrigger.REGISTRATION)
    await world.jobs.finish(failed.id, JobStatus.FAILED, world.now(), error="odd sizes")
    world.clock.advance(timedelta(minutes=5))

    assert await check_triggers(queue, darks, JobTrigger.SWEEP) == []
    [skipped] = world.log.find("automatic stacking skipped: these frames failed before")
    assert skipped.fields["failed_job_id"] == failed.id

    newcomer = await frames(world, 1)
    [retried] = await check_triggers(queue, newcomer, JobTrigger.REGISTRATION)
    assert set(retried.frame_ids) == {f.id for f in darks + newcomer}


async def test_a_retry_is_a_new_request_a_repeat_is_not(world, obs):
    job = make.job(observatory_id=obs, attempts=1, status=JobStatus.QUEUED)
    await publish_stack_request(world.events, job)
    await publish_stack_request(world.events, job)

    assert [m.msg_id for m in world.events.published] == [f"{job.id}-2"]
    assert [m.msg_id for m in world.events.duplicates] == [f"{job.id}-2"]
    assert requests(world)[0].attempt == 2


async def test_each_observatory_is_judged_by_its_own_settings(world, obs):
    other = await observatory(world, "obs-2", min_frames_for_master=3)
    here = await frames(world, 3)
    there = await frames(world, 3, observatory_id=other)

    created = await check_triggers(job_queue_of(world), here + there, JobTrigger.REGISTRATION)

    assert [j.observatory_id for j in created] == [other]
