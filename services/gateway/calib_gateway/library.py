"""Library, frames, jobs, rejections and settings of one observatory."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Parameter
from litestar.response import Stream

from calib_app.calibration import with_calibration, with_calibrations
from calib_app.ports import ObjectMissingError
from calib_core import events
from calib_core.access import Capability
from calib_core.models import Frame, FrameType, MasterStatus
from calib_gateway.guards import can_view, ensure
from calib_gateway.schemas import (
    Accepted,
    Components,
    LibraryPage,
)
from calib_gateway.uploads import ParsedUpload, UploadError, parse_multipart
from calib_infra import compose
from calib_infra.bus import publish
from calib_infra.runtime import Runtime

FRAME_TYPES = [t.value for t in FrameType]
STATUSES = [s.value for s in MasterStatus]
FORM_NUMBERS = {
    "gain",
    "offset",
    "exposure_s",
    "temperature_c",
    "set_temperature_c",
    "rotation_deg",
}
FORM_INTEGERS = {"width", "height"}


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


async def frame_for(request: Request, frame_id: str, capability: Capability) -> Frame:
    frame = await runtime_of(request).frames.get(frame_id)
    if frame is None:
        raise NotFoundException(f"frame '{frame_id}' not found")
    ensure(request.user, capability, frame.observatory_id)
    return frame


async def _chunks(runtime: Runtime, key: str) -> AsyncIterator[bytes]:
    iterator = runtime.store.iter_chunks(key)
    while True:
        chunk = await anyio.to_thread.run_sync(next, iterator, None)
        if chunk is None:
            return
        yield chunk


def stream_object(runtime: Runtime, key: str, media_type: str, filename: str | None) -> Stream:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'} if filename else {}
    return Stream(_chunks(runtime, key), media_type=media_type, headers=headers)


class LibraryController(Controller):
    path = "/api/v1/calibration"

    @get("/library/{observatory_id:str}", guards=[can_view])
    async def library(
        self,
        request: Request,
        observatory_id: str,
        page: Annotated[int, Parameter(ge=1, le=1_000_000)] = 1,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        is_master: bool | None = None,
        exclude_mastered: bool = False,
        frame_type: Annotated[str | None, Parameter(pattern="^(dark|flat|bias|light)$")] = None,
        camera_name: Annotated[str | None, Parameter(max_length=200)] = None,
        filter_name: Annotated[str | None, Parameter(query="filter", max_length=100)] = None,
        status: Annotated[str | None, Parameter(pattern="^(active|expired|superseded)$")] = None,
    ) -> LibraryPage:
        """Frames and masters of an observatory, newest first; lights with their calibration
        status, masters and warnings, as on `GET /frames/{id}`."""
        filters: dict[str, Any] = {}
        if is_master is not None:
            filters["is_master"] = is_master
        if exclude_mastered:
            filters["master_id"] = None
        for field, value in (
            ("frame_type", frame_type),
            ("camera_name", camera_name),
            ("filter", filter_name),
            ("status", status),
        ):
            if value is not None:
                filters[field] = value
        runtime = runtime_of(request)
        items, total = await runtime.frames.library_page(
            observatory_id, filters, skip=(page - 1) * limit, limit=limit
        )
        return LibraryPage(
            items=await with_calibrations(compose.frame_library(runtime), items),
            page=page,
            limit=limit,
            total=total,
        )

    @get("/frames/{frame_id:str}")
    async def frame(self, request: Request, frame_id: str) -> Frame:
        """A frame or master; a light also gets its calibration status, masters and warnings."""
        return await with_calibration(
            compose.frame_library(runtime_of(request)),
            await frame_for(request, frame_id, Capability.VIEW),
        )

    @get("/frames/{frame_id:str}/components")
    async def components(self, request: Request, frame_id: str) -> Components:
        master = await frame_for(request, frame_id, Capability.VIEW)
        if not master.is_master:
            raise NotFoundException(f"frame '{frame_id}' is not a master")
        return Components(
            master_id=master.id, items=await runtime_of(request).frames.components(master)
        )

    @get("/frames/{frame_id:str}/download")
    async def download(self, request: Request, frame_id: str) -> Stream:
        frame = await frame_for(request, frame_id, Capability.VIEW)
        runtime = runtime_of(request)
        if await runtime.store.stat(frame.storage_key) is None:
            raise NotFoundException(f"the file of frame '{frame_id}' is missing from storage")
        return stream_object(runtime, frame.storage_key, "application/fits", f"{frame.id}.fits")

    @get("/frames/{frame_id:str}/preview.png")
    async def preview(self, request: Request, frame_id: str) -> Response:
        frame = await frame_for(request, frame_id, Capability.VIEW)
        runtime = runtime_of(request)
        if not frame.preview_key:
            raise NotFoundException(f"frame '{frame_id}' has no preview")
        try:
            data = await runtime.store.read_range(frame.preview_key, 0, 0)
        except ObjectMissingError as error:
            raise NotFoundException(f"the preview of frame '{frame_id}' is missing") from error
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @post("/frames", status_code=202)
    async def upload_frame(self, request: Request) -> Accepted:
        """Upload one frame (multipart field ``file`` plus optional §2 fields) and register it."""
        runtime = runtime_of(request)
        async with received_upload(
            request, Capability.REGISTER, default_observatory=request.user.plugin_observatory
        ) as (upload, observatory_id, fields):
            event_id = uuid.uuid4().hex
            storage_key = f"frames/{observatory_id}/{event_id}.fits"
            try:
                event = msgspec.convert(
                    {
                        **form_metadata(fields),
                        "event_id": event_id,
                        "observatory_id": observatory_id,
                        "storage_key": storage_key,
                    },
                    events.FrameRegistered,
                    strict=False,
                )
            except msgspec.ValidationError as error:
                raise ValidationException(f"invalid form field: {error}") from error
            await anyio.to_thread.run_sync(runtime.store.put_stream_sync, storage_key, upload.file)
        await publish(
            runtime.broker,
            events.FRAME_REGISTERED,
            event,
            observatory_id=observatory_id,
            msg_id=event_id,
        )
        return Accepted(event_id=event_id, storage_key=storage_key)


@contextlib.asynccontextmanager
async def received_upload(
    request: Request, capability: Capability, *, default_observatory: str | None = None
) -> AsyncIterator[tuple[ParsedUpload, str, dict[str, str]]]:
    """Parse a multipart upload (file spooled, size-limited) and check that the caller may
    send it to the observatory it names; yields (upload, observatory_id, other fields). The
    spooled file is closed however the handler ends."""
    runtime = runtime_of(request)
    limit = runtime.config.max_upload_mb * 1024 * 1024
    upload = await parse_multipart(request.headers.get("content-type", ""), request.stream(), limit)
    with contextlib.ExitStack() as cleanup:
        if upload.file is not None:
            cleanup.callback(upload.file.close)
        fields = dict(upload.fields)
        observatory_id = fields.pop("observatory_id", "") or default_observatory
        if not observatory_id:
            raise ValidationException("form field 'observatory_id' is required")
        ensure(request.user, capability, observatory_id)
        if await runtime.observatories.get(observatory_id) is None:
            raise NotFoundException(f"observatory '{observatory_id}' not found")
        if upload.file is None:
            raise UploadError("multipart field 'file' is required")
        yield upload, observatory_id, fields


def form_metadata(fields: dict[str, str]) -> dict[str, Any]:
    known = set(events.FrameRegistered.__struct_fields__) - {
        "event_id",
        "observatory_id",
        "storage_key",
    }
    metadata: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in known:
            raise ValidationException(f"unknown form field '{name}'")
        if value == "":
            continue
        try:
            if name in FORM_NUMBERS:
                metadata[name] = float(value)
            elif name in FORM_INTEGERS:
                metadata[name] = int(value)
            else:
                metadata[name] = value
        except ValueError as error:
            raise ValidationException(f"form field '{name}' must be a number") from error
    return metadata
