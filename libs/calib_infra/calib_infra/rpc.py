"""Request/reply over core NATS: a caller that needs an answer now (the gateway, the
scheduler) asks the lifecycle service, whose replicas share the requests (queue group).

Replies are ``{"result": ...}`` or ``{"error": "..."}``; a request nobody answers in
time raises :class:`ServiceUnavailableError`, a failed one :class:`RemoteError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import nats.errors
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from calib_core import events
from calib_core.lifecycle import MaintenanceTask
from calib_infra import metrics
from calib_infra.runtime import Runtime

R = TypeVar("R")
Q = TypeVar("Q", bound=msgspec.Struct)

CALIBRATE_TIMEOUT_S = 300.0
MAINTENANCE_TIMEOUT_S = 900.0
PREVIEW_TIMEOUT_S = 60.0


class ServiceUnavailableError(Exception):
    """No replica of the service answered (down, or busy past the timeout)."""

    def __init__(self, service: str, subject: str):
        super().__init__(f"the {service} service did not answer on {subject}")
        self.service = service


class RemoteError(Exception):
    """The service answered that the request failed."""


class _Reply(msgspec.Struct):
    result: Any = None
    error: str | None = None


class LifecycleClient:
    """The lifecycle service's requests (:class:`calib_app.ports.LifecycleService`)."""

    def __init__(self, broker: NatsBroker):
        self.broker = broker

    async def calibrate(self, frame_id: str) -> events.CalibrateReply:
        return await self._request(
            events.LIFECYCLE_CALIBRATE,
            events.CalibrateRequest(frame_id=frame_id),
            events.CalibrateReply,
            timeout_s=CALIBRATE_TIMEOUT_S,
        )

    async def preview(self, frame_id: str) -> events.PreviewReply:
        return await self._request(
            events.LIFECYCLE_PREVIEW,
            events.PreviewRequest(frame_id=frame_id),
            events.PreviewReply,
            timeout_s=PREVIEW_TIMEOUT_S,
        )

    async def maintenance(
        self, task: MaintenanceTask, observatory_id: str | None, report_type: type[R]
    ) -> R:
        return await self._request(
            events.LIFECYCLE_MAINTENANCE,
            events.MaintenanceCommand(task=task.value, observatory_id=observatory_id),
            report_type,
            timeout_s=MAINTENANCE_TIMEOUT_S,
        )

    async def _request(
        self, subject: str, body: msgspec.Struct, reply_type: type[R], *, timeout_s: float
    ) -> R:
        try:
            response = await self.broker.request(
                msgspec.json.encode(body), subject, timeout=timeout_s
            )
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError) as error:
            raise ServiceUnavailableError("lifecycle", subject) from error
        reply = msgspec.json.decode(response.body, type=_Reply)
        if reply.error is not None:
            raise RemoteError(reply.error)
        return msgspec.convert(reply.result, reply_type)


def serve(
    runtime: Runtime,
    subject: str,
    request_type: type[Q],
    handler: Callable[[Q], Awaitable[msgspec.Struct]],
    *,
    max_workers: int = 1,
) -> None:
    """Answer requests on ``subject`` with ``handler`` (replicas share them: queue group)."""

    @runtime.broker.subscriber(subject, queue=runtime.service, max_workers=max_workers)
    async def on_request(msg: NatsMessage) -> bytes:
        try:
            result = await handler(msgspec.json.decode(msg.body, type=request_type))
        except Exception as error:  # noqa: BLE001 - the caller gets the reason, we keep serving
            runtime.log.exception("request failed", subject=subject, error=str(error))
            metrics.REQUESTS_ANSWERED.labels(subject, "error").inc()
            return msgspec.json.encode(_Reply(error=f"{type(error).__name__}: {error}"))
        metrics.REQUESTS_ANSWERED.labels(subject, "ok").inc()
        return msgspec.json.encode(_Reply(result=msgspec.to_builtins(result)))
