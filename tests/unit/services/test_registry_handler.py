"""The registry's batch consumer (calib_infra.batches) handing ``frame.registered``
messages to the registration use case over the fakes, and how each message is settled.
The batch consumer pulls with nats-py directly (FastStream's TestNatsBroker does not
reach it), so its messages are stand-ins with the same settling methods."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace

import msgspec
import pytest

from calib_app.registration import register_batch
from calib_core import events
from calib_infra import batches
from tests.integration.registry_helpers import frame_bytes
from tests.unit.app.fakes import FakeWorld
from tests.unit.app.library_world import observatory
from tests.unit.app.test_registration import registration_of, upload
from tests.unit.core.factories import OBS


@dataclass
class Message:
    """What the batch consumer uses of a ``nats.aio.msg.Msg``."""

    subject: str
    data: bytes
    settled: list[tuple[str, float | None]] = field(default_factory=list)

    async def ack(self) -> None:
        self.settled.append(("ack", None))

    async def nak(self, delay: float | None = None) -> None:
        self.settled.append(("nak", delay))

    async def in_progress(self) -> None:
        self.settled.append(("in progress", None))


def message(event: events.FrameRegistered) -> Message:
    return Message(f"frame.registered.{event.observatory_id}", msgspec.json.encode(event))


async def handle(world: FakeWorld, messages: list[Message], ack_wait_s: float = 30.0) -> None:
    """One batch through the consumer, bound to the use case as the registry binds it."""
    registration = registration_of(world)
    await batches._handle(  # noqa: SLF001 - the consumer's settling of one batch
        SimpleNamespace(log=world.log),
        messages,
        lambda batch: register_batch(registration, batch),
        ack_wait_s,
        retry_delay_s=2.0,
    )


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


async def test_registered_and_rejected_messages_are_acknowledged(world):
    await observatory(world)
    good = events.FrameRegistered(
        event_id="e1", observatory_id=OBS, storage_key=await upload(world, frame_bytes("dark"))
    )
    missing = events.FrameRegistered(event_id="e2", observatory_id=OBS, storage_key="nowhere")
    undecodable = Message(f"frame.registered.{OBS}", b"{")
    batch = [message(good), message(missing), undecodable]

    await handle(world, batch)

    assert [m.settled for m in batch] == [[("ack", None)]] * 3
    assert len(await world.frames.unclaimed_calibration_frames(OBS)) == 1
    assert len(await world.rejections.list(OBS)) == 2


async def test_a_message_whose_dependency_failed_is_handed_back_with_a_delay(world):
    await observatory(world)
    key = await upload(world, frame_bytes("dark"))
    read_range = world.store.read_range

    async def away(storage_key, offset, length):
        if storage_key == "flaky":
            raise ConnectionError("S3 is away")
        return await read_range(storage_key, offset, length)

    world.store.read_range = away
    batch = [
        message(events.FrameRegistered(event_id="e1", observatory_id=OBS, storage_key=key)),
        message(events.FrameRegistered(event_id="e2", observatory_id=OBS, storage_key="flaky")),
    ]

    await handle(world, batch)

    assert [m.settled for m in batch] == [[("ack", None)], [("nak", 2.0)]]


async def test_a_batch_whose_store_failed_is_handed_back_whole(world):
    await observatory(world)
    key = await upload(world, frame_bytes("dark"))

    async def database_away(frames):
        raise ConnectionError("MongoDB is away")

    world.frames.insert_many = database_away
    batch = [
        message(events.FrameRegistered(event_id=f"e{i}", observatory_id=OBS, storage_key=key))
        for i in range(2)
    ]

    await handle(world, batch)

    assert [m.settled for m in batch] == [[("nak", 2.0)]] * 2
    assert world.log.find("batch handling failed, will retry", "exception")


async def test_a_long_batch_is_kept_in_progress(world):
    await observatory(world)
    key = await upload(world, frame_bytes("dark"))
    existing = world.observatories.existing

    async def slow(observatory_ids):
        await asyncio.sleep(0.05)
        return await existing(observatory_ids)

    world.observatories.existing = slow
    batch = [message(events.FrameRegistered(event_id="e", observatory_id=OBS, storage_key=key))]

    await handle(world, batch, ack_wait_s=0.03)

    assert batch[0].settled[0] == ("in progress", None) and batch[0].settled[-1] == ("ack", None)
