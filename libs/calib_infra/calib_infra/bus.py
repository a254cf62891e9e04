"""The NATS JetStream bus (FastStream): the CALIBRATION stream, publishing with
``Nats-Msg-Id`` de-duplication, and durable consumers."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import nats
import nats.aio.client
from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsBroker
from faststream.nats.schemas import PullSub
from faststream.security import SASLPlaintext
from nats.js.api import DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from calib_core import events, wiring
from calib_infra.config import Config
from calib_infra.retry import until_it_works


def stream_bounds(config: Config | None) -> dict[str, Any]:
    """The stream's bounds (SPEC §12) as ``CALIB_STREAM_MAX_AGE_DAYS`` and
    ``CALIB_STREAM_MAX_GB`` set them (0: none; without ``config``, the defaults of
    :data:`wiring.STREAM`), and its de-duplication window, which NATS wants within the age."""
    days = config.stream_max_age_days if config else wiring.STREAM.max_age_days
    gigabytes = config.stream_max_gb if config else wiring.STREAM.max_gb
    max_age_s, window_s = days * 86400.0, wiring.STREAM.duplicate_window_s
    return {
        "max_age": max_age_s,
        "max_bytes": int(gigabytes * 1024**3) or -1,
        "duplicate_window": min(window_s, max_age_s) if max_age_s else window_s,
    }


def stream_settings(config: Config | None) -> dict[str, Any]:
    """Everything a service sets on the stream: its bounds (:func:`stream_bounds`) and
    its replicas (``CALIB_STREAM_REPLICAS``; the durable consumers inherit them)."""
    return {**stream_bounds(config), "num_replicas": config.stream_replicas if config else 1}


def calibration_stream(config: Config) -> JStream:
    """The stream as a FastStream subscriber declares it (on start, updating the stream
    if it differs: the same settings as :func:`ensure_stream`'s)."""
    return JStream(
        name=wiring.STREAM.name,
        subjects=list(wiring.STREAM.subjects),
        storage=StorageType.FILE,
        declare=True,
        **stream_settings(config),
    )


#: FastStream logs every message at INFO; only its warnings are worth keeping.
_faststream_log = logging.getLogger("calib.faststream")
_faststream_log.setLevel(logging.WARNING)


def credentials(config: Config) -> dict[str, str]:
    """The connect options naming who this process is on the bus (SPEC §12: the server
    accepts no anonymous connection)."""
    if config.nats_token:
        return {"token": config.nats_token}
    if config.nats_user:
        return {"user": config.nats_user, "password": config.nats_password}
    return {}


def make_broker(config: Config) -> NatsBroker:
    identity: dict[str, Any] = {}
    if config.nats_token:
        identity["token"] = config.nats_token
    elif config.nats_user:
        identity["security"] = SASLPlaintext(config.nats_user, config.nats_password)
    return NatsBroker(
        config.nats_servers,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=2,
        logger=_faststream_log,
        **identity,
    )


async def connect(config: Config, **options: Any) -> nats.aio.client.Client:
    """A plain NATS connection as this process's bus user (to any server of the list)."""
    return await nats.connect(config.nats_servers, **credentials(config), **options)


#: A durable consumer's own bound on deliveries: none. The consumer counts a message's
#: failures itself (``calib_app.dead_letters``) and terminates it after
#: ``CALIB_MAX_DELIVERIES``: JetStream's count would include deliberate hand-backs
#: (``RetryLater``) and redeliveries after a lost acknowledgement, and a message over its
#: bound would stop silently, leaving no dead letter.
MAX_DELIVER = -1


def durable_consumer(name: str, config: Config, ack_wait_s: float = 30.0) -> dict[str, Any]:
    """Keyword arguments for a durable pull subscriber shared by every replica of a service."""
    return {
        "stream": calibration_stream(config),
        "durable": name,
        "pull_sub": PullSub(batch_size=1, timeout=1.0),
        "ack_policy": AckPolicy.MANUAL,
        "config": ConsumerConfig(
            ack_wait=ack_wait_s, max_deliver=MAX_DELIVER, deliver_policy=DeliverPolicy.ALL
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

    async def republish(self, subject: str, body: bytes, *, msg_id: str) -> None:
        """A message given back to the stream as it was (a dead letter's replay)."""
        await self.broker.publish(
            body, subject, headers={"Nats-Msg-Id": msg_id}, stream=wiring.STREAM.name
        )


async def ensure_stream(broker: NatsBroker, config: Config | None = None) -> None:
    """Create (or update) the CALIBRATION stream: file storage, a day of de-duplication,
    bounded in age and size and replicated as ``config`` says (:func:`stream_settings`).
    Without ``config`` (a tool, not a service) an existing stream is left as it is."""
    stream = StreamConfig(
        name=wiring.STREAM.name,
        subjects=list(wiring.STREAM.subjects),
        storage=StorageType.FILE,
        **stream_settings(config),
    )
    js = broker.connection.jetstream()
    try:
        await js.add_stream(stream)
    except BadRequestError:
        if config is not None:
            await js.update_stream(stream)


async def start_with_retry(broker: NatsBroker, log: Any, config: Config | None = None) -> None:
    """Start the broker, waiting for NATS to come up instead of crashing; the stream is
    then made as ``config`` says (:func:`ensure_stream`)."""

    async def start() -> None:
        await broker.start()
        await ensure_stream(broker, config)

    await until_it_works(start, log, "nats", on_failure=broker.stop)
