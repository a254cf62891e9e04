"""Stacking jobs, manual master creation, settings and rejections of an observatory."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.exceptions import ClientException, NotFoundException, ValidationException
from litestar.params import Parameter

from calib_app.queueing import publish_stack_request, queue_group
from calib_core.access import Capability
from calib_core.grouping import group_frames
from calib_core.models import JobStatus, JobTrigger
from calib_core.settings import CalibrationSettings, SettingsError, apply_changes
from calib_core.triggers import group_matching, minimum_frames
from calib_gateway.guards import can_manage, can_view, ensure
from calib_gateway.library import runtime_of
from calib_gateway.schemas import CreateMasterIn, JobList, RejectionList
from calib_infra.compose import job_queue


class JobsController(Controller):
    path = "/api/v1/calibration"

    @get("/jobs/{observatory_id:str}", guards=[can_manage])
    async def jobs(
        self,
        request: Request,
        observatory_id: str,
        status: Annotated[
            str | None, Parameter(pattern="^(queued|running|succeeded|failed|deferred)$")
        ] = None,
    ) -> JobList:
        return JobList(items=await runtime_of(request).jobs.list(observatory_id, status))

    @post("/jobs/{job_id:str}/retry", status_code=202)
    async def retry(self, request: Request, job_id: str) -> Any:
        runtime = runtime_of(request)
        job = await runtime.jobs.get(job_id)
        if job is None:
            raise NotFoundException(f"job '{job_id}' not found")
        ensure(request.user, Capability.MANAGE, job.observatory_id)
        requeued = await runtime.jobs.requeue(
            job_id, runtime.now(), from_statuses=[JobStatus.FAILED], trigger=JobTrigger.RETRY.value
        )
        if requeued is None:
            raise ClientException(
                f"job '{job_id}' is {job.status.value}: only failed jobs can be retried "
                "(or the group already has an open job)",
                status_code=409,
            )
        await publish_stack_request(runtime.events, requeued)
        return requeued

    @get("/rejections/{observatory_id:str}")
    async def rejections(self, request: Request, observatory_id: str) -> RejectionList:
        """Rejected registrations. Events naming an observatory that does not exist are
        recorded under that id too; only a server admin can see those."""
        runtime = runtime_of(request)
        ensure(request.user, Capability.MANAGE, observatory_id)
        items = await runtime.rejections.list(observatory_id)
        if not items and await runtime.observatories.get(observatory_id) is None:
            raise NotFoundException(f"observatory '{observatory_id}' not found")
        return RejectionList(items=items)

    @get("/settings/{observatory_id:str}", guards=[can_view])
    async def get_settings(self, request: Request, observatory_id: str) -> CalibrationSettings:
        return await runtime_of(request).settings.get(observatory_id)

    @put("/settings/{observatory_id:str}", guards=[can_manage])
    async def put_settings(self, request: Request, observatory_id: str) -> Any:
        """Change some or all settings; a refused value leaves the stored settings as they were."""
        runtime = runtime_of(request)
        try:
            changes = msgspec.json.decode(await request.body())
        except msgspec.DecodeError as error:
            raise ClientException(f"invalid JSON: {error}") from error
        if not isinstance(changes, dict):
            raise ClientException("expected a JSON object of settings")
        try:
            updated = apply_changes(await runtime.settings.get(observatory_id), changes)
        except SettingsError as error:
            return Response(
                {"error": "invalid_setting", "detail": str(error), "field": error.field},
                status_code=422,
            )
        await runtime.settings.put(observatory_id, updated)
        return updated

    @post("/masters/create", status_code=202)
    async def create_master(self, request: Request, data: CreateMasterIn) -> Any:
        """Stack a group now; ``force`` allows fewer frames than the threshold."""
        runtime = runtime_of(request)
        ensure(request.user, Capability.MANAGE, data.observatory_id)
        if await runtime.observatories.get(data.observatory_id) is None:
            raise NotFoundException(f"observatory '{data.observatory_id}' not found")
        if data.frame_type not in ("dark", "flat", "bias"):
            raise ValidationException("frame_type must be one of dark, flat, bias")
        settings = await runtime.settings.get(data.observatory_id)
        frames = await runtime.frames.calibration_frames(
            data.observatory_id, frame_type=data.frame_type
        )
        group = group_matching(group_frames(frames, settings), data.group_request(), settings)
        if group is None:
            raise NotFoundException("no frames match that configuration")
        needed = minimum_frames(settings, data.force)
        if len(group.frames) < needed:
            raise ClientException(
                f"the group has {len(group.frames)} frames; {needed} needed"
                + ("" if data.force else " (use force to stack fewer)"),
                status_code=422,
            )
        job, _ = await queue_group(
            job_queue(runtime),
            group,
            settings,
            observatory_id=data.observatory_id,
            trigger=JobTrigger.MANUAL,
        )
        return job

    @delete("/jobs/{job_id:str}", status_code=204)
    async def delete_job(self, request: Request, job_id: str) -> None:
        runtime = runtime_of(request)
        ensure(request.user, Capability.SERVER)
        job = await runtime.jobs.get(job_id)
        if job is None:
            raise NotFoundException(f"job '{job_id}' not found")
        if job.status != JobStatus.FAILED:
            raise ClientException(
                f"only failed jobs can be deleted (job is {job.status.value})", status_code=409
            )
        await runtime.jobs.delete(job_id)
