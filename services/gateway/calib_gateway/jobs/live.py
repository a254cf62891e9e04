"""Live job progress for the admin page: a server-sent event stream per observatory
relaying ``stack.progress`` (core NATS) and the job state changes (``stack.requested``,
``stack.deferred``, ``stack.failed``, ``master.created``) as they are published."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import get
from litestar.params import FromPath
from litestar.response import ServerSentEvent, ServerSentEventMessage

from calib_core import events
from calib_gateway.dependencies import Injected
from calib_gateway.guards import can_view
from calib_gateway.openapi import content
from calib_gateway.ports import FeedSubscription, JobFeed

KEEPALIVE_S = 15.0
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


async def _relayed(subscription: FeedSubscription) -> AsyncIterator[ServerSentEventMessage]:
    try:
        yield ServerSentEventMessage(comment="connected")
        while True:
            try:
                received = await asyncio.wait_for(subscription.next(), KEEPALIVE_S)
            except TimeoutError:
                yield ServerSentEventMessage(comment="keep-alive")
                continue
            if received is None:
                return
            if (message := to_message(*received)) is not None:
                yield message
    finally:
        await subscription.close()


@get(
    "/api/v1/calibration/events/{observatory_id:str}",
    guards=[can_view],
    media_type="text/event-stream",
    responses=content("text/event-stream", "Server-sent events"),
)
async def job_events(feed: Injected[JobFeed], observatory_id: FromPath[str]) -> ServerSentEvent:
    """Server-sent events: ``progress`` (``job_id``, ``progress`` 0–1) while a job runs and
    ``job`` (``job_id``, ``status``: queued, deferred, failed, succeeded) on each change."""
    # subscribed before the response starts: nothing published after the client connected is lost
    subscription = await feed.follow(observatory_id)
    return ServerSentEvent(
        _relayed(subscription), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
