"""``POST /masters/upload``: a master FITS made elsewhere, streamed to S3 and recorded as
the current master of its configuration."""

from __future__ import annotations

import anyio
import msgspec
from litestar import Controller, Request, post

from calib_app.errors import RefusedError
from calib_app.uploads import Uploads, add_uploaded_master
from calib_core.access import Capability, Principal
from calib_core.fitsheader import InvalidFitsError, read_image_layout
from calib_core.headers import MissingFieldsError, fields_from_header, resolve_metadata
from calib_core.limits import ImageLimits
from calib_core.models import Frame
from calib_gateway.dependencies import Injected
from calib_gateway.guards import can_manage_somewhere
from calib_gateway.uploads.receiver import UploadReceiver, form_metadata


class MasterUploadController(Controller):
    path = "/api/v1/calibration"

    @post(
        "/masters/upload",
        status_code=201,
        guards=[can_manage_somewhere],
        request_max_body_size=None,  # bounded by the receiver (CALIB_MAX_UPLOAD_MB)
    )
    async def upload_master(
        self,
        request: Request,
        caller: Injected[Principal],
        receiver: Injected[UploadReceiver],
        uploads: Injected[Uploads],
        image_limits: Injected[ImageLimits],
    ) -> Frame:
        """Multipart field ``file`` (a master FITS) plus ``observatory_id`` and any §2 field
        the header lacks or gets wrong; answers the new master (status ``active``). A file
        whose header declares more than the image limits is refused (422) unread."""
        async with receiver.receive(request, caller, Capability.MANAGE) as upload:
            form = form_metadata(upload.fields)
            try:
                layout = await anyio.to_thread.run_sync(
                    lambda: read_image_layout(upload.file, limits=image_limits)
                )
                header = layout.header
                metadata = resolve_metadata(form, fields_from_header(header))
            except InvalidFitsError as error:
                raise RefusedError(f"file: {error}") from error
            except MissingFieldsError as error:
                raise RefusedError(
                    f"{error} (neither in the form nor in the FITS header)"
                ) from error
            except msgspec.ValidationError as error:
                raise RefusedError(f"invalid metadata: {error}") from error
            return await add_uploaded_master(
                uploads,
                upload.observatory_id,
                metadata,
                header,
                upload.file,
                size_bytes=upload.size_bytes,
                sha256=upload.sha256,
            )
