"""The gateway's Litestar application."""

from __future__ import annotations

import asyncio

from litestar import Litestar, Request, Response, get
from litestar.config.cors import CORSConfig
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.response import Redirect

from calib_gateway.admin import AdminController, me
from calib_gateway.auth import BearerTokenMiddleware, TokenStore
from calib_gateway.errors import EXCEPTION_HANDLERS
from calib_gateway.events_stream import job_events
from calib_gateway.guards import refuse_operator_parameters
from calib_gateway.health import health
from calib_gateway.jobs import JobsController
from calib_gateway.library import LibraryController
from calib_gateway.lifecycle_routes import LIFECYCLE_ROUTES
from calib_gateway.master_upload import MasterUploadController
from calib_gateway.needs import NeedsController
from calib_gateway.openapi import document_errors
from calib_gateway.page import admin_page
from calib_infra.bus import start_with_retry
from calib_infra.runtime import Runtime

PUBLIC_PATHS = ["^/healthz$", "^/livez$", "^/api/docs", "^/api/openapi", "^/admin", "^/$"]


@get("/", include_in_schema=False)
async def root() -> Redirect:
    return Redirect("/admin/")


@get(["/healthz", "/livez"], include_in_schema=False)
async def healthz(request: Request) -> Response[bytes]:
    """``/healthz``: 200 while MongoDB, S3 and NATS each answer now, else 503 naming what
    does not; ``/livez``: the process answers (for a container's liveness probe)."""
    runtime: Runtime = request.app.state.runtime
    status, body = await runtime.health_reply(request.url.path)
    return Response(body, status_code=status, media_type="application/json")


def create_app(runtime: Runtime) -> Litestar:
    tokens = TokenStore(runtime.db)
    background: list[asyncio.Task] = []

    async def start() -> None:
        async def connect() -> None:
            await runtime.connect_datastores()
            if runtime.config.bootstrap_admin_token:
                await tokens.bootstrap(runtime.config.bootstrap_admin_token, runtime.now())
            await start_with_retry(runtime.broker, runtime.log)
            runtime.bus_ready.set()
            runtime.log.info("gateway ready")

        background.append(asyncio.create_task(connect()))
        background.append(asyncio.create_task(runtime.heartbeat_forever()))

    async def stop() -> None:
        for task in background:
            task.cancel()
        await runtime.close()

    app = Litestar(
        route_handlers=[
            healthz,
            root,
            me,
            LibraryController,
            JobsController,
            AdminController,
            admin_page,
            NeedsController,
            MasterUploadController,
            health,
            job_events,
            *LIFECYCLE_ROUTES,
        ],
        guards=[refuse_operator_parameters],
        middleware=[DefineMiddleware(BearerTokenMiddleware, exclude=PUBLIC_PATHS)],
        exception_handlers=EXCEPTION_HANDLERS,
        on_startup=[start],
        on_shutdown=[stop],
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
        request_max_body_size=None,
        cors_config=CORSConfig(allow_origins=[]),
        debug=False,
    )
    app.state.runtime = runtime
    app.state.tokens = tokens
    document_errors(app)
    return app
