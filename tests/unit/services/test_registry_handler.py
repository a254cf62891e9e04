"""The registry's batch consumer (calib_infra.batches) handing ``frame.registered``
messages to the registration use case over the fakes, and how each message is settled:
acknowledged, handed back after a backoff, or terminated as a dead letter (SPEC §12).
The batch consumer pulls with nats-py directly (FastStream's TestNatsBroker does not
reach it), so its messages are stand-ins with the same settling methods and metadata."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace

import msgspec
import pytest

from calib_app.registration import register_batch
from calib_core import events
from calib_core.deadletters import DeadLetterStatus
from calib_infra import batches
from tests.integration.registry_helpers import frame_bytes
from tests.unit.app.fakes import FakeWorld
from tests.unit.app.library_world import dead_letter_office_of, observatory
from tests.unit.app.test_registration import registration_of, upload
from tests.unit.core.factories import OBS

STORED_AT = datetime(2024, 6, 1, 11, 59, tzinfo=UTC)


@dataclass
class Message:
    """What the batch consumer uses of a ``nats.aio.msg.Msg``: its settling methods and
    JetStream metadata (``sequence``; None: a message without any, as a test broker's)."""

    subject: str
    data: bytes
    sequence: int | None = None
    delivered: int = 1
    settled: list[tuple[str, float | None]] = field(default_factory=list)

    @property
    def metadata(self) -> SimpleNamespace:
        if self.sequence is None:
            raise AttributeError("not a JetStream message")
        return SimpleNamespace(
            num_delivered=self.delivered,
            sequence=SimpleNamespace(stream=self.sequence, consumer=self.sequence),
            timestamp=STORED_AT,
        )

    async def ack(self) -> None:
        self.settled.append(("ack", None))

    async def nak(self, delay: float | None = None) -> None:
        self.settled.append(("nak", delay))
        self.delivered += 1

    async def term(self) -> None:
        self.settled.append(("term", None))

    async def in_progress(self) -> None:
        self.settled.append(("in progress", None))


def message(event: events.FrameRegistered, sequence: int | None = None) -> Message:
    return Message(f"frame.registered.{event.observatory_id}", msgspec.json.encode(event), sequence)


async def handle(
    world: FakeWorld, messages: list[Message], ack_wait_s: float = 30.0, max_deliveries: int = 10
) -> None:
    """One batch through the consumer, bound to the use case as the registry binds it."""
    registration = registration_of(world)
    await batches._handle(  # noqa: SLF001 - the consumer's settling of one batch
        SimpleNamespace(
            log=world.log, dead_letter_office=dead_letter_office_of(world, max_deliveries)
        ),
        "registry",
        messages,
        lambda batch: register_batch(registration, batch),
        ack_wait_s,
    )


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


async def test_registered_and_rejected_messages_are_acknowledged(world):
    await observatory(world)
    good = events.FrameRegistered(
        event_id="e1", observatory_id=OBS, storage_key=await upload(world, frame_bytes("dark"))
    )
    missing = events.FrameRegistered(
        event_id="e2", observatory_id=OBS, storage_key=f"frames/{OBS}/nowhere.fits"
    )
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
        if storage_key == f"frames/{OBS}/flaky.fits":
            raise ConnectionError("S3 is away")
        return await read_range(storage_key, offset, length)

    world.store.read_range = away
    batch = [
        message(events.FrameRegistered(event_id="e1", observatory_id=OBS, storage_key=key)),
        message(
            events.FrameRegistered(
                event_id="e2", observatory_id=OBS, storage_key=f"frames/{OBS}/flaky.fits"
            )
        ),
    ]

    await handle(world, batch)

    assert [m.settled for m in batch] == [[("ack", None)], [("nak", 1.0)]]


async def test_a_batch_whose_store_failed_is_handled_again_message_by_message(world):
    """The database refuses the batch's frames: each message is handled alone, and each
    (failing alone too) is handed back after its first backoff."""
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

    assert [m.settled for m in batch] == [[("nak", 1.0)]] * 2
    assert world.log.find("batch handling failed, handling each message alone", "exception")
    counted = await world.dead_letters.list([DeadLetterStatus.RETRYING])
    assert len(counted) == 2 and all("MongoDB is away" in c.error for c in counted)


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


# ---- poison messages (SPEC §12) ------------------------------------------------------------


def frame_event(storage_key: str, event_id: str) -> events.FrameRegistered:
    return events.FrameRegistered(event_id=event_id, observatory_id=OBS, storage_key=storage_key)


def s3_away_for(world: FakeWorld, broken: str) -> None:
    """S3 fails every read of the object ``broken`` (the others read as usual)."""
    read_range = world.store.read_range

    async def away(storage_key, offset, length):
        if storage_key == broken:
            raise ConnectionError("S3 is away")
        return await read_range(storage_key, offset, length)

    world.store.read_range = away


async def test_one_bad_message_does_not_hold_up_its_batch(world):
    """A frame the database refuses fails the batch's one round trip: the batch is handled
    again message by message, so its neighbours are stored and acknowledged now, and only
    the bad one is handed back."""
    await observatory(world)
    keys = [await upload(world, frame_bytes("dark", i)) for i in range(3)]
    insert_many = world.frames.insert_many

    async def refuse_the_poison(frames):
        if any(f.storage_key == keys[1] for f in frames):
            raise OverflowError("MongoDB can only handle up to 8-byte ints")
        return await insert_many(frames)

    world.frames.insert_many = refuse_the_poison
    batch = [message(frame_event(key, f"e{i}"), sequence=i + 1) for i, key in enumerate(keys)]

    await handle(world, batch)

    assert [m.settled for m in batch] == [[("ack", None)], [("nak", 1.0)], [("ack", None)]]
    stored = {f.storage_key for f in await world.frames.unclaimed_calibration_frames(OBS)}
    assert stored == {keys[0], keys[2]}


async def test_a_message_that_keeps_failing_becomes_a_dead_letter_after_the_bound(world):
    """Handed back after 1 s, then 2 s; its third failure (CALIB_MAX_DELIVERIES=3) records
    it as a dead letter and terminates it. Its batch neighbours are acknowledged."""
    await observatory(world)
    good, broken = [await upload(world, frame_bytes("dark", i)) for i in range(2)]
    s3_away_for(world, broken)
    poison = message(frame_event(broken, "poison"), sequence=7)

    for round_ in range(3):
        world.clock.advance(seconds=10)
        neighbour = message(frame_event(good, f"good-{round_}"), sequence=100 + round_)
        await handle(world, [neighbour, poison], max_deliveries=3)
        assert neighbour.settled == [("ack", None)]

    assert poison.settled == [("nak", 1.0), ("nak", 2.0), ("term", None)]
    [letter] = await world.dead_letters.list([DeadLetterStatus.DEAD])
    assert letter.status == DeadLetterStatus.DEAD and letter.attempts == 3
    assert (letter.consumer, letter.subject, letter.body) == (
        "registry",
        poison.subject,
        poison.data,
    )
    assert letter.observatory_id == OBS and letter.stream_sequence == 7 and not letter.permanent
    assert letter.error == "ConnectionError: S3 is away"
    assert (letter.last_seen - letter.first_seen).total_seconds() == 20
    assert await world.dead_letters.list([DeadLetterStatus.RETRYING]) == []
    assert world.log.find("message given up on: dead letter", "error")


async def test_a_message_that_gets_through_after_failures_leaves_no_count(world):
    await observatory(world)
    key = await upload(world, frame_bytes("dark"))
    read_range = world.store.read_range
    s3_away_for(world, key)
    flaky = message(frame_event(key, "flaky"), sequence=3)

    await handle(world, [flaky])
    assert len(await world.dead_letters.list([DeadLetterStatus.RETRYING])) == 1

    world.store.read_range = read_range  # S3 is back
    await handle(world, [flaky])

    assert flaky.settled == [("nak", 1.0), ("ack", None)]
    assert await world.dead_letters.list(list(DeadLetterStatus)) == []


async def test_a_failure_that_cannot_be_counted_is_retried_and_never_dead_lettered(world):
    """With the database away too, the backoff follows JetStream's delivery count, and
    the message is never given up on blind, however often it was delivered."""
    await observatory(world)
    key = await upload(world, frame_bytes("dark"))
    s3_away_for(world, key)

    async def database_away(letter):
        raise ConnectionError("MongoDB is away")

    world.dead_letters.count_failure = database_away
    tried = message(frame_event(key, "tried"), sequence=9)
    tried.delivered = 5

    await handle(world, [tried], max_deliveries=3)

    assert tried.settled == [("nak", 16.0)]
    assert world.log.find("message handling failed, will retry (failure not counted)", "warning")
