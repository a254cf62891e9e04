"""Live job progress for the admin page: a server-sent event stream per observatory
relaying ``stack.progress`` (core NATS) and the job state changes (``stack.requested``,
``stack.deferred``, ``stack.failed``, ``master.created``) as they are published."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, get
from litestar.response import ServerSentEvent, ServerSentEventMessage
from nats.aio.msg import Msg

from calib_core import events
from calib_gateway.errors import DependencyUnavailableError
from calib_gateway.guards import can_view
from calib_gateway.library import runtime_of

KEEPALIVE_S = 15.0
QUEUE_SIZE = 1000
#: subject kind → the job status it announces
JOB_STATES = {
    events.STACK_REQUESTED: "queued",
    events.STACK_DEFERRED: "deferred",
    events.STACK_FAILED: "failed",
    events.MASTER_CREATED: "succeeded",
}


def to_message(subject: str, body: bytes) -> ServerSentEventMessage | None:
    """The SSE message for one NATS message, or None for a body that is not an event."""
    kind = subject.rsplit(".", 1)[0]
    try:
        payload: dict[str, Any] = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(payload, dict) or "job_id" not in payload and "master_id" not in payload:
        return None
    if kind == events.STACK_PROGRESS:
        data = {k: payload.get(k) for k in ("job_id", "observatory_id", "progress", "status")}
        return ServerSentEventMessage(event="progress", data=msgspec.json.encode(data).decode())
    if kind not in JOB_STATES:
        return None
    data = {
        "job_id": payload.get("job_id"),
        "observatory_id": payload.get("observatory_id"),
        "status": JOB_STATES[kind],
    }
    for extra in ("reason", "master_id"):
        if payload.get(extra) is not None:
            data[extra] = payload[extra]
    return ServerSentEventMessage(event="job", data=msgspec.json.encode(data).decode())


@get(
    "/api/v1/calibration/events/{observatory_id:str}",
    guards=[can_view],
    media_type="text/event-stream",
)
async def job_events(request: Request, observatory_id: str) -> ServerSentEvent:
    """Server-sent events: ``progress`` (``job_id``, ``progress`` 0–1) while a job runs and
    ``job`` (``job_id``, ``status``: queued, deferred, failed, succeeded) on each change."""
    runtime = runtime_of(request)
    connection = runtime.broker.connection
    if connection is None or not connection.is_connected:
        raise DependencyUnavailableError("nats")
    queue: asyncio.Queue[ServerSentEventMessage] = asyncio.Queue(QUEUE_SIZE)

    async def relay(msg: Msg) -> None:
        message = to_message(msg.subject, msg.data)
        if message is not None:
            with contextlib.suppress(
                asyncio.QueueFull
            ):  # a stalled reader loses events, not memory
                queue.put_nowait(message)

    # subscribed before the response starts: nothing published after the client connected is lost
    subscriptions = [
        await connection.subscribe(f"stack.*.{observatory_id}", cb=relay),
        await connection.subscribe(events.subject(events.MASTER_CREATED, observatory_id), cb=relay),
    ]
    await connection.flush()

    async def stream() -> AsyncIterator[ServerSentEventMessage]:
        try:
            yield ServerSentEventMessage(comment="connected")
            while True:
                try:
                    yield await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ServerSentEventMessage(comment="keep-alive")
        finally:
            for subscription in subscriptions:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()

    return ServerSentEvent(
        stream(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
