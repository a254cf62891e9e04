"""The expiry check, the retention cleanup and the scheduler's daily runs of them
(calib_app.maintenance) over the fakes."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from calib_app.calibration import plan_for, with_calibration
from calib_app.maintenance import (
    DailyMaintenance,
    Maintenance,
    expiry_check,
    retention_cleanup,
    run_due_tasks,
    run_maintenance,
)
from calib_core import events
from calib_core.lifecycle import ExpiryReport, MaintenanceTask, RetentionReport
from calib_core.models import FrameType, MasterStatus
from tests.unit.app.fakes import FakeWorld
from tests.unit.app.library_world import (
    cached_file,
    library_of,
    maintenance_of,
    observatory,
    stored,
)
from tests.unit.core import factories as make

DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


@pytest.fixture
def maintenance(world) -> Maintenance:
    return maintenance_of(world)


# ---- expiry -------------------------------------------------------------------------------


async def test_a_master_expires_just_past_its_max_age_once_and_stays_in_use(world, maintenance):
    await observatory(world)
    master = await stored(world, make.master(FrameType.DARK, created_at=world.now()))
    light = await stored(world, make.frame(FrameType.LIGHT))

    world.clock.set(master.created_at + 30 * DAY - MINUTE)
    report = await expiry_check(maintenance, make.OBS)
    assert (report.checked, report.expired, report.expiring_soon) == (1, 0, 1)
    assert (await world.frames.get(master.id)).status == MasterStatus.ACTIVE

    world.clock.set(master.created_at + 30 * DAY + MINUTE)
    assert (await expiry_check(maintenance, make.OBS)).expired == 1
    assert (await world.frames.get(master.id)).status == MasterStatus.EXPIRED
    assert (await expiry_check(maintenance, make.OBS)).expired == 0  # once only
    [expired] = world.events.published
    assert (expired.kind, expired.msg_id) == (events.MASTER_EXPIRED, f"expired-{master.id}")
    assert expired.body == events.MasterExpired(master_id=master.id, observatory_id=make.OBS)

    view = await with_calibration(library_of(world), light)
    assert view.calibration_masters == {"dark": master.id}  # an expired master is still used
    assert any(
        w.startswith(f"stale master: master dark {master.id}") for w in view.calibration_warnings
    )


async def test_calibrated_files_made_with_a_master_that_expires_are_invalidated(world, maintenance):
    await observatory(world)
    master = await stored(world, make.master(FrameType.DARK, created_at=world.now()))
    light = await stored(world, make.frame(FrameType.LIGHT))
    await cached_file(world, light, (await plan_for(library_of(world), light)).signature)

    world.clock.advance(30 * DAY + MINUTE)
    report = await expiry_check(maintenance, make.OBS)

    assert report.cache_entries_invalidated == 1
    assert await world.cache.get(light.id) is None
    [invalidated] = [m for m in world.events.published if m.kind == events.CACHE_INVALIDATED]
    assert invalidated.msg_id == f"cache-expired-{master.id}"


# ---- retention -----------------------------------------------------------------------------


async def test_frames_go_just_after_their_latest_master_is_past_the_retention(world, maintenance):
    await observatory(world)
    sources = [await stored(world, make.frame(FrameType.DARK)) for _ in range(3)]
    never_stacked = await stored(world, make.frame(FrameType.DARK))
    ids = [f.id for f in sources]
    first = await stored(
        world,
        make.master(
            FrameType.DARK,
            created_at=world.now() - DAY,
            components=ids[:2],
            status=MasterStatus.SUPERSEDED,
            superseded_at=world.now(),
        ),
    )
    second = await stored(
        world, make.master(FrameType.DARK, created_at=world.now(), components=ids)
    )

    world.clock.set(second.created_at + 30 * DAY - MINUTE)
    report = await retention_cleanup(maintenance, make.OBS)
    assert (report.frames_deleted, report.masters_deleted, report.orphans_deleted) == (0, 0, 0)

    world.clock.set(second.created_at + 30 * DAY + MINUTE)
    report = await retention_cleanup(maintenance, make.OBS)
    assert (report.frames_deleted, report.masters_deleted, report.orphans_deleted) == (3, 0, 0)
    assert await world.frames.many(ids) == []
    assert not any(f.storage_key in world.store for f in sources)
    assert (await world.frames.get(second.id)).components == []  # the master stays
    assert (await world.frames.get(first.id)).components == []
    assert await world.frames.get(never_stacked.id) is not None


async def test_superseded_masters_go_just_after_the_master_retention(world, maintenance):
    await observatory(world)
    superseded_at = world.now()
    old = await stored(
        world,
        make.master(
            FrameType.DARK,
            storage_key=f"masters/{make.OBS}/old.fits",
            preview_key=f"previews/{make.OBS}/old.png",
            status=MasterStatus.SUPERSEDED,
            superseded_at=superseded_at,
        ),
    )
    current = await stored(world, make.master(FrameType.DARK, created_at=world.now() - 400 * DAY))
    expired = await stored(world, make.master(FrameType.FLAT, status=MasterStatus.EXPIRED))

    world.clock.set(superseded_at + 180 * DAY - MINUTE)
    assert (await retention_cleanup(maintenance, make.OBS)).masters_deleted == 0
    world.clock.set(superseded_at + 180 * DAY + MINUTE)
    assert (await retention_cleanup(maintenance, make.OBS)).masters_deleted == 1

    assert await world.frames.get(old.id) is None
    assert old.storage_key not in world.store and old.preview_key not in world.store
    assert [f.id for f in await world.frames.many([current.id, expired.id])] == [
        current.id,
        expired.id,
    ]  # never superseded: kept, however old


async def test_a_cleanup_finishes_cut_short_deletions_and_deletes_orphans(world, maintenance):
    await observatory(world)
    light = await stored(world, make.frame(FrameType.LIGHT))
    await world.frames.mark_deleting(light.id)
    kept = await stored(world, make.frame(FrameType.LIGHT))
    await world.store.put_bytes(f"frames/{make.OBS}/never-announced.fits", b"orphan")
    world.clock.advance(DAY + MINUTE)

    report = await retention_cleanup(maintenance, make.OBS)

    assert (report.resumed_deletions, report.orphans_deleted) == (1, 1)
    assert sorted(world.store.objects) == [kept.storage_key]
    assert report.finished_at == world.now()


# ---- runs ----------------------------------------------------------------------------------


async def test_a_server_wide_run_covers_every_observatory_and_is_recorded(world, maintenance):
    for obs in ("obs-a", "obs-b"):
        await observatory(world, obs)
        await stored(
            world,
            make.master(FrameType.DARK, observatory_id=obs, created_at=world.now() - 31 * DAY),
        )

    report = await run_maintenance(maintenance, MaintenanceTask.EXPIRY_CHECK, None)

    assert (report.observatory_id, report.observatories, report.expired) == (None, 2, 2)
    assert await world.maintenance_runs.last_run("expiry-check") == report.finished_at
    stored_report = world.maintenance_runs.collection.documents["expiry-check"]["report"]
    assert msgspec.convert(stored_report, ExpiryReport) == report


async def test_a_run_for_one_observatory_is_not_recorded(world, maintenance):
    await observatory(world, "obs-a")
    await observatory(world, "obs-b")

    report = await run_maintenance(maintenance, MaintenanceTask.RETENTION_CLEANUP, "obs-a")

    assert isinstance(report, RetentionReport)
    assert (report.observatory_id, report.observatories) == ("obs-a", 1)
    assert await world.maintenance_runs.last_run("retention-cleanup") is None


# ---- the scheduler's daily runs --------------------------------------------------------------


class InProcessLifecycle:
    """The lifecycle service answering over the same fakes, its reports round-tripped as
    the request/reply adapter carries them; ``down`` makes it not answer."""

    def __init__(self, maintenance: Maintenance):
        self.ports = maintenance
        self.requests: list[tuple[MaintenanceTask, str | None]] = []
        self.down = False

    async def maintenance(self, task, observatory_id, report_type):
        if self.down:
            raise ConnectionError("the lifecycle service did not answer")
        self.requests.append((task, observatory_id))
        report = await run_maintenance(self.ports, task, observatory_id)
        return msgspec.convert(msgspec.to_builtins(report), report_type)


@pytest.fixture
def lifecycle(maintenance) -> InProcessLifecycle:
    return InProcessLifecycle(maintenance)


@pytest.fixture
def daily(world, lifecycle) -> DailyMaintenance:
    return DailyMaintenance(
        runs=world.maintenance_runs,
        lifecycle=lifecycle,
        intervals={MaintenanceTask.EXPIRY_CHECK: 86400.0, MaintenanceTask.RETENTION_CLEANUP: 3600},
        clock=world.clock,
        log=world.log,
    )


async def test_a_task_that_never_ran_is_due_and_then_not_again_for_an_interval(
    world, daily, lifecycle
):
    await observatory(world)
    both = [MaintenanceTask.EXPIRY_CHECK, MaintenanceTask.RETENTION_CLEANUP]

    assert await run_due_tasks(daily) == both
    assert lifecycle.requests == [(task, None) for task in both]  # server-wide
    assert await run_due_tasks(daily) == []

    world.clock.advance(hours=1)
    assert await run_due_tasks(daily) == [MaintenanceTask.RETENTION_CLEANUP]
    world.clock.advance(hours=23)
    assert await run_due_tasks(daily) == both
    assert world.log.events().count("daily maintenance done") == 5


async def test_a_day_after_the_last_runs_the_master_expires_and_the_orphan_goes(world, daily):
    """The daily maintenance across a day: a master half a day short of its 30 days and an
    object no record names, the last runs done just now."""
    await observatory(world)
    master = await stored(
        world, make.master(FrameType.DARK, created_at=world.now() - 29 * DAY - 12 * 60 * MINUTE)
    )
    orphan = f"frames/{make.OBS}/never-announced.fits"
    await world.store.put_bytes(orphan, b"orphan")
    for task in ("expiry-check", "retention-cleanup"):
        await world.maintenance_runs.record(task, world.now(), {})

    assert await run_due_tasks(daily) == []
    world.clock.advance(DAY + MINUTE)
    assert len(await run_due_tasks(daily)) == 2

    assert (await world.frames.get(master.id)).status == MasterStatus.EXPIRED
    assert orphan not in world.store and master.storage_key in world.store
    runs = world.maintenance_runs.collection.documents
    assert runs["expiry-check"]["report"]["expired"] == 1
    assert runs["retention-cleanup"]["report"]["orphans_deleted"] == 1


async def test_a_run_the_lifecycle_did_not_answer_is_asked_for_again(world, daily, lifecycle):
    await observatory(world)
    lifecycle.down = True
    with pytest.raises(ConnectionError):
        await run_due_tasks(daily)
    assert await world.maintenance_runs.last_run("expiry-check") is None

    lifecycle.down = False
    assert len(await run_due_tasks(daily)) == 2
