"""``POST /uploads``: a presigned S3 PUT for a plugin's file (SPEC §8, §12), so plugins
never hold the bucket's credentials. The plugin PUTs its file to ``upload_url``, then
publishes ``frame.registered.<observatory>`` naming ``storage_key``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, post
from litestar.exceptions import ValidationException
from litestar.params import JSONBody

from calib_app.presigned import PresignedUploads, start_upload
from calib_core.access import Capability, Principal
from calib_gateway.dependencies import Injected
from calib_gateway.errors import error_response, http_exception
from calib_gateway.guards import can_register_somewhere, ensure


class UploadIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    observatory_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    filename: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=1024,
            description="the file's name; kept in the key made safe (path parts dropped)",
        ),
    ]


class UploadOut(msgspec.Struct, kw_only=True):
    storage_key: str
    upload_url: str
    expires_at: datetime


def _unprocessable(request: Request, exc: ValidationException) -> Response:
    """A body that is not an :class:`UploadIn` is a 422, worded as every 400 is."""
    return error_response(422, http_exception(request, exc).content["detail"])


class PresignedUploadController(Controller):
    path = "/api/v1/calibration"

    @post(
        "/uploads",
        status_code=201,
        guards=[can_register_somewhere],
        exception_handlers={ValidationException: _unprocessable},
    )
    async def create_upload(
        self,
        caller: Injected[Principal],
        presigned: Injected[PresignedUploads],
        data: JSONBody[UploadIn],
    ) -> UploadOut:
        """A presigned S3 PUT URL, valid 15 minutes, for a new key under
        ``frames/<observatory_id>/``: PUT the file there (no credentials), then publish
        ``frame.registered.<observatory_id>`` naming ``storage_key``. For the
        observatory's plugin, its admins and server admins."""
        ensure(caller, Capability.REGISTER, data.observatory_id)
        ticket = await start_upload(presigned, data.observatory_id, data.filename)
        return UploadOut(
            storage_key=ticket.storage_key,
            upload_url=ticket.upload_url,
            expires_at=ticket.expires_at,
        )
