"""The gateway's Litestar application, over whatever :class:`Gateway` it is given."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from litestar import Litestar, Request, Response, get
from litestar.config.cors import CORSConfig
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.response import Redirect

from calib_gateway.admin.dead_letters import DeadLetterController
from calib_gateway.admin.routes import AdminController, me
from calib_gateway.auth import BearerTokenMiddleware
from calib_gateway.dependencies import Gateway, Injected, dependencies
from calib_gateway.errors import EXCEPTION_HANDLERS
from calib_gateway.guards import refuse_operator_parameters
from calib_gateway.jobs.live import job_events
from calib_gateway.jobs.routes import JobsController
from calib_gateway.library.registration import FrameRegistrationController
from calib_gateway.library.routes import LibraryController
from calib_gateway.maintenance.health import health
from calib_gateway.maintenance.routes import MaintenanceController
from calib_gateway.masters.creation import MasterCreationController
from calib_gateway.masters.upload import MasterUploadController
from calib_gateway.needs.routes import NeedsController
from calib_gateway.openapi import document_errors
from calib_gateway.page import admin_page
from calib_gateway.ports import Liveness, Metrics
from calib_gateway.rejections.routes import RejectionsController
from calib_gateway.settings.routes import SettingsController
from calib_gateway.uploads.presigned import PresignedUploadController

#: Every body is bounded before it is read (SPEC §12): JSON bodies here, at the app; the
#: upload routes bound their multipart bodies themselves (``CALIB_MAX_UPLOAD_MB``).
MAX_JSON_BODY_BYTES = 1024 * 1024

#: ``/metrics`` carries counts and consumer names, no secret: Prometheus scrapes it without
#: a token (an ingress that publishes the API keeps it inside the cluster).
PUBLIC_PATHS = [
    "^/healthz$",
    "^/livez$",
    "^/metrics$",
    "^/api/docs",
    "^/api/openapi",
    "^/admin",
    "^/$",
]

ROUTES = [
    LibraryController,
    FrameRegistrationController,
    PresignedUploadController,
    MasterCreationController,
    MasterUploadController,
    JobsController,
    job_events,
    SettingsController,
    RejectionsController,
    NeedsController,
    AdminController,
    DeadLetterController,
    me,
    MaintenanceController,
    health,
]


@get("/", include_in_schema=False)
async def root() -> Redirect:
    return Redirect("/admin/")


@get(["/healthz", "/livez"], include_in_schema=False)
async def healthz(request: Request, liveness: Injected[Liveness]) -> Response[bytes]:
    """``/healthz``: 200 while MongoDB, S3 and NATS each answer now, else 503 naming what
    does not; ``/livez``: the process answers (for a container's liveness probe)."""
    status, body = await liveness(request.url.path)
    return Response(body, status_code=status, media_type="application/json")


@get("/metrics", include_in_schema=False)
async def prometheus_metrics(metrics: Injected[Metrics]) -> Response[bytes]:
    """This process's Prometheus metrics (:mod:`calib_infra.metrics`)."""
    body, content_type = await metrics()
    # as a header: as a media type, Litestar would add a second charset to it
    return Response(body, headers={"Content-Type": content_type})


def create_app(
    gateway: Gateway,
    *,
    on_startup: Sequence[Callable[[], Awaitable[None]]] = (),
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
) -> Litestar:
    """The application over ``gateway``; ``on_startup``/``on_shutdown`` connect and close
    what the composition root built (nothing, in tests)."""
    app = Litestar(
        route_handlers=[healthz, prometheus_metrics, root, admin_page, *ROUTES],
        dependencies=dependencies(gateway),
        guards=[refuse_operator_parameters],
        middleware=[DefineMiddleware(BearerTokenMiddleware, exclude=PUBLIC_PATHS)],
        exception_handlers=EXCEPTION_HANDLERS,
        on_startup=list(on_startup),
        on_shutdown=list(on_shutdown),
        openapi_config=OpenAPIConfig(
            title="Calib API",
            version="1.0.0",
            path="/api",
            render_plugins=[SwaggerRenderPlugin(path="/docs")],
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(type="http", scheme="bearer"),
                }
            ),
            security=[{"BearerToken": []}],
        ),
        request_max_body_size=MAX_JSON_BODY_BYTES,
        cors_config=CORSConfig(allow_origins=[]),
        debug=False,
    )
    app.state.gateway = gateway  # for the middleware, the guards and the error handlers
    document_errors(app)
    return app
