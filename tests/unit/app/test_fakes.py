"""What the contract test does not cover: every fake has its port's methods with the
port's signatures, and the bus, file cache, clock and log fakes behave as documented."""

from __future__ import annotations

import hashlib
import inspect
from datetime import datetime, timedelta

import pytest

from calib_app import ports
from calib_core import events
from calib_infra.filecache import UnusableFileError
from tests.unit.app import fakes
from tests.unit.core import factories as make

PORTS = {
    ports.FrameRepository: fakes.FakeFrameRepository,
    ports.JobRepository: fakes.FakeJobRepository,
    ports.SettingsRepository: fakes.FakeSettingsRepository,
    ports.ObservatoryRepository: fakes.FakeObservatoryRepository,
    ports.RejectionRepository: fakes.FakeRejectionRepository,
    ports.DeadLetterRepository: fakes.FakeDeadLetterRepository,
    ports.MessageReplayer: fakes.FakeMessageReplayer,
    ports.HeartbeatRepository: fakes.FakeHeartbeatRepository,
    ports.CalibrationCacheRepository: fakes.FakeCalibrationCacheRepository,
    ports.MaintenanceRunRepository: fakes.FakeMaintenanceRunRepository,
    ports.PendingUploadRepository: fakes.FakePendingUploadRepository,
    ports.EventBacklog: fakes.FakeEventBacklog,
    ports.ObjectStore: fakes.FakeObjectStore,
    ports.FrameFiles: fakes.FakeFrameFiles,
    ports.EventPublisher: fakes.FakeEventPublisher,
    ports.Clock: fakes.FakeClock,
    ports.Log: fakes.FakeLog,
    ports.LightCalibrator: fakes.FakeLightCalibrator,
    ports.MasterDescriber: fakes.FakeMasterDescriber,
    ports.AccountRepository: fakes.FakeAccountRepository,
    ports.LifecycleService: fakes.FakeLifecycleService,
    ports.WorkMetrics: fakes.FakeWorkMetrics,
}


def _kind(function) -> str:
    if inspect.isasyncgenfunction(function):
        return "async iterator"
    if inspect.iscoroutinefunction(function):
        return "coroutine"
    return "plain"


@pytest.mark.parametrize("port", list(PORTS), ids=lambda p: p.__name__)
def test_each_fake_has_its_ports_methods_and_signatures(port):
    fake = PORTS[port]
    for name, method in vars(port).items():
        if name.startswith("_") or not inspect.isfunction(method):
            continue
        implementation = getattr(fake, name)
        expected, actual = inspect.signature(method), inspect.signature(implementation)
        assert list(actual.parameters.items()) == list(expected.parameters.items()), name
        port_kind = _kind(method)
        if port_kind == "plain" and "AsyncIterator" in str(expected.return_annotation):
            port_kind = "async iterator"  # a Protocol spells an async generator this way
        if name == "workdir":
            port_kind = "plain"  # a context manager
        assert _kind(implementation) == port_kind, name


async def test_the_publisher_drops_a_repeat_msg_id_within_the_duplicate_window():
    world = fakes.FakeWorld()
    body = events.MasterCreated(master_id="m1", observatory_id="obs-1", job_id="j1")
    publish = world.events.publish
    await publish(events.MASTER_CREATED, body, observatory_id="obs-1", msg_id="created-m1")
    await publish(events.MASTER_CREATED, body, observatory_id="obs-1", msg_id="created-m1")
    await publish(events.MASTER_CREATED, body, observatory_id="obs-1", msg_id=None)
    await publish(events.MASTER_CREATED, body, observatory_id="obs-1", msg_id=None)
    assert len(world.events.published) == 3 and len(world.events.duplicates) == 1
    world.clock.advance(days=1)  # the window has passed: the stream takes it again
    await publish(events.MASTER_CREATED, body, observatory_id="obs-1", msg_id="created-m1")
    assert len(world.events.published) == 4

    message = world.events.published[0]
    assert message.subject == "master.created.obs-1"
    assert message.body == body and message.body is not body
    assert world.events.bodies(events.MASTER_CREATED) == [body] * 4

    with pytest.raises(ValueError, match="invalid observatory id"):
        await publish(events.MASTER_CREATED, body, observatory_id="Obs 1", msg_id=None)
    with pytest.raises(ValueError, match="no stream"):
        await publish(events.STACK_PROGRESS, body, observatory_id="obs-1", msg_id=None)
    await world.events.publish_transient(events.STACK_PROGRESS, body, observatory_id="obs-1")
    assert [m.subject for m in world.events.transient] == ["stack.progress.obs-1"]
    assert len(world.events.published) == 4


async def test_frame_files_copy_checked_bytes_from_the_store(tmp_path):
    world = fakes.FakeWorld()
    content = b"SIMPLE  =                    T" * 10
    frame = make.frame(sha256=hashlib.sha256(content).hexdigest())
    await world.store.put_bytes(frame.storage_key, content)
    with world.files.workdir("job-") as work:
        assert await world.files.fetch_frame(frame, work / "a.fits", "source frame") is False
        assert (work / "a.fits").read_bytes() == content
    assert not work.exists()
    assert [f.frame_id for f in world.files.fetches] == [frame.id]

    await world.store.put_bytes(frame.storage_key, b"overwritten")
    with pytest.raises(UnusableFileError, match=f"source frame {frame.id}: .* changed in storage"):
        await world.files.fetch_frame(frame, tmp_path / "b.fits", "source frame")
    assert not (tmp_path / "b.fits").exists()
    await world.store.delete(frame.storage_key)
    with pytest.raises(UnusableFileError, match="is missing from storage"):
        await world.files.fetch_frame(frame, tmp_path / "b.fits", "master dark")


async def test_the_world_shares_one_clock():
    world = fakes.FakeWorld()
    assert world.now() == fakes.DEFAULT_NOW
    await world.store.put_bytes("a", b"1")
    world.clock.advance(timedelta(hours=1), minutes=30)
    await world.store.put_bytes("b", b"2")
    stats = [await world.store.stat(k) for k in ("a", "b")]
    assert [s.modified for s in stats] == [
        fakes.DEFAULT_NOW,
        fakes.DEFAULT_NOW + timedelta(hours=1, minutes=30),
    ]
    world.clock.set(fakes.DEFAULT_NOW - timedelta(days=1))
    assert world.now() == fakes.DEFAULT_NOW - timedelta(days=1)
    with pytest.raises(ValueError, match="UTC-aware"):
        world.clock.set(datetime(2024, 1, 1))


def test_the_log_keeps_events_with_bound_fields():
    log = fakes.FakeLog()
    bound = log.bind(job_id="j1")
    bound.info("job claimed", worker="w1")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("job failed")
    assert log.events() == ["job claimed", "job failed"]
    assert log.find("job claimed")[0].fields == {"job_id": "j1", "worker": "w1"}
    assert str(log.find("job failed", level="exception")[0].exception) == "boom"
