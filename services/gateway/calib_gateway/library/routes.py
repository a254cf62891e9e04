"""The library of an observatory and its frames: pages, metadata, components, file
downloads, previews, calibrated lights, deletion."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, delete, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Stream

from calib_app import deletion
from calib_app.calibrated_lights import calibrated_file
from calib_app.calibration import FrameLibrary, with_calibration, with_calibrations
from calib_app.curation import release_frames, with_groups
from calib_app.ports import FrameRepository, LifecycleService, ObjectMissingError, ObjectStore
from calib_app.queueing import JobQueue
from calib_core.access import Capability, Principal
from calib_core.models import Frame
from calib_gateway.dependencies import Injected
from calib_gateway.guards import can_manage_somewhere, can_view, ensure
from calib_gateway.library.schemas import Components, LibraryPage, Released, ReleaseIn
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
        queue: Injected[JobQueue],
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
        held: FromQuery[bool | None] = None,
    ) -> LibraryPage:
        """Frames and masters of an observatory, newest first; lights with their calibration
        status, masters and warnings, as on `GET /frames/{id}`; individual calibration
        frames with the configuration (`config_key`) and group (`group_key`) the server
        puts them in and that group's progress (`group`). `camera_name` and `filter`
        match any part of the name, ignoring case; `held` filters held frames."""
        filters: dict[str, Any] = {}
        if is_master is not None:
            filters["is_master"] = is_master
        if exclude_mastered:
            filters["master_id"] = None
        if held is not None:
            filters["held"] = held
        for field, value in (("frame_type", frame_type), ("status", status)):
            if value is not None:
                filters[field] = value
        contains = {
            field: value
            for field, value in (("camera_name", camera_name), ("filter", filter_name))
            if value
        }
        items, total = await library.frames.library_page(
            observatory_id, filters, contains=contains, skip=(page - 1) * limit, limit=limit
        )
        items = await with_groups(queue, await with_calibrations(library, items))
        return LibraryPage(items=items, page=page, limit=limit, total=total)

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
        lifecycle: Injected[LifecycleService],
        caller: Injected[Principal],
        frame_id: FromPath[str],
    ) -> Response[bytes]:
        """A stretched PNG of a master, or of an individual frame (made on first request)."""
        frame = await frame_for(library.frames, caller, frame_id, Capability.VIEW)
        preview_key = frame.preview_key
        if not preview_key and not frame.is_master:
            made = await lifecycle.preview(frame.id)
            if made.status != "ready":
                raise NotFoundException(
                    f"frame '{frame_id}' has no preview: {made.error or made.status}"
                )
            preview_key = made.preview_key
        if not preview_key:
            raise NotFoundException(f"frame '{frame_id}' has no preview")
        try:
            data = await library.store.read_range(preview_key, 0, 0)
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

    @post("/frames/{frame_id:str}/release", status_code=200)
    async def release_frame(
        self,
        queue: Injected[JobQueue],
        caller: Injected[Principal],
        frame_id: FromPath[str],
    ) -> Released:
        """Release a held frame: it can be stacked again at once (the registration trigger
        runs for it; `jobs` are the jobs this release queued, none when a sweep was first).
        Releasing a frame that is not held changes nothing."""
        frame = await frame_for(queue.frames, caller, frame_id, Capability.MANAGE)
        released, jobs = await release_frames(queue, [frame])
        return Released(released=released, jobs=jobs)

    @post("/frames/release", status_code=200, guards=[can_manage_somewhere])
    async def release_many(
        self,
        queue: Injected[JobQueue],
        caller: Injected[Principal],
        data: JSONBody[ReleaseIn],
    ) -> Released:
        """Release held frames (`{"frame_ids": [...]}`, at most 500): all of them or, when
        one does not exist or may not be managed by the caller, none."""
        found = {f.id: f for f in await queue.frames.many(data.frame_ids)}
        missing = [i for i in data.frame_ids if i not in found]
        if missing:
            raise NotFoundException(f"frames not found: {', '.join(missing[:10])}")
        for frame in found.values():
            ensure(caller, Capability.MANAGE, frame.observatory_id)
        released, jobs = await release_frames(queue, list(found.values()))
        return Released(released=released, jobs=jobs)

    @delete("/frames/{frame_id:str}", status_code=204)
    async def delete_frame(
        self,
        library: Injected[FrameLibrary],
        caller: Injected[Principal],
        frame_id: FromPath[str],
    ) -> None:
        """Delete a frame or master: its record, file and preview. A deleted source frame
        leaves its master's components; a deleted master's frames are held (see
        `POST /frames/{id}/release`)."""
        frame = await frame_for(library.frames, caller, frame_id, Capability.MANAGE)
        await deletion.delete_frame(library, frame)
