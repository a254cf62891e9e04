"""Every error as JSON ``{"error": <code>, "detail": <message>}`` (SPEC §8): a use case's
refusal by its kind (:mod:`calib_app.errors`), a dependency that is down as a 503 naming
it, never a 500."""

from __future__ import annotations

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from minio.error import S3Error
from nats.errors import Error as NatsError
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError
from urllib3.exceptions import HTTPError as Urllib3Error

from calib_app.calibrated_lights import NotCalibratedError
from calib_app.errors import ConflictError, NotFoundError, RefusedError
from calib_core.limits import OutOfRangeError
from calib_core.settings import SettingsError
from calib_gateway.uploads.multipart import UploadError, UploadTooLargeError
from calib_infra.rpc import RemoteError, ServiceUnavailableError

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "unprocessable",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class DependencyUnavailableError(Exception):
    """A dependency (``mongodb``, ``s3``, ``nats``) is known to be down: 503 naming it."""

    def __init__(self, dependency: str):
        super().__init__(f"{dependency} is unavailable")
        self.dependency = dependency


def error_response(status: int, detail: str, code: str | None = None, **extra: object) -> Response:
    body = {"error": code or CODES.get(status, "error"), "detail": detail, **extra}
    return Response(body, status_code=status, media_type="application/json")


def http_exception(_: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    detail = exc.detail
    if isinstance(exc, ValidationException) and exc.extra:
        problems = exc.extra if isinstance(exc.extra, list) else [exc.extra]
        parts = [
            f"{p.get('key') or p.get('source', '')}: {p.get('message')}"
            for p in problems
            if isinstance(p, dict)
        ]
        detail = f"{detail}: {'; '.join(parts)}" if parts else detail
    return error_response(status, str(detail))


def unavailable(dependency: str):
    def handler(_: Request, exc: Exception) -> Response:
        return error_response(
            503, f"{dependency} is unavailable: {type(exc).__name__}", dependency=dependency
        )

    return handler


def dependency_unavailable(_: Request, exc: DependencyUnavailableError) -> Response:
    return error_response(503, str(exc), dependency=exc.dependency)


def lifecycle_unavailable(_: Request, exc: Exception) -> Response:
    """The lifecycle service did not answer, or answered that the request failed."""
    return error_response(503, f"lifecycle is unavailable: {exc}")


def status(code: int):
    """Answer an exception with status ``code``, its message as the detail."""

    def handler(_: Request, exc: Exception) -> Response:
        return error_response(code, str(exc))

    return handler


def not_calibrated(_: Request, exc: NotCalibratedError) -> Response:
    return error_response(409, str(exc), code=exc.code)


def invalid_setting(_: Request, exc: SettingsError) -> Response:
    return error_response(422, str(exc), code="invalid_setting", field=exc.field)


def body_too_large(request: Request, exc: RequestEntityTooLarge) -> Response:
    """A body over the route's limit (JSON bodies: 1 MiB), refused before it is read in
    full (at once when its Content-Length says so)."""
    try:
        limit = request.route_handler.resolve_request_max_body_size()
    except (AttributeError, KeyError):  # not raised inside a route
        limit = None
    detail = f"request body is larger than the limit of {limit} bytes" if limit else exc.detail
    return error_response(413, str(detail))


def out_of_range(_: Request, exc: OutOfRangeError) -> Response:
    """A number sent out of its field's range (SPEC §12), naming the field."""
    return error_response(422, str(exc), code="out_of_range", field=exc.field)


def internal_error(request: Request, exc: Exception) -> Response:
    """A bug, not bad input: logged with its traceback, answered in the error shape."""
    request.app.state.gateway.log.exception(
        "unhandled error", path=request.url.path, error=str(exc)
    )
    return error_response(500, "internal error")


EXCEPTION_HANDLERS = {
    HTTPException: http_exception,
    RequestEntityTooLarge: body_too_large,
    OutOfRangeError: out_of_range,
    ServerSelectionTimeoutError: unavailable("mongodb"),
    ConnectionFailure: unavailable("mongodb"),
    S3Error: unavailable("s3"),
    Urllib3Error: unavailable("s3"),
    NatsError: unavailable("nats"),
    DependencyUnavailableError: dependency_unavailable,
    ServiceUnavailableError: lifecycle_unavailable,
    RemoteError: lifecycle_unavailable,
    UploadError: status(400),
    UploadTooLargeError: status(413),
    NotFoundError: status(404),
    ConflictError: status(409),
    NotCalibratedError: not_calibrated,
    RefusedError: status(422),
    SettingsError: invalid_setting,
    Exception: internal_error,
}
