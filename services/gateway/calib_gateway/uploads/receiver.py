"""An upload received for an observatory: the multipart body bounded before it is read
(its Content-Length) and while it is (the file spooled, every limit enforced), the
observatory it names checked against the caller's rights as soon as that field arrives;
and the form's §2 fields as typed values in their ranges (SPEC §12)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO, Any

from litestar import Request
from litestar.exceptions import NotFoundException, ValidationException

from calib_app.ports import ObservatoryRepository
from calib_core import events
from calib_core.access import Capability, Principal
from calib_core.limits import out_of_range
from calib_gateway.guards import ensure
from calib_gateway.uploads.multipart import (
    UploadError,
    UploadTooLargeError,
    max_body_bytes,
    parse_multipart,
)

FORM_NUMBERS = {
    "gain",
    "offset",
    "exposure_s",
    "temperature_c",
    "set_temperature_c",
    "rotation_deg",
}
FORM_INTEGERS = {"width", "height"}
#: §2 fields a form may give (the rest of ``frame.registered`` is the gateway's to set).
FORM_FIELDS = set(events.FrameRegistered.__struct_fields__) - {
    "event_id",
    "observatory_id",
    "storage_key",
}


@dataclass(frozen=True)
class ReceivedUpload:
    observatory_id: str
    file: IO[bytes]
    size_bytes: int
    sha256: str
    fields: dict[str, str]
    """The other form fields, as sent."""


@dataclass(frozen=True)
class UploadReceiver:
    observatories: ObservatoryRepository
    limit_bytes: int

    @contextlib.asynccontextmanager
    async def receive(
        self,
        request: Request,
        caller: Principal,
        capability: Capability,
        *,
        default_observatory: str | None = None,
    ) -> AsyncIterator[ReceivedUpload]:
        """Parse the upload and check that ``caller`` may send it to the observatory it
        names (or ``default_observatory``): a body announced longer than the limits is
        refused unread, and a field ``observatory_id`` the caller may not send to ends the
        parse when it arrives. The spooled file is closed however the handler ends."""
        longest = max_body_bytes(self.limit_bytes)
        if (request.content_length or 0) > longest:
            raise UploadTooLargeError(
                f"request body is larger than the limit of {longest} bytes"
                f" (a file of at most {self.limit_bytes} bytes)"
            )

        def on_field(name: str, value: str) -> None:
            if name == "observatory_id" and value:
                ensure(caller, capability, value)

        upload = await parse_multipart(
            request.headers.get("content-type", ""),
            request.stream(),
            self.limit_bytes,
            on_field=on_field,
        )
        with contextlib.ExitStack() as cleanup:
            if upload.file is not None:
                cleanup.callback(upload.file.close)
            fields = dict(upload.fields)
            observatory_id = fields.pop("observatory_id", "") or default_observatory
            if not observatory_id:
                raise ValidationException("form field 'observatory_id' is required")
            ensure(caller, capability, observatory_id)
            if await self.observatories.get(observatory_id) is None:
                raise NotFoundException(f"observatory '{observatory_id}' not found")
            if upload.file is None:
                raise UploadError("multipart field 'file' is required")
            yield ReceivedUpload(
                observatory_id=observatory_id,
                file=upload.file,
                size_bytes=upload.file_size,
                sha256=upload.sha256,
                fields=fields,
            )


def form_metadata(fields: dict[str, str]) -> dict[str, Any]:
    """The §2 fields of a form, numbers as numbers; an empty value counts as absent.
    Raises :class:`~calib_core.limits.OutOfRangeError` (422) naming a field whose number
    is not finite or out of its range."""
    metadata: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in FORM_FIELDS:
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
        refused = out_of_range(name, metadata[name], f"form field '{name}'")
        if refused is not None:
            raise refused
    return metadata
