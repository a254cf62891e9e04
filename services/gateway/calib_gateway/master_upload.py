"""``POST /masters/upload``: a pre-made master FITS, streamed to S3, recorded as the
current master of its configuration; ``master.created`` lets the lifecycle service
supersede the one it replaces."""

from __future__ import annotations

import uuid

import anyio
import msgspec
from litestar import Controller, Request, post
from litestar.exceptions import ClientException

from calib_core import events
from calib_core.access import Capability
from calib_core.fitsheader import InvalidFitsError, read_image_layout
from calib_core.grouping import config_key, configuration
from calib_core.headers import MissingFieldsError, fields_from_header, resolve_metadata
from calib_core.masters import master_storage_key
from calib_core.models import Frame, FrameType, MasterStatus
from calib_gateway.library import form_metadata, received_upload, runtime_of
from calib_infra.bus import publish


def _header_number(header, keyword: str, kind: type) -> int | float | str | None:
    value = header.get(keyword)
    try:
        return kind(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _unprocessable(detail: str) -> ClientException:
    """A well-formed upload whose content is refused (422)."""
    return ClientException(detail, status_code=422)


class MasterUploadController(Controller):
    path = "/api/v1/calibration"

    @post("/masters/upload", status_code=201)
    async def upload_master(self, request: Request) -> Frame:
        """Multipart field ``file`` (a master FITS) plus ``observatory_id`` and any §2 field
        the header lacks or gets wrong; answers the new master (status ``active``)."""
        runtime = runtime_of(request)
        async with received_upload(request, Capability.MANAGE) as (upload, observatory_id, fields):
            form = form_metadata(fields)
            try:
                header = (await anyio.to_thread.run_sync(read_image_layout, upload.file)).header
                metadata = resolve_metadata(form, fields_from_header(header))
            except InvalidFitsError as error:
                raise _unprocessable(f"file: {error}") from error
            except MissingFieldsError as error:
                raise _unprocessable(
                    f"{error} (neither in the form nor in the FITS header)"
                ) from error
            except msgspec.ValidationError as error:
                raise _unprocessable(f"invalid metadata: {error}") from error
            if metadata.frame_type == FrameType.LIGHT:
                raise _unprocessable("a master must be a dark, flat or bias frame")
            settings = await runtime.settings.get(observatory_id)
            now = runtime.now()
            master_id = f"u{uuid.uuid4().hex}"
            master = Frame(
                **msgspec.structs.asdict(metadata),
                id=master_id,
                observatory_id=observatory_id,
                storage_key=master_storage_key(observatory_id, master_id),
                size_bytes=upload.file_size,
                sha256=upload.sha256,
                registered_at=now,
                created_at=now,
                is_master=True,
                config_key=config_key(configuration(metadata, settings)),
                status=MasterStatus.ACTIVE,
                n_frames=_header_number(header, "NCOMBINE", int),
                method=_header_number(header, "CALMETH", str) or "uploaded",
                method_params={},
                temperature_min_c=_header_number(header, "TEMPMIN", float),
                temperature_max_c=_header_number(header, "TEMPMAX", float),
                components=[],
            )
            upload.file.seek(0)
            # the object first, then the record: a record never points at a missing object
            await anyio.to_thread.run_sync(
                runtime.store.put_stream_sync, master.storage_key, upload.file
            )
        if not await runtime.frames.insert(master):
            await runtime.store.delete(master.storage_key)
            existing = await runtime.frames.by_file(observatory_id, master.sha256)
            raise ClientException(
                f"this file is already stored as '{existing.id if existing else 'another frame'}'",
                status_code=409,
            )
        try:
            await publish(
                runtime.broker,
                events.MASTER_CREATED,
                events.MasterCreated(master_id=master.id, observatory_id=observatory_id),
                observatory_id=observatory_id,
                msg_id=f"created-{master.id}",
            )
        except Exception:
            # without master.created nothing would supersede the old master: undo, report 503
            await runtime.frames.delete(master.id)
            await runtime.store.delete(master.storage_key)
            raise
        runtime.log.info(
            "master uploaded",
            master_id=master.id,
            observatory_id=observatory_id,
            frame_type=master.frame_type.value,
        )
        return master
