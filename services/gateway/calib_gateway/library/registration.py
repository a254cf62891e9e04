"""``POST /frames``: a frame uploaded through the API, stored and registered as a plugin's
frame would be (the registry reads its header and records it)."""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, post
from litestar.exceptions import ValidationException

from calib_app.uploads import Uploads, register_upload
from calib_core.access import Capability, Principal
from calib_gateway.dependencies import Injected
from calib_gateway.library.schemas import Accepted
from calib_gateway.uploads.receiver import UploadReceiver, form_metadata


class FrameRegistrationController(Controller):
    path = "/api/v1/calibration"

    @post("/frames", status_code=202)
    async def upload_frame(
        self,
        request: Request,
        caller: Injected[Principal],
        receiver: Injected[UploadReceiver],
        uploads: Injected[Uploads],
    ) -> Accepted:
        """Upload one frame (multipart field ``file`` plus optional §2 fields) and register it."""
        async with receiver.receive(
            request, caller, Capability.REGISTER, default_observatory=caller.plugin_observatory
        ) as upload:
            try:
                registration = await register_upload(
                    uploads, upload.observatory_id, form_metadata(upload.fields), upload.file
                )
            except msgspec.ValidationError as error:
                raise ValidationException(f"invalid form field: {error}") from error
        return Accepted(event_id=registration.event_id, storage_key=registration.storage_key)
