"""The gateway service's composition root: the adapters over a Runtime, built once into
the :class:`Gateway` the routes are given; start-up connects them without waiting (the
gateway answers, reporting not-ready, while a dependency is still down)."""

from __future__ import annotations

import asyncio

import uvicorn
from litestar import Litestar
from prometheus_client import REGISTRY

from calib_app.access import bootstrap_admin
from calib_app.bus_access import admit_plugin
from calib_gateway.adapters import NatsJobFeed, ServerProbes, gateway_metrics
from calib_gateway.app import create_app
from calib_gateway.dependencies import Gateway
from calib_infra import compose, natsauth
from calib_infra.bus import start_with_retry
from calib_infra.metrics import SupervisorRestarts
from calib_infra.rpc import LifecycleClient
from calib_infra.runtime import HEARTBEAT_INTERVAL_S, Runtime


def gateway_of(runtime: Runtime) -> Gateway:
    dead_letters = compose.dead_letter_office(runtime)
    return Gateway(
        library=compose.frame_library(runtime),
        queue=compose.job_queue(runtime),
        inventory=compose.inventory(runtime),
        uploads=compose.uploads(runtime),
        presigned=compose.presigned_uploads(runtime),
        access=compose.access(runtime),
        rejections=runtime.rejections,
        heartbeats=runtime.heartbeats,
        dead_letters=dead_letters,
        lifecycle=LifecycleClient(runtime.broker),
        feed=NatsJobFeed(runtime.broker),
        probes=ServerProbes(
            db=runtime.db,
            store=runtime.store,
            broker=runtime.broker,
            supervisor_state_file=runtime.config.supervisor_state_file,
            heartbeat_interval_s=HEARTBEAT_INTERVAL_S,
        ),
        liveness=runtime.health_reply,
        metrics=lambda: gateway_metrics(dead_letters),
        upload_limit_bytes=runtime.config.max_upload_mb * 1024 * 1024,
        image_limits=runtime.config.image_limits,
    )


async def admit_plugins(runtime: Runtime, gateway: Gateway, background: list[asyncio.Task]) -> None:
    """Answer the bus's authorization requests for plugin tokens, and close the
    connections of tokens revoked since (SPEC §12)."""
    accounts, config = gateway.access.accounts, runtime.config
    await natsauth.answer_callouts(
        runtime.broker.connection,
        natsauth.issuer(config.nats_issuer_seed),
        lambda token: admit_plugin(accounts, token),
        runtime.log,
    )
    background.append(
        asyncio.create_task(
            natsauth.close_revoked_forever(
                config.nats_servers, config.nats_system_password, accounts, runtime.log
            )
        )
    )


def application(runtime: Runtime) -> Litestar:
    gateway = gateway_of(runtime)
    background: list[asyncio.Task] = []

    async def connect() -> None:
        await runtime.connect_datastores()
        if runtime.config.bootstrap_admin_token:
            await bootstrap_admin(gateway.access, runtime.config.bootstrap_admin_token)
        await start_with_retry(runtime.broker, runtime.log, runtime.config)
        if runtime.config.nats_issuer_seed:
            await admit_plugins(runtime, gateway, background)
        runtime.bus_ready.set()
        runtime.log.info("gateway ready")

    async def start() -> None:
        background.append(asyncio.create_task(connect()))
        background.append(asyncio.create_task(runtime.heartbeat_forever()))

    async def stop() -> None:
        for task in background:
            task.cancel()
        await runtime.close()

    return create_app(gateway, on_startup=[start], on_shutdown=[stop])


def main() -> None:
    runtime = Runtime("gateway")
    if runtime.config.supervisor_state_file:
        REGISTRY.register(SupervisorRestarts(runtime.config.supervisor_state_file))
    uvicorn.run(
        application(runtime),
        host=runtime.config.gateway_host,
        port=runtime.config.gateway_port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
