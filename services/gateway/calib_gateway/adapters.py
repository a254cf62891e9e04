"""The gateway's own ports (:mod:`calib_gateway.ports`) over NATS, MongoDB and S3."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import msgspec
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pymongo.asynchronous.database import AsyncDatabase

from calib_app.dead_letters import DeadLetterOffice, waiting
from calib_core import events, wiring
from calib_gateway.errors import DependencyUnavailableError
from calib_gateway.ports import Backlog, ProcessHealth
from calib_infra import metrics
from calib_infra.store import ObjectStore

#: Messages a subscriber holds for a slow reader; beyond it a stalled reader loses
#: events, not memory.
FEED_QUEUE_SIZE = 1000
PING_TIMEOUT_S = 3.0


def _connected(broker: NatsBroker) -> NatsClient | None:
    connection = broker.connection
    return connection if connection is not None and connection.is_connected else None


class NatsFeedSubscription:
    """Core NATS subscriptions feeding one queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(FEED_QUEUE_SIZE)
        self.subscriptions: list[Subscription] = []

    async def relay(self, msg: Msg) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait((msg.subject, msg.data))

    async def next(self) -> tuple[str, bytes] | None:
        return await self.queue.get()

    async def close(self) -> None:
        for subscription in self.subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()


class NatsJobFeed:
    def __init__(self, broker: NatsBroker):
        self.broker = broker

    async def follow(self, observatory_id: str) -> NatsFeedSubscription:
        connection = _connected(self.broker)
        if connection is None:
            raise DependencyUnavailableError("nats")
        feed = NatsFeedSubscription()
        for subject in (
            f"stack.*.{observatory_id}",
            events.subject(events.MASTER_CREATED, observatory_id),
        ):
            feed.subscriptions.append(await connection.subscribe(subject, cb=feed.relay))
        await connection.flush()
        return feed


class ServerProbes:
    """The dependencies as this process reaches them, the stream's consumers, and the
    state file of ``calib run``'s supervisor (if it runs the services)."""

    def __init__(
        self,
        *,
        db: AsyncDatabase,
        store: ObjectStore,
        broker: NatsBroker,
        supervisor_state_file: str,
        heartbeat_interval_s: float,
    ):
        self.heartbeat_interval_s = heartbeat_interval_s
        self.db = db
        self.store = store
        self.broker = broker
        self.supervisor_state_file = supervisor_state_file

    async def ping(self, dependency: str) -> None:
        if dependency == "mongodb":
            await self.db.command("ping")
        elif dependency == "s3":
            await self.store.ping()
        elif dependency == "nats":
            connection = _connected(self.broker)
            if connection is None:
                raise ConnectionError("not connected")
            await connection.flush(timeout=PING_TIMEOUT_S)
        else:
            raise ValueError(f"unknown dependency {dependency!r}")

    async def backlog(self, durable: str) -> Backlog:
        connection = _connected(self.broker)
        if connection is None:
            raise ConnectionError("not connected")
        info = await connection.jetstream().consumer_info(wiring.STREAM.name, durable)
        return Backlog(
            pending=info.num_pending,
            ack_pending=info.num_ack_pending,
            redelivered=info.num_redelivered,
        )

    def processes(self) -> dict[str, ProcessHealth]:
        if not self.supervisor_state_file:
            return {}
        try:
            return msgspec.json.decode(
                Path(self.supervisor_state_file).read_bytes(), type=dict[str, ProcessHealth]
            )
        except (OSError, msgspec.DecodeError):
            return {}


async def gateway_metrics(dead_letters: DeadLetterOffice) -> tuple[bytes, str]:
    """The gateway's metrics, with the dead letters waiting counted now (NaN when the
    database does not answer)."""
    try:
        count = await asyncio.wait_for(waiting(dead_letters), PING_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - unknown, not zero
        count = float("nan")
    metrics.DEAD_LETTERS_WAITING.set(count)
    return metrics.exposition(), metrics.CONTENT_TYPE
