"""Batched consumption of a durable JetStream pull consumer, for high-volume subjects.

``Runtime.consume`` hands over one message at a time; a service that ingests thousands
of small events (the registry) takes them in batches instead, so one database round
trip serves many events. The contract is the same: a message is acknowledged only
after its work is durable, in-progress acks keep a long batch ours, and a process that
dies mid-batch lets every unacknowledged message go to another replica (or to itself,
restarted). A message that fails is settled as SPEC §12 says
(:mod:`calib_app.dead_letters`): handed back after a backoff, and after
``CALIB_MAX_DELIVERIES`` failures recorded as a dead letter and terminated. One bad
message never holds up the rest of its batch: when the handler fails the whole batch,
each of its messages is handled again alone, so only the bad one fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from calib_app.dead_letters import Received, failed_many, got_through
from calib_app.ports import Delivery
from calib_core import wiring
from calib_infra import metrics
from calib_infra.bus import MAX_DELIVER
from calib_infra.deliveries import received
from calib_infra.retry import until_it_works

if TYPE_CHECKING:
    from calib_infra.runtime import Runtime


#: Handles a batch; returns, per delivery, True when its work is durable (acknowledge),
#: else why not: an exception (or False) hands it back for redelivery. Raising fails the
#: batch: each of its messages is then handled alone.
BatchHandler = Callable[[Sequence[Delivery]], Awaitable[list[bool | BaseException]]]

#: Messages of a failed batch handled again at once, each alone.
ALONE_CONCURRENCY = 32

#: How a message is settled: ("ack", None), ("nak", delay) or ("term", None).
Settlement = tuple[str, float | None]


async def consume_batches(
    runtime: Runtime,
    consumer: wiring.Consumer,
    handler: BatchHandler,
    *,
    batch_size: int = 128,
    in_flight: int = 2,
) -> None:
    """Run ``handler`` over batches from the durable ``consumer`` (shared by every
    replica) until cancelled, ``in_flight`` batches at a time (so one batch's database
    writes overlap the next one's reads)."""
    durable, ack_wait_s = consumer.durable, consumer.ack_wait_s
    await _ensure_consumer(runtime, consumer.subject, durable, ack_wait_s)
    async with asyncio.TaskGroup() as loops:
        for _ in range(in_flight):
            loops.create_task(_fetch_loop(runtime, durable, handler, batch_size, ack_wait_s))


async def _fetch_loop(
    runtime: Runtime, durable: str, handler: BatchHandler, batch_size: int, ack_wait_s: float
) -> None:
    subscription = await runtime.broker.connection.jetstream().pull_subscribe_bind(
        durable=durable, stream=wiring.STREAM.name
    )
    try:
        while True:
            try:
                messages = await subscription.fetch(batch_size, timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            except Exception as error:  # noqa: BLE001 - NATS away or restarting: fetch again
                runtime.log.warning("fetch failed, retrying", durable=durable, error=str(error))
                await asyncio.sleep(1.0)
                continue
            await _handle(runtime, durable, messages, handler, ack_wait_s)
    finally:
        # an open pull subscription would hold up the connection's drain on shutdown
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()


async def _ensure_consumer(runtime: Runtime, subject: str, durable: str, ack_wait_s: float) -> None:
    """Create (or update) the durable pull consumer, waiting for NATS."""
    js = runtime.broker.connection.jetstream()
    config = ConsumerConfig(
        name=durable,
        durable_name=durable,
        filter_subject=subject,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_deliver=MAX_DELIVER,  # failures are counted by the consumer (calib_infra.bus)
        deliver_policy=DeliverPolicy.ALL,
    )
    await until_it_works(
        lambda: js.add_consumer(wiring.STREAM.name, config), runtime.log, f"consumer {durable}"
    )


async def _handle(
    runtime: Runtime,
    durable: str,
    messages: list[Msg],
    handler: BatchHandler,
    ack_wait_s: float,
) -> None:
    """Handle one batch and settle each of its messages."""
    keepalive = asyncio.create_task(_keep_in_progress(messages, ack_wait_s / 3))
    batch = [received(durable, m) for m in messages]
    try:
        outcomes = await _outcomes(runtime, handler, batch)
        settlements = await _settlements(runtime, batch, outcomes)
    except asyncio.CancelledError:
        # stopping: hand the batch straight back rather than after the ack wait
        await asyncio.shield(_settle(messages, [("nak", None)] * len(messages)))
        raise
    finally:
        keepalive.cancel()
    await _settle(messages, settlements)
    _count(durable, batch, settlements)
    await got_through(
        runtime.dead_letter_office, [m for m, o in zip(batch, outcomes, strict=True) if o is True]
    )


async def _outcomes(
    runtime: Runtime, handler: BatchHandler, batch: list[Received]
) -> list[bool | BaseException]:
    """The handler's outcome for each message: of the whole batch, or, when it fails the
    whole batch, of each message handled alone (a few at a time)."""
    try:
        return await handler([Delivery(m.subject, m.body) for m in batch])
    except Exception as error:  # noqa: BLE001 - a bad message fails only itself
        if len(batch) == 1:
            return [error]
        runtime.log.exception(
            "batch handling failed, handling each message alone",
            messages=len(batch),
            error=str(error),
        )
    slots = asyncio.Semaphore(ALONE_CONCURRENCY)

    async def alone(message: Received) -> bool | BaseException:
        async with slots:
            try:
                [outcome] = await handler([Delivery(message.subject, message.body)])
            except Exception as error:  # noqa: BLE001 - this message's failure
                return error
            return outcome

    return list(await asyncio.gather(*(alone(m) for m in batch)))


async def _settlements(
    runtime: Runtime, batch: list[Received], outcomes: list[bool | BaseException]
) -> list[Settlement]:
    """Acknowledge what is done; count each failure (calib_app.dead_letters): handed back
    after its backoff, or terminated as a dead letter."""
    failures = [
        (message, "handed back by the handler" if outcome is False else outcome)
        for message, outcome in zip(batch, outcomes, strict=True)
        if outcome is not True
    ]
    delays = iter(await failed_many(runtime.dead_letter_office, failures) if failures else [])
    settlements: list[Settlement] = []
    for outcome in outcomes:
        if outcome is True:
            settlements.append(("ack", None))
        else:
            delay = next(delays)
            settlements.append(("term", None) if delay is None else ("nak", delay))
    return settlements


async def _settle(messages: list[Msg], settlements: list[Settlement]) -> None:
    for message, (how, delay) in zip(messages, settlements, strict=True):
        # a lost ack, nak or term only means a redelivery, which the handler takes in its
        # stride (and a dead letter is only counted again)
        with contextlib.suppress(Exception):
            if how == "ack":
                await message.ack()
            elif how == "term":
                await message.term()
            else:
                await message.nak(delay=delay)


def _count(durable: str, batch: list[Received], settlements: list[Settlement]) -> None:
    for message, (how, _) in zip(batch, settlements, strict=True):
        if how == "ack":
            metrics.handled(durable, message.subject)
        else:
            metrics.failed(durable, message.subject, dead=how == "term")


async def _keep_in_progress(messages: list[Msg], interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        for message in messages:
            with contextlib.suppress(Exception):
                await message.in_progress()
