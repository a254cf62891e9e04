"""The jobs of an observatory, retrying a failed one, deleting a failed one."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, delete, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter

from calib_app.manual_jobs import delete_failed_job, retry_job
from calib_app.queueing import JobQueue
from calib_core.access import Capability, Principal
from calib_core.models import StackJob
from calib_gateway.dependencies import Injected
from calib_gateway.guards import can_manage, ensure


class JobList(msgspec.Struct, kw_only=True):
    items: list[StackJob]


async def _job(queue: JobQueue, job_id: str) -> StackJob:
    job = await queue.jobs.get(job_id)
    if job is None:
        raise NotFoundException(f"job '{job_id}' not found")
    return job


class JobsController(Controller):
    path = "/api/v1/calibration"

    @get("/jobs/{observatory_id:str}", guards=[can_manage])
    async def jobs(
        self,
        queue: Injected[JobQueue],
        observatory_id: FromPath[str],
        status: Annotated[
            str | None, QueryParameter(pattern="^(queued|running|succeeded|failed|deferred)$")
        ] = None,
    ) -> JobList:
        return JobList(items=await queue.jobs.list(observatory_id, status))

    @post("/jobs/{job_id:str}/retry", status_code=202)
    async def retry(
        self,
        queue: Injected[JobQueue],
        caller: Injected[Principal],
        job_id: FromPath[str],
    ) -> StackJob:
        """Queue a failed job again; answers it as queued."""
        job = await _job(queue, job_id)
        ensure(caller, Capability.MANAGE, job.observatory_id)
        return await retry_job(queue, job)

    @delete("/jobs/{job_id:str}", status_code=204)
    async def delete_job(
        self,
        queue: Injected[JobQueue],
        caller: Injected[Principal],
        job_id: FromPath[str],
    ) -> None:
        ensure(caller, Capability.SERVER)
        await delete_failed_job(queue, await _job(queue, job_id))
