"""``GET /health`` (server admin): every dependency, every service's last heartbeat, the
backlog of the durable consumers (the stacker's pending jobs above all), the dead
letters waiting for an administrator, and the processes of ``calib run``'s supervisor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import datetime

import msgspec
from litestar import Response, get

from calib_app.dead_letters import DeadLetterOffice, waiting
from calib_app.ports import Clock, HeartbeatRepository
from calib_core import wiring
from calib_gateway.dependencies import Injected
from calib_gateway.guards import server_admin
from calib_gateway.ports import ProcessHealth, SystemProbes

CHECK_TIMEOUT_S = 3.0
#: A service whose last heartbeat is older than this many intervals is reported as not alive.
STALE_AFTER_BEATS = 3
DEPENDENCIES = ("mongodb", "s3", "nats")


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


class Health(msgspec.Struct, kw_only=True):
    status: str  # "ok" or "degraded"
    dependencies: dict[str, DependencyHealth]
    services: list[ServiceHealth]
    consumers: dict[str, ConsumerHealth]
    processes: dict[str, ProcessHealth] = {}
    #: dead letters not yet replayed (``GET /api/v1/admin/dead-letters``); None if unknown
    dead_letters: int | None = None
    error: str | None = None
    detail: str | None = None


def _failure(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:300]


async def _check(probe: Awaitable[None]) -> DependencyHealth:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
    except Exception as error:  # noqa: BLE001 - any failure means "down", reported as such
        return DependencyHealth(ok=False, error=_failure(error))
    return DependencyHealth(ok=True, latency_ms=round((time.perf_counter() - start) * 1000, 2))


async def _consumer(probes: SystemProbes, consumer: wiring.Consumer) -> ConsumerHealth:
    named = {"durable": consumer.durable, "service": consumer.service}
    try:
        backlog = await asyncio.wait_for(probes.backlog(consumer.durable), CHECK_TIMEOUT_S)
    except Exception as error:  # noqa: BLE001 - reported, not raised
        return ConsumerHealth(**named, error=_failure(error))
    return ConsumerHealth(
        **named,
        pending=backlog.pending,
        ack_pending=backlog.ack_pending,
        redelivered=backlog.redelivered,
    )


async def _dead_letters(office: DeadLetterOffice) -> int | None:
    try:
        return await asyncio.wait_for(waiting(office), CHECK_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - reported as unknown, not raised
        return None


async def _services(
    heartbeats: HeartbeatRepository, now: datetime, interval_s: float
) -> list[ServiceHealth]:
    beats = await asyncio.wait_for(heartbeats.all(), CHECK_TIMEOUT_S)
    report = []
    for beat in beats:
        age = (now - beat["at"]).total_seconds()
        report.append(
            ServiceHealth(
                service=beat["service"],
                instance=beat["instance"],
                last_heartbeat=beat["at"],
                age_s=round(age, 2),
                alive=age <= STALE_AFTER_BEATS * interval_s,
            )
        )
    return report


@get("/api/v1/calibration/health", guards=[server_admin])
async def health(
    probes: Injected[SystemProbes],
    heartbeats: Injected[HeartbeatRepository],
    clock: Injected[Clock],
    dead_letters: Injected[DeadLetterOffice],
) -> Response[Health]:
    """200 when MongoDB, S3 and NATS answer, else 503 naming what is down (with the rest
    of the report)."""
    checks = await asyncio.gather(*(_check(probes.ping(name)) for name in DEPENDENCIES))
    dependencies = dict(zip(DEPENDENCIES, checks, strict=True))
    services = (
        await _services(heartbeats, clock.now(), probes.heartbeat_interval_s)
        if dependencies["mongodb"].ok
        else []
    )
    consumers = (
        {
            c.durable: c
            for c in await asyncio.gather(*(_consumer(probes, c) for c in wiring.CONSUMERS))
        }
        if dependencies["nats"].ok
        else {}
    )
    down = [name for name, check in dependencies.items() if not check.ok]
    report = Health(
        status="degraded" if down else "ok",
        dependencies=dependencies,
        services=services,
        consumers=consumers,
        processes=probes.processes(),
        dead_letters=await _dead_letters(dead_letters) if dependencies["mongodb"].ok else None,
    )
    if down:
        report.error = "unavailable"
        report.detail = f"{', '.join(down)} {'is' if len(down) == 1 else 'are'} unavailable"
    return Response(report, status_code=503 if down else 200)
