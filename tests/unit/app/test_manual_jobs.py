"""Stacking jobs people ask for, over the fakes: a group stacked now at the thresholds, a
failed job retried as a new request, a failed job deleted."""

from __future__ import annotations

from datetime import timedelta

import pytest

from calib_app.errors import ConflictError, NotFoundError, RefusedError
from calib_app.manual_jobs import delete_failed_job, retry_job, stack_now
from calib_core import events
from calib_core.models import FrameType, JobStatus, JobTrigger, StackJob
from tests.unit.app.fakes import FakeWorld
from tests.unit.app.library_world import job_queue_of, observatory, stored
from tests.unit.core import factories as make
from tests.unit.core.factories import OBS

DARKS_30S = {"frame_type": "dark", "exposure_s": 30.0}


@pytest.fixture
async def world() -> FakeWorld:
    world = FakeWorld()
    await observatory(world, min_frames_for_master=5)  # sigma clip: force needs 3
    return world


async def darks(world: FakeWorld, n: int) -> None:
    for _ in range(n):
        await stored(world, make.frame(FrameType.DARK, exposure_s=30.0))


async def now(world: FakeWorld, *, force: bool = False, request=None) -> StackJob:
    return await stack_now(
        job_queue_of(world), OBS, FrameType.DARK, request or DARKS_30S, force=force
    )


async def test_a_group_is_stacked_now_only_with_enough_frames(world):
    with pytest.raises(NotFoundError, match="no frames match that configuration"):
        await now(world, force=True)
    await darks(world, 2)
    with pytest.raises(
        RefusedError, match=r"^the group has 2 frames to stack; 5 needed \(use force"
    ):
        await now(world)
    with pytest.raises(RefusedError, match=r"^the group has 2 frames to stack; 3 needed$"):
        await now(world, force=True)
    assert world.events.published == []

    await darks(world, 1)
    job = await now(world, force=True)
    assert job.trigger == JobTrigger.MANUAL and job.status == JobStatus.QUEUED
    assert len(job.frame_ids) == 3
    [request] = world.events.bodies(events.STACK_REQUESTED)
    assert request == events.StackRequested(job_id=job.id, observatory_id=OBS, attempt=1)


async def test_asking_again_answers_the_open_job(world):
    await darks(world, 5)
    first = await now(world)
    assert await now(world) == first
    assert len(world.events.published) == 1


async def test_frames_past_their_max_age_or_held_do_not_count(world):
    await darks(world, 3)
    for _ in range(2):
        old = make.frame(
            FrameType.DARK, exposure_s=30.0, captured_at=world.now() - timedelta(days=31)
        )
        await stored(world, old)
    held = await stored(world, make.frame(FrameType.DARK, exposure_s=30.0))
    await world.frames.hold({held.id: "dark level gate: ..."})
    with pytest.raises(RefusedError) as refused:
        await now(world)
    assert str(refused.value) == (
        "the group has 3 frames to stack (2 older than the dark max age of 30 days, 1 held"
        " not counted); 5 needed (use force to stack fewer)"
    )
    job = await now(world, force=True)
    assert len(job.frame_ids) == 3 and held.id not in job.frame_ids


async def test_another_temperature_cluster_gets_a_job_of_its_own(world):
    await darks(world, 5)  # at -10 °C
    for _ in range(3):
        await stored(world, make.frame(FrameType.DARK, exposure_s=30.0, temperature_c=5.0))
    cold = await now(world)
    warm = await now(world, force=True, request={**DARKS_30S, "temperature_c": 5.0})
    assert warm.id != cold.id and warm.cluster_slot and cold.cluster_slot is None
    assert abs(warm.temperature_c - 5.0) < 1e-9 and len(warm.frame_ids) == 3
    again = await now(world, force=True, request={**DARKS_30S, "temperature_c": 5.0})
    assert again.id == warm.id  # the cluster's own slot answers its open job
    assert await now(world, request={**DARKS_30S, "temperature_c": -10.0}) == cold


async def test_a_request_naming_another_configuration_finds_nothing(world):
    await darks(world, 5)
    with pytest.raises(NotFoundError):
        await now(world, request={**DARKS_30S, "gain": 300.0})


async def failed(world: FakeWorld) -> StackJob:
    job = make.job(id="j1", status=JobStatus.QUEUED, attempts=1)
    await world.jobs.create(job)
    await world.jobs.finish(job.id, JobStatus.FAILED, world.now(), error="lost frame")
    return await world.jobs.get(job.id)


async def test_a_failed_job_is_retried_as_a_new_request(world):
    job = await failed(world)
    retried = await retry_job(job_queue_of(world), job)
    assert retried.status == JobStatus.QUEUED and retried.trigger == JobTrigger.RETRY
    assert retried.error is None
    [message] = world.events.published
    assert message.msg_id == "j1-2" and message.body.attempt == 2
    with pytest.raises(ConflictError, match="job 'j1' is queued: only failed jobs"):
        await retry_job(job_queue_of(world), retried)


async def test_only_a_failed_job_is_deleted(world):
    job = await failed(world)
    await retry_job(job_queue_of(world), job)
    queued = await world.jobs.get(job.id)
    with pytest.raises(ConflictError, match=r"only failed jobs can be deleted \(job is queued\)"):
        await delete_failed_job(job_queue_of(world), queued)
    await world.jobs.finish(job.id, JobStatus.FAILED, world.now(), error="again")
    await delete_failed_job(job_queue_of(world), await world.jobs.get(job.id))
    assert await world.jobs.get(job.id) is None
