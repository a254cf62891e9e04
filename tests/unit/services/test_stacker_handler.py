"""The stacker's subscriber (calib_stacker.main.subscribe) under FastStream's
TestNatsBroker: what a ``stack.requested`` message does, and how it is settled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import msgspec
import pytest
from faststream.nats import TestNatsBroker
from faststream.nats.testing import PatchedMessage

from calib_core import events
from calib_core.models import JobStatus
from calib_infra.config import Config
from calib_infra.runtime import Runtime
from calib_stacker.main import subscribe
from tests.unit.app.fakes import FakeLog, FakeWorld
from tests.unit.app.test_stacking import queue, stacking_of, store_darks
from tests.unit.core.factories import OBS

SUBJECT = f"{events.STACK_REQUESTED}.{OBS}"


@dataclass
class Settlements:
    """How each message was settled: acknowledged, or handed back after a delay."""

    acks: int = 0
    naks: list[float | None] = field(default_factory=list)


@pytest.fixture
def settlements(monkeypatch) -> Settlements:
    settled = Settlements()

    async def ack(self) -> None:
        settled.acks += 1

    async def nak(self, delay: float | None = None) -> None:
        settled.naks.append(delay)

    monkeypatch.setattr(PatchedMessage, "ack", ack)
    monkeypatch.setattr(PatchedMessage, "nak", nak)
    return settled


@pytest.fixture
async def stacker() -> AsyncIterator[tuple[FakeWorld, TestNatsBroker]]:
    """The stacker's subscriber bound to the stacking use case over the fakes."""
    world = FakeWorld()
    runtime = Runtime("stacker", Config(service_instance="stacker-test"))
    runtime.log = FakeLog(world.log.records)  # the runtime's own log lines, kept
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


async def test_an_undecodable_request_is_logged_and_acknowledged(stacker, settlements):
    """No redelivery would make it valid: acknowledged, not retried forever."""
    world, broker = stacker
    await broker.publish(b'{"job": "x"', SUBJECT)
    await broker.publish(b'{"job_id": 7}', SUBJECT)  # JSON, but not a stack request
    assert (settlements.acks, settlements.naks) == (2, [])
    logged = world.log.find("invalid event ignored", level="error")
    assert [r.fields["subject"] for r in logged] == [SUBJECT, SUBJECT]
    assert world.events.published == [] and world.events.transient == []
