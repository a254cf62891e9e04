"""The NATS JetStream bus (FastStream): the CALIBRATION stream, publishing with
``Nats-Msg-Id`` de-duplication, and durable consumers."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsBroker
from faststream.nats.schemas import PullSub
from nats.js.api import DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from calib_core import events, wiring
from calib_infra.config import Config
from calib_infra.retry import until_it_works


def calibration_stream() -> JStream:
    return JStream(
        name=wiring.STREAM.name,
        subjects=list(wiring.STREAM.subjects),
        storage=StorageType.FILE,
        duplicate_window=wiring.STREAM.duplicate_window_s,
        declare=True,
    )


#: FastStream logs every message at INFO; only its warnings are worth keeping.
_faststream_log = logging.getLogger("calib.faststream")
_faststream_log.setLevel(logging.WARNING)


def make_broker(config: Config) -> NatsBroker:
    return NatsBroker(
        config.nats_url,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=2,
        logger=_faststream_log,
    )


def durable_consumer(name: str, ack_wait_s: float = 30.0, max_deliver: int = -1) -> dict[str, Any]:
    """Keyword arguments for a durable pull subscriber shared by every replica of a service."""
    return {
        "stream": calibration_stream(),
        "durable": name,
        "pull_sub": PullSub(batch_size=1, timeout=1.0),
        "ack_policy": AckPolicy.MANUAL,
        "config": ConsumerConfig(
            ack_wait=ack_wait_s, max_deliver=max_deliver, deliver_policy=DeliverPolicy.ALL
        ),
    }


async def publish(
    broker: NatsBroker, kind: str, body: msgspec.Struct, *, observatory_id: str, msg_id: str | None
) -> None:
    """Publish an event to the stream (``msg_id`` makes a repeat publish a no-op)."""
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    await broker.publish(
        msgspec.json.encode(body),
        events.subject(kind, observatory_id),
        headers=headers,
        stream=wiring.STREAM.name,
    )


async def publish_transient(
    broker: NatsBroker, kind: str, body: msgspec.Struct, *, observatory_id: str
) -> None:
    """Core NATS publish, not persisted (live progress)."""
    await broker.publish(msgspec.json.encode(body), events.subject(kind, observatory_id))


class BusPublisher:
    """The :class:`calib_app.ports.EventPublisher` over a FastStream NATS broker."""

    def __init__(self, broker: NatsBroker):
        self.broker = broker

    async def publish(
        self, kind: str, body: msgspec.Struct, *, observatory_id: str, msg_id: str | None
    ) -> None:
        await publish(self.broker, kind, body, observatory_id=observatory_id, msg_id=msg_id)

    async def publish_transient(
        self, kind: str, body: msgspec.Struct, *, observatory_id: str
    ) -> None:
        await publish_transient(self.broker, kind, body, observatory_id=observatory_id)


async def ensure_stream(broker: NatsBroker) -> None:
    """Create (or update) the CALIBRATION stream: file storage, a day of de-duplication."""
    stream = StreamConfig(
        name=wiring.STREAM.name,
        subjects=list(wiring.STREAM.subjects),
        storage=StorageType.FILE,
        duplicate_window=wiring.STREAM.duplicate_window_s,
    )
    js = broker.connection.jetstream()
    try:
        await js.add_stream(stream)
    except BadRequestError:
        await js.update_stream(stream)


async def start_with_retry(broker: NatsBroker, log: Any) -> None:
    """Start the broker, waiting for NATS to come up instead of crashing."""

    async def start() -> None:
        await broker.start()
        await ensure_stream(broker)

    await until_it_works(start, log, "nats", on_failure=broker.stop)
