"""The stacker's subscriber (calib_stacker.main.subscribe) under FastStream's
TestNatsBroker: what a ``stack.requested`` message does, and how it is settled
(acknowledged, handed back, or terminated as a dead letter: SPEC §12)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec
import pytest
from faststream.nats import TestNatsBroker
from faststream.nats.testing import PatchedMessage

from calib_core import events
from calib_core.deadletters import DeadLetterStatus
from calib_core.models import JobStatus
from calib_infra.config import Config
from calib_infra.runtime import Runtime
from calib_stacker.main import subscribe
from tests.unit.app.fakes import FakeLog, FakeWorld
from tests.unit.app.library_world import dead_letter_office_of
from tests.unit.app.test_stacking import queue, stacking_of, store_darks
from tests.unit.core.factories import OBS

SUBJECT = f"{events.STACK_REQUESTED}.{OBS}"
MAX_DELIVERIES = 3


@dataclass
class Settlements:
    """How each message was settled: acknowledged, handed back after a delay, or
    terminated."""

    acks: int = 0
    naks: list[float | None] = field(default_factory=list)
    terms: int = 0


@pytest.fixture
def settlements(monkeypatch) -> Settlements:
    settled = Settlements()

    async def ack(self) -> None:
        settled.acks += 1

    async def nak(self, delay: float | None = None) -> None:
        settled.naks.append(delay)

    async def term(self) -> None:
        settled.terms += 1

    monkeypatch.setattr(PatchedMessage, "ack", ack)
    monkeypatch.setattr(PatchedMessage, "nak", nak)
    monkeypatch.setattr(PatchedMessage, "term", term)
    return settled


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


@pytest.fixture
def runtime() -> Runtime:
    return Runtime("stacker", Config(service_instance="stacker-test"))


@pytest.fixture
async def stacker(world, runtime) -> AsyncIterator[tuple[FakeWorld, TestNatsBroker]]:
    """The stacker's subscriber bound to the stacking use case over the fakes."""
    runtime.log = FakeLog(world.log.records)  # the runtime's own log lines, kept
    runtime.dead_letter_office = dead_letter_office_of(world, MAX_DELIVERIES)
    subscribe(runtime, stacking_of(world))
    try:
        async with TestNatsBroker(runtime.broker) as broker:
            yield world, broker
    finally:
        await runtime.mongo.close()


def request(job_id: str) -> bytes:
    return msgspec.json.encode(events.StackRequested(job_id=job_id, observatory_id=OBS))


async def test_a_stack_request_runs_its_job_and_is_acknowledged(stacker, settlements):
    world, broker = stacker
    job = await queue(world, await store_darks(world, [60.0] * 3))
    await broker.publish(request(job.id), SUBJECT)
    done = await world.jobs.get(job.id)
    assert done.status == JobStatus.SUCCEEDED and done.worker == "stacker-test"
    assert world.events.kinds() == [events.MASTER_CREATED]
    assert (settlements.acks, settlements.naks) == (1, [])


async def test_a_request_for_a_job_another_replica_holds_is_handed_back(stacker, settlements):
    world, broker = stacker
    job = await queue(world, await store_darks(world, [60.0] * 3))
    await world.jobs.claim(job.id, "other-replica", world.now())
    await broker.publish(request(job.id), SUBJECT)
    assert settlements.acks == 0 and settlements.naks == [pytest.approx(30.5)]
    assert world.log.find("message handed back")[0].fields["subject"] == SUBJECT
    assert (await world.jobs.get(job.id)).worker == "other-replica"


async def test_a_request_fetched_once_the_replica_is_stopping_is_handed_back_unhandled(
    stacker, runtime, settlements
):
    """A stopping replica's own hand-back can be redelivered to it before its connection
    closes: it must go back again at once, never be claimed by the replica going away."""
    world, broker = stacker
    job = await queue(world, await store_darks(world, [60.0] * 3))
    await runtime.hand_back()
    await broker.publish(request(job.id), SUBJECT)
    assert (settlements.acks, settlements.naks, settlements.terms) == (0, [None], 0)
    untouched = await world.jobs.get(job.id)
    assert untouched.status == JobStatus.QUEUED and untouched.attempts == job.attempts


async def test_an_undecodable_request_is_recorded_and_terminated(stacker, settlements):
    """No redelivery would make it valid: recorded once as a permanent dead letter and
    terminated, never retried."""
    world, broker = stacker
    await broker.publish(b'{"job": "x"', SUBJECT)
    await broker.publish(b'{"job_id": 7}', SUBJECT)  # JSON, but not a stack request
    assert (settlements.acks, settlements.naks, settlements.terms) == (0, [], 2)
    logged = world.log.find("message rejected as a dead letter", level="error")
    assert [r.fields["subject"] for r in logged] == [SUBJECT, SUBJECT]
    letters = await world.dead_letters.list([DeadLetterStatus.DEAD])
    assert sorted(letter.body for letter in letters) == [b'{"job": "x"', b'{"job_id": 7}']
    assert all(letter.permanent and letter.attempts == 1 for letter in letters)
    assert all(letter.consumer == "stacker" for letter in letters)
    assert all(letter.error.startswith("invalid event: ") for letter in letters)
    assert world.events.published == [] and world.events.transient == []


async def test_an_undecodable_request_that_cannot_be_recorded_is_handed_back(stacker, settlements):
    world, broker = stacker

    async def database_away(letter):
        raise ConnectionError("MongoDB is away")

    world.dead_letters.record = database_away
    await broker.publish(b"{", SUBJECT)
    assert (settlements.acks, settlements.naks, settlements.terms) == (0, [1.0], 0)


async def test_a_request_that_keeps_failing_becomes_a_dead_letter(stacker, settlements):
    """Handed back after 1 s, then 2 s; the third failure (CALIB_MAX_DELIVERIES=3) makes
    it a dead letter, terminated."""
    world, broker = stacker
    job = await queue(world, await store_darks(world, [60.0] * 3))

    async def database_away(*args, **kwargs):
        raise ConnectionError("MongoDB is away")

    world.jobs.claim = database_away
    for _ in range(MAX_DELIVERIES):
        await broker.publish(request(job.id), SUBJECT)

    assert (settlements.acks, settlements.naks, settlements.terms) == (0, [1.0, 2.0], 1)
    [letter] = await world.dead_letters.list([DeadLetterStatus.DEAD])
    assert (letter.consumer, letter.subject, letter.body) == ("stacker", SUBJECT, request(job.id))
    assert letter.attempts == 3 and letter.error == "ConnectionError: MongoDB is away"


async def test_hand_backs_are_not_failures(stacker, settlements):
    """A request for a job another replica holds is handed back as often as it takes
    (RetryLater): never counted, never a dead letter."""
    world, broker = stacker
    job = await queue(world, await store_darks(world, [60.0] * 3))
    await world.jobs.claim(job.id, "other-replica", world.now())
    for _ in range(2 * MAX_DELIVERIES):
        await broker.publish(request(job.id), SUBJECT)
    assert settlements.terms == 0 and len(settlements.naks) == 2 * MAX_DELIVERIES
    assert await world.dead_letters.list(list(DeadLetterStatus)) == []
