"""The OpenAPI document: Litestar generates it from the handlers; here every operation
gets the error responses it can really give, in the API's one error shape."""

from __future__ import annotations

import math

from litestar import Litestar
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Reference, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType

from calib_core.limits import FIELD_RANGES

ERROR_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["error", "detail"],
    properties={
        "error": Schema(
            type=OpenAPIType.STRING, description="machine-readable code, e.g. not_found"
        ),
        "detail": Schema(type=OpenAPIType.STRING, description="what went wrong, for people"),
        "dependency": Schema(type=OpenAPIType.STRING, description="with 503: mongodb, s3 or nats"),
        "field": Schema(
            type=OpenAPIType.STRING,
            description="with 422: the refused field (a setting, a number out of its range)",
        ),
    },
)

ERRORS = {
    "400": "Bad request: malformed parameters or body",
    "401": "Missing, invalid or revoked token",
    "403": "The token may not do this",
    "404": "No such observatory, frame, master or job",
    "409": "Conflicts with the current state",
    "413": "Body over its limit: JSON 1 MiB, uploads CALIB_MAX_UPLOAD_MB, 64 form fields",
    "422": "Well-formed but refused values",
    "503": "A dependency (MongoDB, S3, NATS) is unavailable",
}


_TEXT = Schema(type=OpenAPIType.STRING)


def _ranged(name: str, kind: OpenAPIType = OpenAPIType.NUMBER) -> Schema:
    """A numeric form field and its range (SPEC §12; out of it: 422)."""
    allowed = FIELD_RANGES[name]
    bounded = math.isfinite(allowed.low)
    return Schema(
        type=kind,
        minimum=allowed.low if bounded else None,
        maximum=allowed.high if bounded else None,
        description=None if bounded else "a finite number",
    )


#: The multipart uploads read their body as a stream, so Litestar cannot describe it.
UPLOAD_FORM = Schema(
    type=OpenAPIType.OBJECT,
    required=["file"],
    properties={
        "file": Schema(type=OpenAPIType.STRING, format="binary", description="the FITS file"),
        "observatory_id": Schema(
            type=OpenAPIType.STRING, description="optional for a plugin token"
        ),
        **{
            name: _TEXT
            for name in (
                "frame_type",
                "camera_name",
                "binning",
                "readout_mode",
                "filter",
                "captured_at",
            )
        },
        **{
            name: _ranged(name)
            for name in (
                "gain",
                "offset",
                "exposure_s",
                "temperature_c",
                "set_temperature_c",
                "rotation_deg",
            )
        },
        "width": _ranged("width", OpenAPIType.INTEGER),
        "height": _ranged("height", OpenAPIType.INTEGER),
    },
    description="§2 fields the FITS header lacks or gets wrong",
)
UPLOADS = {"/api/v1/calibration/frames", "/api/v1/calibration/masters/upload"}


def content(media_type: str, description: str) -> dict[int, ResponseSpec]:
    """The 200 response of a route that answers a file or a stream rather than JSON."""
    return {
        200: ResponseSpec(
            data_container=str,
            media_type=media_type,
            description=description,
            generate_examples=False,
        )
    }


def document_errors(app: Litestar) -> None:
    """Replace Litestar's default error responses with the API's ``{"error", "detail"}``
    shape on every operation, and describe the multipart uploads (before the document
    is first served)."""
    document = app.openapi_schema
    components = document.components
    components.schemas = {**(components.schemas or {}), "Error": ERROR_SCHEMA}
    reference = Reference(ref="#/components/schemas/Error")
    for path, path_item in (document.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(path_item, method, None)
            if operation is None:
                continue
            responses = {
                k: v for k, v in (operation.responses or {}).items() if not k.startswith(("4", "5"))
            }
            for status, description in ERRORS.items():
                responses[status] = OpenAPIResponse(
                    description=description,
                    content={"application/json": OpenAPIMediaType(schema=reference)},
                )
            operation.responses = responses
            if method == "post" and path in UPLOADS:
                operation.request_body = RequestBody(
                    required=True,
                    content={"multipart/form-data": OpenAPIMediaType(schema=UPLOAD_FORM)},
                )
