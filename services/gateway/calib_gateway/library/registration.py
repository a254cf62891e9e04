"""``POST /frames``: a frame uploaded through the API, stored and registered as a plugin's
frame would be (the registry reads its header and records it). A file whose header
declares more than the image limits is refused at once, and not stored (SPEC §12)."""

from __future__ import annotations

from typing import IO

import anyio
import msgspec
from litestar import Controller, Request, post
from litestar.exceptions import ValidationException

from calib_app.errors import RefusedError
from calib_app.uploads import Uploads, register_upload
from calib_core.access import Capability, Principal
from calib_core.fitsheader import ImageLimitError, InvalidFitsError
from calib_core.imagefile import read_image_layout
from calib_core.limits import ImageLimits
from calib_gateway.dependencies import Injected
from calib_gateway.guards import can_register_somewhere
from calib_gateway.library.schemas import Accepted
from calib_gateway.uploads.receiver import UploadReceiver, form_metadata


def within_limits(file: IO[bytes], limits: ImageLimits) -> None:
    """Refuse (422) a file (FITS or XISF) whose header declares more than ``limits``,
    judged from its first bytes; anything else wrong with it is for the registry to
    record."""
    try:
        read_image_layout(file, limits=limits)
    except ImageLimitError as error:
        raise RefusedError(f"file: {error}") from error
    except InvalidFitsError:
        pass
    finally:
        file.seek(0)


class FrameRegistrationController(Controller):
    path = "/api/v1/calibration"

    @post(
        "/frames",
        status_code=202,
        guards=[can_register_somewhere],
        request_max_body_size=None,  # bounded by the receiver (CALIB_MAX_UPLOAD_MB)
    )
    async def upload_frame(
        self,
        request: Request,
        caller: Injected[Principal],
        receiver: Injected[UploadReceiver],
        uploads: Injected[Uploads],
        image_limits: Injected[ImageLimits],
    ) -> Accepted:
        """Upload one frame (a FITS or XISF file in multipart field ``file``, plus optional
        §2 fields) and register it."""
        async with receiver.receive(
            request, caller, Capability.REGISTER, default_observatory=caller.plugin_observatory
        ) as upload:
            metadata = form_metadata(upload.fields)
            await anyio.to_thread.run_sync(within_limits, upload.file, image_limits)
            try:
                registration = await register_upload(
                    uploads, upload.observatory_id, metadata, upload.file
                )
            except msgspec.ValidationError as error:
                raise ValidationException(f"invalid form field: {error}") from error
        return Accepted(event_id=registration.event_id, storage_key=registration.storage_key)
