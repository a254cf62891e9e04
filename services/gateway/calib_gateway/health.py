"""``GET /health`` (server admin): every dependency, every service's last heartbeat, and
the backlog of the durable consumers (the stacker's pending jobs above all)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from litestar import Request, Response, get

from calib_core import wiring
from calib_gateway.guards import server_admin
from calib_gateway.library import runtime_of
from calib_infra.runtime import HEARTBEAT_INTERVAL_S, Runtime

CHECK_TIMEOUT_S = 3.0
#: A service whose last heartbeat is older than this is reported as not alive.
STALE_AFTER_S = 3 * HEARTBEAT_INTERVAL_S


class DependencyHealth(msgspec.Struct, kw_only=True):
    ok: bool
    latency_ms: float | None = None
    error: str | None = None


class ServiceHealth(msgspec.Struct, kw_only=True):
    service: str
    instance: str
    last_heartbeat: datetime
    age_s: float
    alive: bool


class ConsumerHealth(msgspec.Struct, kw_only=True):
    durable: str
    service: str
    pending: int | None = None
    ack_pending: int | None = None
    redelivered: int | None = None
    error: str | None = None


class ProcessHealth(msgspec.Struct, kw_only=True):
    """A process that ``calib run`` supervises (absent when something else runs them)."""

    state: str  # "running", "restarting" or "crash-looping"
    pid: int | None = None
    restarts: int
    last_exit: int | str | None = None
    up_since: datetime | None = None


class Health(msgspec.Struct, kw_only=True):
    status: str  # "ok" or "degraded"
    dependencies: dict[str, DependencyHealth]
    services: list[ServiceHealth]
    consumers: dict[str, ConsumerHealth]
    processes: dict[str, ProcessHealth] = {}
    error: str | None = None
    detail: str | None = None


async def _check(probe: Callable[[], Awaitable[Any]]) -> DependencyHealth:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT_S)
    except Exception as error:  # noqa: BLE001 - any failure means "down", reported as such
        return DependencyHealth(ok=False, error=f"{type(error).__name__}: {error}"[:300])
    return DependencyHealth(ok=True, latency_ms=round((time.perf_counter() - start) * 1000, 2))


async def _nats_ping(runtime: Runtime) -> None:
    connection = runtime.broker.connection
    if connection is None or not connection.is_connected:
        raise ConnectionError("not connected")
    await connection.flush(timeout=CHECK_TIMEOUT_S)


async def _consumer(runtime: Runtime, consumer: wiring.Consumer) -> ConsumerHealth:
    named = {"durable": consumer.durable, "service": consumer.service}
    try:
        info = await asyncio.wait_for(
            runtime.broker.connection.jetstream().consumer_info(
                wiring.STREAM.name, consumer.durable
            ),
            CHECK_TIMEOUT_S,
        )
    except Exception as error:  # noqa: BLE001 - reported, not raised
        return ConsumerHealth(**named, error=f"{type(error).__name__}: {error}"[:300])
    return ConsumerHealth(
        **named,
        pending=info.num_pending,
        ack_pending=info.num_ack_pending,
        redelivered=info.num_redelivered,
    )


async def _services(runtime: Runtime) -> list[ServiceHealth]:
    now = runtime.now()
    beats = await asyncio.wait_for(runtime.heartbeats.all(), CHECK_TIMEOUT_S)
    report = []
    for beat in beats:
        age = (now - beat["at"]).total_seconds()
        report.append(
            ServiceHealth(
                service=beat["service"],
                instance=beat["instance"],
                last_heartbeat=beat["at"],
                age_s=round(age, 2),
                alive=age <= STALE_AFTER_S,
            )
        )
    return report


def _processes(state_file: str) -> dict[str, ProcessHealth]:
    """The supervisor's report of its processes (``calib run`` only)."""
    if not state_file:
        return {}
    try:
        return msgspec.json.decode(Path(state_file).read_bytes(), type=dict[str, ProcessHealth])
    except (OSError, msgspec.DecodeError):
        return {}


@get("/api/v1/calibration/health", guards=[server_admin])
async def health(request: Request) -> Response[Health]:
    """200 when MongoDB, S3 and NATS answer, else 503 naming what is down (with the rest
    of the report)."""
    runtime = runtime_of(request)
    mongodb, s3, nats = await asyncio.gather(
        _check(lambda: runtime.db.command("ping")),
        _check(runtime.store.ping),
        _check(lambda: _nats_ping(runtime)),
    )
    dependencies = {"mongodb": mongodb, "s3": s3, "nats": nats}
    services = await _services(runtime) if mongodb.ok else []
    consumers = (
        {
            c.durable: c
            for c in await asyncio.gather(*(_consumer(runtime, c) for c in wiring.CONSUMERS))
        }
        if nats.ok
        else {}
    )
    down = [name for name, check in dependencies.items() if not check.ok]
    report = Health(
        status="degraded" if down else "ok",
        dependencies=dependencies,
        services=services,
        consumers=consumers,
        processes=_processes(runtime.config.supervisor_state_file),
    )
    if down:
        report.error = "unavailable"
        report.detail = f"{', '.join(down)} {'is' if len(down) == 1 else 'are'} unavailable"
    return Response(report, status_code=503 if down else 200)
