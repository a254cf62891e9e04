"""The in-memory fakes of ``tests/unit/app/fakes.py`` answer as the real adapters do.

Every test runs one scenario twice: on the fakes, and on the MongoDB repositories (a fresh
database of the session's server) or the S3 store. The scenario states what each answer
must be, so a fake that drifts from its adapter fails here and not in a use case's test.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from pymongo.errors import DuplicateKeyError

from calib_app.ports import ObjectMissingError
from calib_core.access import ApiToken, Membership, User, token_hash
from calib_core.calibration import CacheEntry
from calib_core.models import (
    Frame,
    FrameType,
    JobStatus,
    JobTrigger,
    MasterStatus,
    Observatory,
    Rejection,
    StackJob,
)
from calib_core.settings import CalibrationSettings
from calib_infra import repositories
from calib_infra.mongo import mongo_client, prepare_database
from calib_infra.store import ObjectStore
from tests.support.system import service_config, unique
from tests.unit.app import fakes
from tests.unit.core import factories as make

NOW = make.NOW
OBS = "obs-contract"
OTHER = "obs-other"
MINUTE = timedelta(minutes=1)


@dataclass
class Repositories:
    frames: Any
    jobs: Any
    settings: Any
    observatories: Any
    rejections: Any
    heartbeats: Any
    cache: Any
    maintenance_runs: Any
    accounts: Any


def fake_repositories() -> Repositories:
    return Repositories(
        frames=fakes.FakeFrameRepository(),
        jobs=fakes.FakeJobRepository(),
        settings=fakes.FakeSettingsRepository(),
        observatories=fakes.FakeObservatoryRepository(),
        rejections=fakes.FakeRejectionRepository(),
        heartbeats=fakes.FakeHeartbeatRepository(),
        cache=fakes.FakeCalibrationCacheRepository(),
        maintenance_runs=fakes.FakeMaintenanceRunRepository(),
        accounts=fakes.FakeAccountRepository(),
    )


@contextlib.asynccontextmanager
async def mongo_repositories(servers) -> AsyncIterator[Repositories]:
    config = service_config(servers.endpoints, unique("calib_contract").replace("-", "_"))
    await prepare_database(config)
    client = mongo_client(config)
    db = client[config.mongodb_db]
    try:
        yield Repositories(
            frames=repositories.FrameRepository(db),
            jobs=repositories.JobRepository(db),
            settings=repositories.SettingsRepository(db),
            observatories=repositories.ObservatoryRepository(db),
            rejections=repositories.RejectionRepository(db),
            heartbeats=repositories.HeartbeatRepository(db),
            cache=repositories.CalibrationCacheRepository(db),
            maintenance_runs=repositories.MaintenanceRunRepository(db),
            accounts=repositories.AccountRepository(db),
        )
    finally:
        await client.close()


@pytest.fixture(params=["fake", "mongodb"])
async def repos(request) -> AsyncIterator[Repositories]:
    if request.param == "fake":
        yield fake_repositories()
        return
    async with mongo_repositories(request.getfixturevalue("servers")) as real:
        yield real


def ids(records) -> list[str]:
    return [r.id for r in records]


def frame(frame_type: FrameType | str = FrameType.DARK, **overrides: Any) -> Frame:
    return make.frame(frame_type, **{"observatory_id": OBS, **overrides})


def master(frame_type: FrameType | str = FrameType.DARK, **overrides: Any) -> Frame:
    return make.master(frame_type, **{"observatory_id": OBS, **overrides})


def job(**overrides: Any) -> StackJob:
    values: dict[str, Any] = {
        "id": make.next_id("job"),
        "observatory_id": OBS,
        "status": JobStatus.QUEUED,
        "trigger": JobTrigger.REGISTRATION,
        "frame_ids": ["a", "b"],
    }
    return make.job(FrameType.DARK, **{**values, **overrides})


# -- frames -------------------------------------------------------------------------------------
async def test_frames_are_unique_by_file_and_found_by_hardware(repos):
    frames = repos.frames
    a = frame(temperature_c=-10.25)
    assert await frames.insert(a) is True
    assert await frames.insert(a) is False  # same id
    assert await frames.insert(frame(sha256=a.sha256)) is False  # same file, other id
    elsewhere = frame(sha256=a.sha256, observatory_id=OTHER)
    assert await frames.insert(elsewhere) is True  # the same file in another observatory

    b, c = frame(gain=None), frame(gain=None)
    assert await frames.insert_many([b, frame(sha256=a.sha256), c, b]) == [
        True,
        False,
        True,
        False,
    ]
    assert await frames.insert_many([]) == []

    assert await frames.get(a.id) == a
    assert await frames.get("nope") is None
    assert await frames.by_file(OBS, a.sha256) == a
    assert await frames.by_file(OTHER, a.sha256) == elsewhere
    assert ids(await frames.many([c.id, "nope", a.id, c.id])) == [c.id, a.id, c.id]
    with pytest.raises(DuplicateKeyError):  # the adapter lets this one through
        await frames.update(b.id, {"sha256": a.sha256})

    # a record handed out is a copy
    got = await frames.get(a.id)
    got.camera_name = "changed"
    assert (await frames.get(a.id)).camera_name == a.camera_name

    hot = frame(temperature_c=5.0)  # temperature does not matter here
    other_gain = frame(gain=200.0)
    other_type = frame(FrameType.BIAS)
    mastered = master()
    flat_l, flat_l2, flat_r = frame("flat"), frame("flat"), frame("flat", filter="R")
    light = frame("light")
    await frames.insert_many([hot, other_gain, other_type, mastered, flat_l, flat_l2, flat_r])
    await frames.insert(light)

    assert sorted(ids(await frames.same_hardware(a))) == sorted([a.id, hot.id])
    assert sorted(ids(await frames.same_hardware(b))) == sorted([b.id, c.id])  # gain null
    assert sorted(ids(await frames.same_hardware(flat_l))) == sorted([flat_l.id, flat_l2.id])

    await frames.claim([hot.id], "m-1")
    unclaimed = await frames.unclaimed_calibration_frames(OBS)
    assert sorted(ids(unclaimed)) == sorted(
        [a.id, b.id, c.id, other_gain.id, other_type.id, flat_l.id, flat_l2.id, flat_r.id]
    )
    calibration = await frames.calibration_frames(OBS, frame_type="flat")
    assert sorted(ids(calibration)) == sorted([flat_l.id, flat_l2.id, flat_r.id])
    filtered = await frames.calibration_frames(OBS, frame_type="flat", filter="R")
    assert ids(filtered) == [flat_r.id]
    assert hot.id in ids(await frames.calibration_frames(OBS))

    since = NOW - timedelta(hours=2)
    recent = frame("light", captured_at=NOW - timedelta(minutes=5))
    old_capture = frame("light", captured_at=NOW - timedelta(days=3), registered_at=NOW)
    no_capture = frame("light", captured_at=None, registered_at=NOW - timedelta(minutes=1))
    no_capture_old = frame("light", captured_at=None, registered_at=NOW - timedelta(days=1))
    await frames.insert_many([recent, old_capture, no_capture, no_capture_old])
    assert sorted(ids(await frames.recent_lights(OBS, since))) == sorted(
        [light.id, recent.id, no_capture.id]
    )


async def test_masters_supersede_expire_claim_and_delete(repos):
    frames = repos.frames
    sources = make.frames(3, observatory_id=OBS)
    old = master(created_at=NOW - timedelta(days=3), components=[s.id for s in sources])
    new = master(created_at=NOW - timedelta(days=1), components=[sources[0].id])
    flat = master("flat", created_at=NOW - timedelta(days=2), status=MasterStatus.EXPIRED)
    await frames.insert_many([*sources, old, new, flat])

    assert ids(await frames.current_masters(OBS)) == [new.id, flat.id, old.id]
    assert ids(await frames.current_masters(OBS, FrameType.FLAT)) == [flat.id]

    assert await frames.supersede(old.id, new.id, NOW) is True
    assert await frames.supersede(old.id, new.id, NOW) is False  # no longer current
    superseded = await frames.get(old.id)
    assert superseded.status == MasterStatus.SUPERSEDED
    assert (superseded.superseded_by, superseded.superseded_at) == (new.id, NOW)
    assert ids(await frames.superseded_by(new.id)) == [old.id]
    assert ids(await frames.current_masters(OBS)) == [new.id, flat.id]

    assert await frames.expire(new.id) is True
    assert await frames.expire(new.id) is False
    assert await frames.expire(flat.id) is False  # expired already
    assert await frames.expire(old.id) is False  # superseded
    assert ids(await frames.current_masters(OBS)) == [new.id, flat.id]  # expired is current

    await frames.claim([s.id for s in sources] + [flat.id, "nope"], old.id)
    assert {f.master_id for f in await frames.many([s.id for s in sources])} == {old.id}
    assert (await frames.get(flat.id)).master_id is None  # a master is never claimed
    await frames.claim([sources[0].id], new.id)  # a claim takes a frame from another master
    await frames.release(old.id)
    assert [f.master_id for f in await frames.many([s.id for s in sources])] == [
        new.id,
        None,
        None,
    ]
    assert ids(await frames.components(old)) == [s.id for s in sources]
    await frames.remove_component(sources[0].id)
    assert (await frames.get(old.id)).components == [sources[1].id, sources[2].id]
    assert (await frames.get(new.id)).components == []
    assert (await frames.get(flat.id)).components is None

    await frames.update(new.id, {"stats": {"mean": 1.5}, "preview_key": "previews/new.png"})
    updated = await frames.get(new.id)
    assert (updated.stats, updated.preview_key) == ({"mean": 1.5}, "previews/new.png")

    await frames.mark_deleting(flat.id)
    await frames.mark_deleting("nope")
    assert ids(await frames.current_masters(OBS)) == [new.id]
    assert ids(await frames.pending_deletions(OBS)) == [flat.id]
    assert ids(await frames.pending_deletions()) == [flat.id]
    assert ids(await frames.pending_deletions(OTHER)) == []
    assert sorted(ids(await frames.masters(OBS))) == sorted([old.id, new.id, flat.id])
    assert await frames.get(flat.id) == flat  # the mark is not a field of the record

    keys = [old.storage_key, new.storage_key, "previews/new.png", "not/stored", flat.storage_key]
    assert await frames.referenced_keys(keys) == set(keys) - {"not/stored"}
    assert await frames.referenced_keys(keys, except_id=new.id) == {
        old.storage_key,
        flat.storage_key,
    }
    assert await frames.referenced_keys([]) == set()

    await frames.delete(flat.id)
    await frames.delete("nope")
    assert await frames.get(flat.id) is None
    assert await frames.pending_deletions() == []


async def test_library_pages_newest_first_and_tally(repos):
    frames = repos.frames
    at = NOW - timedelta(days=1)
    darks = [frame(registered_at=at + timedelta(minutes=i + 1)) for i in range(5)]
    twins = [frame("flat", id=f"lib-{n}", registered_at=at) for n in ("a", "b")]  # a tie
    dark_master = master(registered_at=at + timedelta(hours=1))
    expired = master("flat", registered_at=at + timedelta(hours=2), status=MasterStatus.EXPIRED)
    stranger = frame(observatory_id=OTHER, registered_at=at + timedelta(hours=3))
    await frames.insert_many([*darks, *twins, dark_master, expired, stranger])
    await frames.claim([darks[0].id, darks[1].id], dark_master.id)

    newest_first = [expired, dark_master, *reversed(darks), twins[1], twins[0]]
    page, total = await frames.library_page(OBS, {}, skip=0, limit=4)
    assert (ids(page), total) == (ids(newest_first[:4]), 9)
    page, total = await frames.library_page(OBS, {}, skip=7, limit=4)
    assert (ids(page), total) == (ids(newest_first[7:]), 9)
    page, total = await frames.library_page(OBS, {}, skip=20, limit=4)
    assert (page, total) == ([], 9)

    page, total = await frames.library_page(
        OBS, {"is_master": False, "master_id": None}, skip=1, limit=10
    )
    assert (ids(page), total) == ([darks[3].id, darks[2].id, twins[1].id, twins[0].id], 5)
    page, total = await frames.library_page(
        OBS, {"frame_type": "flat", "filter": "L"}, skip=0, limit=10
    )
    assert (ids(page), total) == ([expired.id, twins[1].id, twins[0].id], 3)
    page, total = await frames.library_page(OBS, {"status": "expired"}, skip=0, limit=10)
    assert (ids(page), total) == ([expired.id], 1)
    assert await frames.library_page("nobody", {}, skip=0, limit=10) == ([], 0)
    page, total = await frames.library_page(
        OBS, {"is_master": True}, contains={"camera_name": "asi2600"}, skip=0, limit=10
    )
    assert (ids(page), total) == ([expired.id, dark_master.id], 2)
    for text in ("ASI.*", "$where", "(", "^zwo"):  # taken as text, never as a pattern
        assert await frames.library_page(
            OBS, {}, contains={"camera_name": text}, skip=0, limit=10
        ) == ([], 0)
    page, total = await frames.library_page(OBS, {}, contains={"filter": "l"}, skip=0, limit=10)
    assert total == 3

    camera = darks[0].camera_name
    tally = await frames.tally(OBS)
    assert sorted(
        (g["frame_type"], g["is_master"], g["status"], g["claimed"], g["count"]) for g in tally
    ) == [
        ("dark", False, None, False, 3),
        ("dark", False, None, True, 2),
        ("dark", True, "active", False, 1),
        ("flat", False, None, False, 2),
        ("flat", True, "expired", False, 1),
    ]
    assert {g["camera_name"] for g in tally} == {camera}
    fields = {"camera_name", "frame_type", "is_master", "status", "claimed", "count"}
    assert all(set(g) == fields for g in tally)
    assert await frames.tally("nobody") == []


async def test_frames_are_held_and_released(repos):
    frames = repos.frames
    sources = make.frames(4, observatory_id=OBS)
    held_master = master(components=[s.id for s in sources[:2]])
    await frames.insert_many([*sources, held_master])
    await frames.claim([s.id for s in sources[:2]], held_master.id)

    await frames.hold({sources[3].id: "dark level gate: ...", held_master.id: "never a master"})
    await frames.hold_claimed(held_master.id, "source of deleted master m1")
    found = {f.id: (f.held, f.held_reason, f.master_id) for f in await frames.many(ids(sources))}
    assert found == {
        sources[0].id: (True, "source of deleted master m1", None),
        sources[1].id: (True, "source of deleted master m1", None),
        sources[2].id: (False, None, None),
        sources[3].id: (True, "dark level gate: ...", None),
    }
    assert (await frames.get(held_master.id)).held is False
    page, total = await frames.library_page(OBS, {"held": True}, skip=0, limit=10)
    assert sorted(ids(page)) == sorted([sources[0].id, sources[1].id, sources[3].id])
    page, total = await frames.library_page(OBS, {"held": False}, skip=0, limit=10)
    assert sorted(ids(page)) == sorted([sources[2].id, held_master.id])

    await frames.unhold([sources[0].id, sources[3].id, "nope"])
    held = [f.id for f in await frames.many(ids(sources)) if f.held]
    assert held == [sources[1].id]
    assert (await frames.get(sources[0].id)).held_reason is None


# -- jobs -----------------------------------------------------------------------------------------
async def test_jobs_one_open_per_configuration_and_leases(repos):
    jobs = repos.jobs
    first = job(created_at=NOW + timedelta(microseconds=123_456), config_key="cfg-a")
    assert await jobs.create(first) == first
    assert await jobs.create(job(config_key="cfg-a")) is None  # the configuration has one
    assert await jobs.create(job(config_key="cfg-a", observatory_id=OTHER)) is not None
    assert await jobs.create(msgspec.structs.replace(first, config_key="cfg-z")) is None  # id

    stored = await jobs.get(first.id)
    assert stored.created_at == NOW + timedelta(microseconds=123_000)  # BSON keeps milliseconds
    assert stored.created_at.tzinfo is not None
    assert (await jobs.open_job_for(OBS, "cfg-a")).id == first.id
    assert await jobs.open_job_for(OBS, "cfg-b") is None
    assert await jobs.configurations_with_open_jobs(OBS, ["cfg-a", "cfg-b"]) == {"cfg-a"}

    t1 = NOW + timedelta(minutes=1)
    claimed = await jobs.claim(first.id, "w1", t1)
    assert (claimed.status, claimed.worker, claimed.attempts) == (JobStatus.RUNNING, "w1", 1)
    assert (claimed.started_at, claimed.updated_at, claimed.progress) == (t1, t1, 0.0)
    assert await jobs.claim(first.id, "w2", t1, stale_before=t1) is None  # holder is live
    assert await jobs.touch(first.id, "w2", t1) is False
    t2 = t1 + timedelta(seconds=30)
    assert await jobs.touch(first.id, "w1", t2) is True
    assert await jobs.touch(first.id, "w1", t2) is True  # matched, even if unchanged
    await jobs.set_progress(first.id, 0.5, t2)
    assert (await jobs.get(first.id)).progress == 0.5
    taken = await jobs.claim(first.id, "w2", t2 + timedelta(minutes=5), stale_before=t2 + MINUTE)
    assert (taken.worker, taken.attempts, taken.progress) == ("w2", 2, 0.0)
    assert (await jobs.claim(first.id, "w3", t2)).attempts == 3  # no stale_before: taken
    assert await jobs.claim("nope", "w1", t2) is None

    t3 = t2 + timedelta(minutes=10)
    await jobs.finish(first.id, JobStatus.FAILED, t3, error="boom")
    failed = await jobs.get(first.id)
    assert (failed.status, failed.error, failed.finished_at, failed.progress) == (
        JobStatus.FAILED,
        "boom",
        t3,
        0.0,
    )
    assert await jobs.claim(first.id, "w1", t3) is None  # closed
    assert await jobs.touch(first.id, "w3", t3) is False
    await jobs.set_progress(first.id, 0.9, t3)
    assert (await jobs.get(first.id)).progress == 0.0
    assert await jobs.open_job_for(OBS, "cfg-a") is None
    assert (await jobs.last_failed(OBS, "cfg-a")).id == first.id

    second = job(config_key="cfg-a", created_at=t3)
    assert await jobs.create(second) == second  # the slot is free again
    assert await jobs.last_failed(OBS, "cfg-a") is None  # the latest job did not fail
    assert await jobs.requeue(first.id, t3, from_statuses=[JobStatus.FAILED]) is None  # slot
    await jobs.defer(second.id, "too few frames", t3)
    deferred = await jobs.get(second.id)
    assert (deferred.status, deferred.deferred_reason) == (JobStatus.DEFERRED, "too few frames")
    assert (await jobs.open_job_for(OBS, "cfg-a")).id == second.id  # deferred is still open
    assert ids(await jobs.deferred(OBS)) == [second.id]
    assert ids(await jobs.deferred()) == [second.id]
    assert await jobs.deferred(OTHER) == []
    assert ids(await jobs.open_jobs(OBS)) == [second.id]

    assert await jobs.requeue(second.id, t3, from_statuses=[JobStatus.FAILED]) is None
    t4 = t3 + MINUTE
    requeued = await jobs.requeue(
        second.id, t4, from_statuses=[JobStatus.DEFERRED], frame_ids=["x"], trigger="retry"
    )
    assert (requeued.status, requeued.frame_ids, requeued.trigger) == (
        JobStatus.QUEUED,
        ["x"],
        JobTrigger.RETRY,
    )
    assert (requeued.deferred_reason, requeued.error, requeued.updated_at) == (None, None, t4)

    await jobs.finish(second.id, JobStatus.SUCCEEDED, t4, master_id="m-9")
    done = await jobs.get(second.id)
    assert (done.status, done.progress, done.master_id) == (JobStatus.SUCCEEDED, 1.0, "m-9")
    again = await jobs.requeue(first.id, t4, from_statuses=[JobStatus.FAILED])
    assert (again.status, again.error, again.attempts) == (JobStatus.QUEUED, None, 3)
    assert (await jobs.open_job_for(OBS, "cfg-a")).id == first.id

    third = job(config_key="cfg-c", created_at=t4)
    await jobs.create(third)
    assert ids(await jobs.list(OBS)) == [third.id, second.id, first.id]
    assert ids(await jobs.list(OBS, limit=2)) == [third.id, second.id]
    assert ids(await jobs.list(OBS, limit=0)) == [third.id, second.id, first.id]  # no limit
    assert await jobs.get(third.id) == third
    assert ids(await jobs.list(OBS, status="queued")) == [third.id, first.id]
    assert ids(await jobs.list(OBS, status=JobStatus.SUCCEEDED)) == [second.id]
    await jobs.delete(third.id)
    await jobs.delete("nope")
    assert await jobs.get(third.id) is None
    assert await jobs.create(job(config_key="cfg-c")) is not None  # a deleted job frees it


# -- the small repositories ---------------------------------------------------------------------
async def test_rejections_settings_observatories_heartbeats_and_maintenance(repos):
    first = Rejection(
        event_id="ev-1", observatory_id=OBS, storage_key="k1", reason="bad", rejected_at=NOW
    )
    later = Rejection(
        event_id="ev-2",
        observatory_id=OBS,
        storage_key=None,
        reason="worse",
        rejected_at=NOW + MINUTE,
    )
    assert await repos.rejections.record(first) is True
    assert await repos.rejections.record(msgspec.structs.replace(first, reason="x")) is False
    assert await repos.rejections.record(later) is True
    assert await repos.rejections.list(OBS) == [later, first]
    assert await repos.rejections.list(OBS, limit=1) == [later]
    assert await repos.rejections.list(OTHER) == []

    settings = repos.settings
    assert await settings.get(OBS) == CalibrationSettings()
    chosen = CalibrationSettings(min_frames_for_master=5, camera_type="CCD")
    await settings.put(OBS, chosen)
    assert await settings.get(OBS) == chosen
    await settings.put(OBS, CalibrationSettings(stacking_method="median"))
    assert await settings.get(OBS) == CalibrationSettings(stacking_method="median")
    assert await settings.get(OTHER) == CalibrationSettings()

    observatories = repos.observatories
    second = Observatory(id="b-obs", name="B", created_at=NOW)
    first_obs = Observatory(id="a-obs", name="A", created_at=NOW + MINUTE)
    assert await observatories.create(second) is True
    assert await observatories.create(first_obs) is True
    assert await observatories.create(Observatory(id="a-obs", name="X", created_at=NOW)) is False
    assert await observatories.get("a-obs") == first_obs
    assert await observatories.get("c-obs") is None
    assert await observatories.existing(["a-obs", "c-obs", "a-obs"]) == {"a-obs"}
    assert await observatories.existing([]) == set()
    assert await observatories.all() == [first_obs, second]

    heartbeats = repos.heartbeats
    assert await heartbeats.all() == []
    await heartbeats.beat("stacker", "s1", NOW)
    await heartbeats.beat("gateway", "g1", NOW)
    await heartbeats.beat("stacker", "s1", NOW + MINUTE)
    await heartbeats.beat("stacker", "s2", NOW)
    beats = await heartbeats.all()
    assert beats[0] == {"service": "gateway", "instance": "g1", "at": NOW}
    assert sorted(beats[1:], key=lambda b: b["instance"]) == [
        {"service": "stacker", "instance": "s1", "at": NOW + MINUTE},
        {"service": "stacker", "instance": "s2", "at": NOW},
    ]

    runs = repos.maintenance_runs
    assert await runs.last_run("expiry") is None
    await runs.record("expiry", NOW, {"expired": 2})
    await runs.record("expiry", NOW + MINUTE, {"expired": 0})
    await runs.record("retention", NOW, {})
    assert await runs.last_run("expiry") == NOW + MINUTE
    assert await runs.last_run("retention") == NOW


async def test_calibration_cache_entries(repos):
    cache = repos.cache

    def entry(light_id: str, key: str | None, observatory_id: str = OBS) -> CacheEntry:
        return CacheEntry(
            id=light_id,
            observatory_id=observatory_id,
            signature="sig-" + light_id,
            status="ready" if key else "failed",
            masters={"dark": "m-1"},
            warnings=["no flat"],
            created_at=NOW,
            storage_key=key,
            size_bytes=10 if key else None,
            error=None if key else "no dark",
        )

    one, two, failed = entry("l1", "cal/l1-a"), entry("l2", "cal/l2-a"), entry("l3", None)
    elsewhere = entry("l4", "cal/l4-a", OTHER)
    for e in (one, two, failed, elsewhere):
        await cache.put(e)
    assert await cache.get("l1") == one
    assert await cache.get("nope") is None
    assert await cache.many(["l2", "nope", "l1"]) == {"l1": one, "l2": two}
    assert sorted(ids(await cache.entries(OBS))) == ["l1", "l2", "l3"]
    assert sorted(ids(await cache.entries())) == ["l1", "l2", "l3", "l4"]

    await cache.mark_deleting("l1")
    await cache.mark_deleting("l4")
    await cache.mark_deleting("nope")
    assert ids(await cache.pending_deletions(OBS)) == ["l1"]
    assert sorted(ids(await cache.pending_deletions())) == ["l1", "l4"]
    replaced = msgspec.structs.replace(one, signature="sig-new", storage_key="cal/l1-b")
    await cache.put(replaced)  # a new plan replaces the entry, and its deletion mark
    assert sorted(ids(await cache.pending_deletions())) == ["l4"]
    await cache.delete("l1", "cal/l1-a")  # the entry names another key now: kept
    assert await cache.get("l1") == replaced
    await cache.delete("l1", "cal/l1-b")
    assert await cache.get("l1") is None
    await cache.delete("l3", None)  # a failure names no key
    assert await cache.get("l3") is None

    assert await cache.referenced_keys(["cal/l2-a", "cal/l1-a", "cal/l4-a"]) == {
        "cal/l2-a",
        "cal/l4-a",
    }
    assert await cache.referenced_keys([]) == set()


# -- the object store ---------------------------------------------------------------------------
@pytest.fixture(params=["fake", "s3"])
async def store(request):
    if request.param == "fake":
        return fakes.FakeObjectStore(fakes.FakeClock(datetime.now(UTC)))
    servers = request.getfixturevalue("servers")
    real = ObjectStore(
        service_config(servers.endpoints, unique("calib_contract").replace("-", "_"))
    )
    await real.ensure_bucket()
    return real


async def test_object_store_reads_ranges_scans_and_lists_in_batches(store, tmp_path):
    data = bytes(range(256)) * 4
    await store.put_bytes("a/one", data)
    path = tmp_path / "two.fits"
    path.write_bytes(b"two")
    await store.put_file("a/two", path)
    await store.put_bytes("a/sub/three", b"3")
    await store.put_bytes("b/four", b"")

    assert await store.read_range("a/one", 0, 0) == data  # length 0: the whole object
    assert await store.read_range("a/one", 10, 5) == data[10:15]
    assert await store.read_range("a/one", 1000, 100) == data[1000:]  # fewer at the end
    assert await store.read_range("a/one", 1000, 0) == data[1000:]
    assert await store.read_range("b/four", 0, 0) == b""
    assert await store.read_range("a/one", 1024, 1) == b""  # from the end on: nothing
    assert await store.read_range("b/four", 0, 10) == b""
    with pytest.raises(ObjectMissingError):
        await store.read_range("a/none", 0, 10)

    scanned = await store.scan("a/one", 16)
    assert (scanned.size, scanned.sha256, scanned.head) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
        data[:16],
    )
    assert (await store.scan("a/two", 0)).head == b""
    assert (await store.scan("a/two", 100)).head == b"two"
    with pytest.raises(ObjectMissingError):
        await store.scan("a/none", 0)

    info = await store.stat("a/two")
    assert (info.key, info.size) == ("a/two", 3)
    assert info.modified is not None and info.modified.tzinfo is not None
    assert await store.stat("a/none") is None

    batches = [[(o.key, o.size) for o in b] async for b in store.list_batches("a/", 2)]
    assert batches == [[("a/one", 1024), ("a/sub/three", 1)], [("a/two", 3)]]
    assert [b async for b in store.list_batches("c/", 2)] == []

    await store.delete("a/one")
    await store.delete("a/none")  # deleting what is not there is no error
    assert await store.stat("a/one") is None


async def test_a_stopping_holder_gives_its_job_back(repos):
    jobs = repos.jobs
    queued = job(config_key="cfg-give-back", created_at=NOW)
    await jobs.create(queued)
    await jobs.claim(queued.id, "w1", NOW)
    assert await jobs.give_back(queued.id, "w2", NOW) is False  # only the holder gives it back
    assert await jobs.give_back(queued.id, "w1", NOW) is True
    returned = await jobs.get(queued.id)
    assert (returned.status, returned.worker, returned.attempts) == (JobStatus.QUEUED, None, 1)
    retaken = await jobs.claim(queued.id, "w2", NOW, stale_before=NOW - MINUTE)  # no lease to wait
    assert (retaken.worker, retaken.attempts) == ("w2", 2)


@contextlib.asynccontextmanager
async def fake_or_real(request, fake: type, adapter: type) -> AsyncIterator[Any]:
    """One repository: the fake, or the adapter over a fresh database of the session's
    MongoDB server, as the fixture's parameter says."""
    if request.param == "fake":
        yield fake()
        return
    servers = request.getfixturevalue("servers")
    config = service_config(servers.endpoints, unique("calib_contract").replace("-", "_"))
    await prepare_database(config)
    client = mongo_client(config)
    try:
        yield adapter(client[config.mongodb_db])
    finally:
        await client.close()


@pytest.fixture(params=["fake", "mongodb"])
async def pending_uploads(request) -> AsyncIterator[Any]:
    """The pending uploads of ``POST /uploads``, in memory and in MongoDB."""
    fake, adapter = fakes.FakePendingUploadRepository, repositories.PendingUploadRepository
    async with fake_or_real(request, fake, adapter) as repository:
        yield repository


async def test_pending_uploads_name_keys_until_they_expire(pending_uploads):
    from calib_core.presigned import pending_upload

    first = pending_upload(OBS, "a.fits", "u1", NOW + timedelta(microseconds=1500))
    second = pending_upload(OBS, "b.fits", "u2", NOW + MINUTE)
    theirs = pending_upload(OTHER, "c.fits", "u3", NOW)
    for upload in (first, second, theirs):
        await pending_uploads.add(upload)
    with pytest.raises(DuplicateKeyError):
        await pending_uploads.add(first)

    stored = await pending_uploads.get(first.storage_key)
    assert stored.storage_key == first.storage_key == f"frames/{OBS}/u1/a.fits"
    assert stored.expires_at == first.expires_at.replace(microsecond=1000)  # BSON: milliseconds
    assert await pending_uploads.get("frames/none") is None

    keys = [first.storage_key, second.storage_key, theirs.storage_key, "frames/none"]
    named = await pending_uploads.referenced_keys(keys, expiring_from=first.expires_at)
    assert named == {first.storage_key, second.storage_key}  # expiring at the cutoff counts
    later = await pending_uploads.referenced_keys(keys, expiring_from=second.expires_at)
    assert later == {second.storage_key}
    assert await pending_uploads.referenced_keys([], expiring_from=NOW) == set()

    assert await pending_uploads.remove_expired(second.expires_at, OBS) == 1  # before, not at
    assert await pending_uploads.get(first.storage_key) is None
    assert await pending_uploads.get(theirs.storage_key) is not None
    assert await pending_uploads.remove_expired(NOW + timedelta(days=1)) == 2
    assert await pending_uploads.referenced_keys(keys, expiring_from=NOW) == set()


# -- accounts -----------------------------------------------------------------------------------


async def test_users_and_tokens_stored_by_hash_revoked_and_reinstated(repos):
    accounts = repos.accounts
    user = User(id="u1", name="ann", memberships=[Membership(observatory_id=OBS)], created_at=NOW)
    await accounts.save_user(user)
    await accounts.save_user(msgspec.structs.replace(user, name="anne", created_at=NOW + MINUTE))
    assert await accounts.user("u1") == msgspec.structs.replace(user, name="anne")
    assert await accounts.user("nobody") is None

    def token(token_id: str, secret: str, **owner: Any) -> ApiToken:
        return ApiToken(id=token_id, hash=token_hash(secret), created_at=NOW, **owner)

    assert await accounts.add_token(token("t1", "one", user_id="u1")) == "t1"
    assert await accounts.add_token(token("t1-again", "one", user_id="u1")) == "t1"
    assert await accounts.add_token(token("p1", "plug", plugin_observatory=OBS)) == "p1"
    assert (await accounts.live_token(token_hash("plug"))).plugin_observatory == OBS
    assert await accounts.live_token_ids() == {"u1": ["t1"]}
    assert await accounts.live_among(["t1", "p1", "unknown"]) == {"t1", "p1"}

    assert await accounts.revoke("p1") is True
    assert await accounts.revoke("unknown") is False
    assert await accounts.live_token(token_hash("plug")) is None
    assert await accounts.live_among(["t1", "p1"]) == {"t1"}
    await accounts.reinstate(token_hash("plug"))
    assert await accounts.live_among(["p1"]) == {"p1"}
    assert [u.id for u in await accounts.users()] == ["u1"]


@pytest.fixture(params=["fake", "mongodb"])
async def dead_letters(request) -> AsyncIterator[Any]:
    """The dead letters of SPEC §12, in memory and in MongoDB."""
    fake, adapter = fakes.FakeDeadLetterRepository, repositories.DeadLetterRepository
    async with fake_or_real(request, fake, adapter) as repository:
        yield repository


async def test_dead_letters_count_failures_then_die_and_are_replayed(dead_letters):
    from calib_core.deadletters import DeadLetter, DeadLetterStatus

    dead, retrying, replayed = (
        DeadLetterStatus.DEAD,
        DeadLetterStatus.RETRYING,
        DeadLetterStatus.REPLAYED,
    )

    def letter(n: int, **overrides: Any) -> DeadLetter:
        values: dict[str, Any] = {
            "id": f"registry-{n}-1",
            "consumer": "registry",
            "subject": f"frame.registered.{OBS}",
            "body": b'{"event_id": "\xff"}',  # any bytes, as they came
            "observatory_id": OBS,
            "status": retrying,
            "attempts": 1,
            "error": "ConnectionError: first",
            "first_seen": NOW,
            "last_seen": NOW,
            "stream_sequence": n,
        }
        return DeadLetter(**{**values, **overrides})

    first = letter(1)
    assert await dead_letters.count_failure(first) == 1
    later = msgspec.structs.replace(first, error="ConnectionError: later", last_seen=NOW + MINUTE)
    assert await dead_letters.count_failure(later) == 2
    assert await dead_letters.get(first.id) == msgspec.structs.replace(later, attempts=2)
    assert await dead_letters.get("nothing") is None
    assert await dead_letters.list([dead]) == [] and await dead_letters.count([retrying]) == 1

    await dead_letters.bury(first.id, NOW + MINUTE)
    buried = msgspec.structs.replace(later, attempts=2, status=dead)
    assert await dead_letters.get(first.id) == buried
    permanent = letter(2, status=dead, permanent=True, error="invalid event", last_seen=NOW)
    await dead_letters.record(permanent)
    await dead_letters.record(permanent)  # redelivered: recorded once
    assert await dead_letters.count_failure(letter(3, last_seen=NOW + 2 * MINUTE)) == 1
    assert await dead_letters.list([dead]) == [buried, permanent]
    assert await dead_letters.list([dead], limit=1) == [buried]
    assert await dead_letters.count([dead, retrying]) == 3

    await dead_letters.forget([first.id, "registry-3-1", "nothing"])  # only retrying ones go
    assert await dead_letters.get("registry-3-1") is None
    assert await dead_letters.count([dead]) == 2

    again = await dead_letters.replayed(first.id, "replay-1", NOW + 3 * MINUTE)
    assert again == msgspec.structs.replace(
        buried, status=replayed, replays=1, replayed_at=NOW + 3 * MINUTE, replay_msg_id="replay-1"
    )
    twice = await dead_letters.replayed(first.id, "replay-2", NOW + 4 * MINUTE)
    assert (twice.replays, twice.replay_msg_id) == (2, "replay-2")
    assert await dead_letters.replayed("nothing", "replay-3", NOW) is None
    await dead_letters.count_failure(letter(4))
    assert await dead_letters.replayed("registry-4-1", "replay-4", NOW) is None  # not dead yet
    assert await dead_letters.list([dead, replayed]) == [twice, permanent]
