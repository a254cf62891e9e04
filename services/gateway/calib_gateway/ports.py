"""What the gateway needs besides the use cases' ports (:mod:`calib_app.ports`): the live
job feed of the admin page, probes of the running system for the health report, and
its own liveness answer. ``calib_gateway.adapters`` implements them over NATS, MongoDB
and S3; the route tests use fakes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import msgspec

#: ``/healthz`` or ``/livez`` → (status code, JSON body): the process host's answer.
Liveness = Callable[[str], Awaitable[tuple[int, bytes]]]

#: ``/metrics`` → (body, content type): this process's Prometheus metrics.
Metrics = Callable[[], Awaitable[tuple[bytes, str]]]


class FeedSubscription(Protocol):
    async def next(self) -> tuple[str, bytes] | None:
        """The next message as (subject, body); None once the feed has ended."""
        ...

    async def close(self) -> None: ...


class JobFeed(Protocol):
    """Job events as the bus carries them, live (not replayed)."""

    async def follow(self, observatory_id: str) -> FeedSubscription:
        """Subscribe now to an observatory's ``stack.*`` and ``master.created`` messages.
        Raises ``DependencyUnavailableError("nats")`` while the bus is not connected."""
        ...


@dataclass(frozen=True)
class Backlog:
    """A durable consumer's messages not yet delivered, delivered but unacknowledged,
    and delivered more than once."""

    pending: int
    ack_pending: int
    redelivered: int


class ProcessHealth(msgspec.Struct, kw_only=True):
    """A process that ``calib run`` supervises (absent when something else runs them)."""

    state: str  # "running", "restarting" or "crash-looping"
    pid: int | None = None
    restarts: int
    last_exit: int | str | None = None
    up_since: datetime | None = None


class SystemProbes(Protocol):
    heartbeat_interval_s: float
    """How often every service records its heartbeat."""

    async def ping(self, dependency: str) -> None:
        """Raises unless ``dependency`` (``mongodb``, ``s3`` or ``nats``) answers now."""
        ...

    async def backlog(self, durable: str) -> Backlog:
        """Of a durable consumer of the stream; raises when it cannot be had."""
        ...

    def processes(self) -> dict[str, ProcessHealth]:
        """The supervisor's report of its processes; empty without a supervisor."""
        ...
