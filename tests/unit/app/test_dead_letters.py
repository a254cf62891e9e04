"""SPEC §12 poison messages, over the fakes: what a consumer records of a message it
cannot handle (calib_app.dead_letters), and the administrators' list and replay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from nats.errors import ConnectionClosedError

from calib_app import dead_letters as office
from calib_app.dead_letters import Received
from calib_app.errors import NotFoundError
from calib_core.deadletters import DeadLetterStatus
from tests.unit.app.fakes import FakeWorld
from tests.unit.app.library_world import dead_letter_office_of

SUBJECT = "frame.registered.obs-1"


def received(n: int = 1, delivered: int = 1, consumer: str = "registry") -> Received:
    body = f'{{"event_id": "e{n}", "observatory_id": "obs-1"}}'.encode()
    return Received(consumer, SUBJECT, body, delivered, stream_sequence=n, stored_at=None)


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


async def test_failures_are_counted_then_the_message_is_a_dead_letter(world):
    bundle = dead_letter_office_of(world, max_deliveries=3)
    message = received()
    delays = []
    for attempt in range(3):
        delays.append(await office.failed(bundle, message, ConnectionError(f"away {attempt}")))
        world.clock.advance(seconds=5)
    assert delays == [1.0, 2.0, None]
    letter = await world.dead_letters.get(message.letter_id)
    assert letter.status == DeadLetterStatus.DEAD and letter.attempts == 3
    assert letter.error == "ConnectionError: away 2"  # the last one
    assert letter.last_seen - letter.first_seen == timedelta(seconds=10)
    assert (letter.subject, letter.body, letter.consumer) == (SUBJECT, message.body, "registry")
    assert letter.observatory_id == "obs-1" and letter.stream_sequence == 1
    assert await office.waiting(bundle) == 1


async def test_each_consumer_counts_its_own_failures_of_a_message(world):
    bundle = dead_letter_office_of(world, max_deliveries=2)
    assert await office.failed(bundle, received(consumer="lifecycle-a"), "boom") == 1.0
    assert await office.failed(bundle, received(consumer="lifecycle-b"), "boom") == 1.0
    assert await office.failed(bundle, received(consumer="lifecycle-a"), "boom") is None
    assert [letter.consumer for letter in await office.dead_letters(bundle)] == ["lifecycle-a"]


async def test_a_failure_that_cannot_be_counted_backs_off_by_the_delivery_count(world):
    bundle = dead_letter_office_of(world, max_deliveries=1)

    async def away(letter):
        raise ConnectionError("MongoDB is away")

    world.dead_letters.count_failure = away
    assert await office.failed(bundle, received(delivered=4), "boom") == 8.0
    outcomes = await office.failed_many(bundle, [(received(n), "boom") for n in range(1, 4)])
    assert outcomes == [1.0, 1.0, 1.0]
    assert await world.dead_letters.count(list(DeadLetterStatus)) == 0


async def test_a_batch_of_failures_is_counted_each_on_its_own(world):
    bundle = dead_letter_office_of(world, max_deliveries=2)
    await office.failed(bundle, received(2), "first")
    outcomes = await office.failed_many(bundle, [(received(n), "boom") for n in range(1, 4)])
    assert outcomes == [1.0, None, 1.0]


async def test_a_permanent_failure_is_recorded_once_dead(world):
    bundle = dead_letter_office_of(world)
    message = received()
    await office.rejected(bundle, message, "invalid event: not JSON")
    await office.rejected(bundle, message, "invalid event: not JSON")  # redelivered: once
    [letter] = await office.dead_letters(bundle)
    assert letter.permanent and letter.attempts == 1 and letter.status == DeadLetterStatus.DEAD
    assert letter.error == "invalid event: not JSON"


async def test_messages_that_got_through_leave_no_count_but_dead_letters_stay(world):
    bundle = dead_letter_office_of(world, max_deliveries=2)
    flaky, dead, first = received(1, delivered=2), received(2, delivered=3), received(3)
    await office.failed(bundle, flaky, "boom")
    await office.failed(bundle, dead, "boom")
    await office.failed(bundle, dead, "boom")
    await office.got_through(bundle, [flaky, dead, first])
    assert await world.dead_letters.get(flaky.letter_id) is None
    assert (await world.dead_letters.get(dead.letter_id)).status == DeadLetterStatus.DEAD


async def test_the_list_shows_dead_and_replayed_letters_newest_first(world):
    bundle = dead_letter_office_of(world, max_deliveries=1)
    for n in (1, 2, 3):
        await office.failed(bundle, received(n), f"boom {n}")
        world.clock.advance(seconds=1)
    await office.replay(bundle, received(2).letter_id)
    await office.failed(dead_letter_office_of(world, max_deliveries=5), received(4), "again")

    listed = await office.dead_letters(bundle)
    assert [letter.stream_sequence for letter in listed] == [3, 2, 1]
    assert [letter.status for letter in listed] == ["dead", "replayed", "dead"]
    retrying = await office.dead_letters(bundle, DeadLetterStatus.RETRYING)
    assert [letter.stream_sequence for letter in retrying] == [4]
    assert await office.waiting(bundle) == 2
    assert len(await office.dead_letters(bundle, limit=1)) == 1


async def test_a_replay_republishes_the_message_as_it_was_under_a_new_id(world):
    bundle = dead_letter_office_of(world, max_deliveries=1)
    message = received()
    await office.failed(bundle, message, "boom")

    world.clock.advance(minutes=3)
    replayed = await office.replay(bundle, message.letter_id)
    again = await office.replay(bundle, message.letter_id)

    published = world.replays.published
    assert [(m.subject, m.body) for m in published] == [(SUBJECT, message.body)] * 2
    assert published[0].msg_id != published[1].msg_id
    assert replayed.status == DeadLetterStatus.REPLAYED and replayed.replays == 1
    assert replayed.replayed_at == world.now() and replayed.replay_msg_id == published[0].msg_id
    assert again.replays == 2 and again.replay_msg_id == published[1].msg_id
    assert await office.waiting(bundle) == 0
    assert world.log.find("dead letter replayed")


async def test_only_dead_letters_are_replayed(world):
    bundle = dead_letter_office_of(world, max_deliveries=5)
    await office.failed(bundle, received(), "boom")  # retrying: not a dead letter yet
    for unknown in ("nothing", received().letter_id):
        with pytest.raises(NotFoundError, match="dead letter"):
            await office.replay(bundle, unknown)
    assert world.replays.published == []


async def test_a_replay_that_cannot_be_published_leaves_the_letter_dead(world):
    bundle = dead_letter_office_of(world, max_deliveries=1)
    await office.failed(bundle, received(), "boom")
    world.replays.down = True
    with pytest.raises(ConnectionClosedError):
        await office.replay(bundle, received().letter_id)
    assert (await world.dead_letters.get(received().letter_id)).status == DeadLetterStatus.DEAD
