"""The :class:`calib_app.ports.EventBacklog` over JetStream: the ``frame.registered``
events the registry has not handled yet, read from the stream.

The registry's durable consumer knows how far it got: every message up to its *ack
floor* is handled (acknowledged, or terminated as a rejection), and nothing past it is
known to be. So the unhandled events are the stream's ``frame.registered`` messages after
the ack floor (a few handled out of order may be among them: that only keeps more). They
are read with ``STREAM.MSG.GET`` (next message of the subject from a sequence), which
creates nothing on the server. A consumer with nothing pending and nothing awaiting an
ack has no backlog at all, which is the usual case and costs one request.

A registration the registry gave up on is a *dead letter* (SPEC §12): terminated on the
stream, so past the ack floor, but waiting for an administrator to replay it. Those
(status ``dead``, in ``dead_letters``) are unhandled too. They are read after the stream:
a letter is recorded before its message is terminated, so a message that becomes a dead
letter in between is seen in one or the other.
"""

from __future__ import annotations

from typing import Any

import msgspec
from faststream.exceptions import IncorrectState
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from calib_core import events, wiring
from calib_core.deadletters import DeadLetterStatus

#: At most this many unhandled registrations are read at once; a longer backlog counts as
#: unknown (the orphan cleanup then keeps everything under ``frames/`` until it shrinks).
READ_LIMIT = 10_000


class _Announced(msgspec.Struct):
    storage_key: str | None = None


def _storage_key(body: bytes | None) -> str | None:
    try:
        return msgspec.json.decode(body or b"", type=_Announced).storage_key or None
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # a body the registry rejects: it names nothing usable


class StreamBacklog:
    def __init__(
        self,
        broker: NatsBroker,
        log: Any,
        *,
        dead_letters: AsyncCollection | None = None,
        consumer: wiring.Consumer = wiring.REGISTRY,
        stream: str = wiring.STREAM.name,
        limit: int = READ_LIMIT,
    ):
        self.broker = broker
        self.log = log
        self.dead_letters = dead_letters
        self.consumer = consumer
        self.stream = stream
        self.limit = limit

    async def unhandled_storage_keys(self, observatory_id: str | None) -> set[str] | None:
        try:
            connection = self.broker.connection
        except IncorrectState:  # not connected yet, or stopped
            return None
        if connection is None or not connection.is_connected:
            return None
        try:
            on_stream = await self._read(connection.jetstream(), observatory_id)
        except (NatsError, TimeoutError) as error:
            self.log.warning(
                "unhandled registrations cannot be read",
                error=f"{type(error).__name__}: {error}",
            )
            return None
        if on_stream is None or self.dead_letters is None:
            return on_stream
        try:
            dead = await self._dead(observatory_id)
        except PyMongoError as error:
            self.log.warning(
                "dead registrations cannot be read", error=f"{type(error).__name__}: {error}"
            )
            return None
        return None if dead is None else on_stream | dead

    async def _dead(self, observatory_id: str | None) -> set[str] | None:
        """The keys named by the registry's dead letters (None: more than one reading)."""
        query: dict[str, Any] = {
            "consumer": self.consumer.durable,
            "status": DeadLetterStatus.DEAD.value,
        }
        if observatory_id is not None:
            query["observatory_id"] = observatory_id
        keys: set[str] = set()
        read = 0
        async for document in self.dead_letters.find(query, {"body": 1}).limit(self.limit + 1):
            read += 1
            if read > self.limit:
                return None
            if key := _storage_key(document.get("body")):
                keys.add(key)
        return keys

    async def _read(self, js: Any, observatory_id: str | None) -> set[str] | None:
        try:
            info = await js.consumer_info(self.stream, self.consumer.durable)
        except NotFoundError:
            start = 1  # never bound yet: it will deliver the whole stream (DeliverPolicy.ALL)
        else:
            backlog = (info.num_pending or 0) + (info.num_ack_pending or 0)
            if backlog == 0:
                return set()
            if backlog > self.limit:
                return None
            start = (info.ack_floor.stream_seq if info.ack_floor else 0) + 1
        subject = events.FRAME_REGISTERED + (f".{observatory_id}" if observatory_id else ".*")
        keys: set[str] = set()
        sequence = start
        for _ in range(self.limit):
            try:
                message = await js.get_msg(self.stream, seq=sequence, subject=subject, next=True)
            except NotFoundError:  # no further message of the subject (or no stream yet)
                return keys
            if key := _storage_key(message.data):
                keys.add(key)
            sequence = message.seq + 1
        return None
