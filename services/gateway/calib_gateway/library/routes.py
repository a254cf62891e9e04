"""The library of an observatory and its frames: pages, metadata, components, file
downloads, previews, calibrated lights, deletion."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, delete, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Stream

from calib_app import deletion
from calib_app.calibrated_lights import calibrated_file
from calib_app.calibration import FrameLibrary, with_calibration, with_calibrations
from calib_app.ports import FrameRepository, LifecycleService, ObjectMissingError, ObjectStore
from calib_core.access import Capability, Principal
from calib_core.models import Frame
from calib_gateway.dependencies import Injected
from calib_gateway.guards import can_view, ensure
from calib_gateway.library.schemas import Components, LibraryPage
from calib_gateway.openapi import content

CACHE_HEADER = "X-Calibration-Cache"


async def frame_for(
    frames: FrameRepository, caller: Principal, frame_id: str, capability: Capability
) -> Frame:
    """The frame ``frame_id``, if ``caller`` may act on its observatory."""
    frame = await frames.get(frame_id)
    if frame is None:
        raise NotFoundException(f"frame '{frame_id}' not found")
    ensure(caller, capability, frame.observatory_id)
    return frame


def stream_object(store: ObjectStore, key: str, filename: str) -> Stream:
    """A FITS object, streamed as it is read from the bucket."""
    return Stream(
        store.read_chunks(key),
        media_type="application/fits",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


class LibraryController(Controller):
    path = "/api/v1/calibration"

    @get("/library/{observatory_id:str}", guards=[can_view])
    async def library(
        self,
        library: Injected[FrameLibrary],
        observatory_id: FromPath[str],
        page: Annotated[int, QueryParameter(ge=1, le=1_000_000)] = 1,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        is_master: FromQuery[bool | None] = None,
        exclude_mastered: FromQuery[bool] = False,
        frame_type: Annotated[
            str | None, QueryParameter(pattern="^(dark|flat|bias|light)$")
        ] = None,
        camera_name: Annotated[str | None, QueryParameter(max_length=200)] = None,
        filter_name: Annotated[str | None, QueryParameter(name="filter", max_length=100)] = None,
        status: Annotated[
            str | None, QueryParameter(pattern="^(active|expired|superseded)$")
        ] = None,
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
        items, total = await library.frames.library_page(
            observatory_id, filters, skip=(page - 1) * limit, limit=limit
        )
        return LibraryPage(
            items=await with_calibrations(library, items), page=page, limit=limit, total=total
        )

    @get("/frames/{frame_id:str}")
    async def frame(
        self,
        library: Injected[FrameLibrary],
        caller: Injected[Principal],
        frame_id: FromPath[str],
    ) -> Frame:
        """A frame or master; a light also gets its calibration status, masters and warnings."""
        frame = await frame_for(library.frames, caller, frame_id, Capability.VIEW)
        return await with_calibration(library, frame)

    @get("/frames/{frame_id:str}/components")
    async def components(
        self,
        library: Injected[FrameLibrary],
        caller: Injected[Principal],
        frame_id: FromPath[str],
    ) -> Components:
        master = await frame_for(library.frames, caller, frame_id, Capability.VIEW)
        if not master.is_master:
            raise NotFoundException(f"frame '{frame_id}' is not a master")
        return Components(master_id=master.id, items=await library.frames.components(master))

    @get("/frames/{frame_id:str}/download", responses=content("application/fits", "The file"))
    async def download(
        self,
        library: Injected[FrameLibrary],
        caller: Injected[Principal],
        frame_id: FromPath[str],
    ) -> Stream:
        frame = await frame_for(library.frames, caller, frame_id, Capability.VIEW)
        if await library.store.stat(frame.storage_key) is None:
            raise NotFoundException(f"the file of frame '{frame_id}' is missing from storage")
        return stream_object(library.store, frame.storage_key, f"{frame.id}.fits")

    @get("/frames/{frame_id:str}/preview.png", responses=content("image/png", "The preview"))
    async def preview(
        self,
        library: Injected[FrameLibrary],
        caller: Injected[Principal],
        frame_id: FromPath[str],
    ) -> Response[bytes]:
        frame = await frame_for(library.frames, caller, frame_id, Capability.VIEW)
        if not frame.preview_key:
            raise NotFoundException(f"frame '{frame_id}' has no preview")
        try:
            data = await library.store.read_range(frame.preview_key, 0, 0)
        except ObjectMissingError as error:
            raise NotFoundException(f"the preview of frame '{frame_id}' is missing") from error
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @get(
        "/frames/{frame_id:str}/calibrated",
        responses=content("application/fits", "The calibrated light (float32)"),
    )
    async def calibrated(
        self,
        library: Injected[FrameLibrary],
        lifecycle: Injected[LifecycleService],
        caller: Injected[Principal],
        frame_id: FromPath[str],
    ) -> Stream:
        """The calibrated light (FITS, float32), computed on first request and then served
        from the cache (header ``X-Calibration-Cache: hit|miss``). 409 with error
        ``no_masters`` or ``cal_failed`` when it cannot be made."""
        light = await frame_for(library.frames, caller, frame_id, Capability.VIEW)
        calibrated = await calibrated_file(library, lifecycle, light)
        response = stream_object(
            library.store, calibrated.storage_key, f"{light.id}-calibrated.fits"
        )
        response.headers[CACHE_HEADER] = "hit" if calibrated.from_cache else "miss"
        return response

    @delete("/frames/{frame_id:str}", status_code=204)
    async def delete_frame(
        self,
        library: Injected[FrameLibrary],
        caller: Injected[Principal],
        frame_id: FromPath[str],
    ) -> None:
        """Delete a frame or master: its record, file and preview. A deleted source frame
        leaves its master's components; a deleted master's frames are unclaimed again."""
        frame = await frame_for(library.frames, caller, frame_id, Capability.MANAGE)
        await deletion.delete_frame(library, frame)
