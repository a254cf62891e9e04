"""How stacker replicas share jobs in MongoDB: a job is claimed by one replica at a time;
a running job is taken over only once its holder has stopped renewing its claim."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec

from calib_core.models import FrameType, JobStatus, JobTrigger, StackJob
from calib_core.settings import CalibrationSettings
from calib_infra.mongo import mongo_client
from calib_infra.repositories import JobRepository
from tests.support.system import service_config, unique

LEASE = timedelta(seconds=30)


def queued_job(now: datetime) -> StackJob:
    job_id = unique("job")
    return StackJob(
        id=job_id,
        observatory_id="claims",
        frame_type=FrameType.DARK,
        config_key=job_id,
        group_key=job_id,
        configuration={},
        temperature_c=None,
        trigger=JobTrigger.MANUAL,
        status=JobStatus.QUEUED,
        frame_ids=["f1"],
        settings=msgspec.structs.asdict(CalibrationSettings()),
        created_at=now,
        updated_at=now,
    )


def test_a_running_job_is_taken_over_only_when_its_claim_is_stale(servers):
    config = service_config(servers.endpoints, unique("calib_claims").replace("-", "_"))

    async def scenario() -> None:
        client = mongo_client(config)
        try:
            jobs = JobRepository(client[config.mongodb_db])
            start = datetime.now(UTC)
            job = queued_job(start)
            await jobs.create(job)

            first = await jobs.claim(job.id, "a", start, stale_before=start - LEASE)
            assert first is not None and first.worker == "a" and first.attempts == 1
            # a duplicate request while "a" works on it: refused
            assert await jobs.claim(job.id, "b", start, stale_before=start - LEASE) is None
            later = start + LEASE / 2
            assert await jobs.touch(job.id, "a", later)
            assert not await jobs.touch(job.id, "b", later)  # only the holder renews
            # "a" renewed at `later`: still fresh a full lease after the first claim
            now = start + LEASE
            assert await jobs.claim(job.id, "b", now, stale_before=now - LEASE) is None

            silent = later + LEASE + timedelta(seconds=1)  # "a" stopped renewing: it died
            taken = await jobs.claim(job.id, "b", silent, stale_before=silent - LEASE)
            assert taken is not None and taken.worker == "b" and taken.attempts == 2
            assert not await jobs.touch(job.id, "a", silent)  # "a" no longer holds it

            await jobs.finish(job.id, JobStatus.SUCCEEDED, silent, master_id="m")
            now = silent + 2 * LEASE
            assert await jobs.claim(job.id, "c", now, stale_before=now - LEASE) is None  # closed
        finally:
            await client.close()

    asyncio.run(scenario())
