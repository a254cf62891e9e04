"""Batched consumption of a durable JetStream pull consumer, for high-volume subjects.

``Runtime.consume`` hands over one message at a time; a service that ingests thousands
of small events (the registry) takes them in batches instead, so one database round
trip serves many events. The contract is the same: a message is acknowledged only
after its work is durable, a failed one is handed back for redelivery, in-progress
acks keep a long batch ours, and a process that dies mid-batch lets every
unacknowledged message go to another replica (or to itself, restarted).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import nats.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from calib_app.ports import Delivery
from calib_core import wiring
from calib_infra.retry import until_it_works

if TYPE_CHECKING:
    from calib_infra.runtime import Runtime


#: Handles a batch; returns, per delivery, True when its work is durable (acknowledge)
#: or False to hand it back for redelivery. Raising hands back the whole batch.
BatchHandler = Callable[[Sequence[Delivery]], Awaitable[list[bool]]]


async def consume_batches(
    runtime: Runtime,
    consumer: wiring.Consumer,
    handler: BatchHandler,
    *,
    batch_size: int = 128,
    in_flight: int = 2,
    retry_delay_s: float = 2.0,
) -> None:
    """Run ``handler`` over batches from the durable ``consumer`` (shared by every
    replica) until cancelled, ``in_flight`` batches at a time (so one batch's database
    writes overlap the next one's reads)."""
    durable, ack_wait_s = consumer.durable, consumer.ack_wait_s
    await _ensure_consumer(runtime, consumer.subject, durable, ack_wait_s)
    async with asyncio.TaskGroup() as loops:
        for _ in range(in_flight):
            loops.create_task(
                _fetch_loop(runtime, durable, handler, batch_size, ack_wait_s, retry_delay_s)
            )


async def _fetch_loop(
    runtime: Runtime,
    durable: str,
    handler: BatchHandler,
    batch_size: int,
    ack_wait_s: float,
    retry_delay_s: float,
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
            await _handle(runtime, messages, handler, ack_wait_s, retry_delay_s)
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
        max_deliver=-1,
        deliver_policy=DeliverPolicy.ALL,
    )
    await until_it_works(
        lambda: js.add_consumer(wiring.STREAM.name, config), runtime.log, f"consumer {durable}"
    )


async def _handle(
    runtime: Runtime,
    messages: list[Msg],
    handler: BatchHandler,
    ack_wait_s: float,
    retry_delay_s: float,
) -> None:
    keepalive = asyncio.create_task(_keep_in_progress(messages, ack_wait_s / 3))
    try:
        outcomes = await handler([Delivery(m.subject, m.data) for m in messages])
    except asyncio.CancelledError:
        # stopping: hand the batch straight back rather than after the ack wait
        await asyncio.shield(_settle(messages, [False] * len(messages), 0.0))
        raise
    except Exception as error:  # noqa: BLE001 - redelivered, never lost
        runtime.log.exception(
            "batch handling failed, will retry", messages=len(messages), error=str(error)
        )
        outcomes = [False] * len(messages)
    finally:
        keepalive.cancel()
    await _settle(messages, outcomes, retry_delay_s)


async def _settle(messages: list[Msg], outcomes: list[bool], retry_delay_s: float) -> None:
    for message, done in zip(messages, outcomes, strict=True):
        # a lost ack or nak only means a redelivery, which the handler takes in its stride
        with contextlib.suppress(Exception):
            if done:
                await message.ack()
            else:
                await message.nak(delay=retry_delay_s or None)


async def _keep_in_progress(messages: list[Msg], interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        for message in messages:
            with contextlib.suppress(Exception):
                await message.in_progress()
