"""When stacking happens (SPEC §5), through the real services: masters renewed from new
frames, one open job per configuration under concurrency, the sweep catching a lost
trigger, deferred jobs resumed by the master they were waiting for, and a failed job
not repeated. The registration trigger at its threshold is asserted without servers in
tests/unit/app/test_queueing.py and test_registration.py."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
import uuid
from datetime import UTC, datetime

import msgspec
import pytest
from pymongo import MongoClient

from calib_core.fitsheader import image_layout
from calib_core.grouping import group_frames
from calib_core.headers import fields_from_header, resolve_metadata
from calib_core.models import Frame, JobTrigger
from calib_core.settings import CalibrationSettings
from calib_core.triggers import CCD_DARK_DEFERRED_REASON, FLAT_DEFERRED_REASON, plan_job
from calib_infra.devstack import spawn
from calib_infra.mongo import mongo_client, to_document
from calib_infra.repositories import JobRepository
from calib_stack import synthetic
from tests.integration.registry_helpers import (
    CAMERA,
    frame_bytes,
    jobs,
    library,
    masters,
    put_settings,
    register_all,
    wait_registered,
)
from tests.support.system import environment, wait_for


def darks(first: int, count: int, **fields) -> list[bytes]:
    return [frame_bytes("dark", i, **fields) for i in range(first, first + count)]


def active_master(
    admin, observatory_id: str, frame_type: str, n_frames: int | None = None
) -> dict | None:
    return next(
        (
            m
            for m in masters(admin, observatory_id)
            if m["frame_type"] == frame_type
            and m["status"] == "active"
            and (n_frames is None or m["n_frames"] == n_frames)
        ),
        None,
    )


def test_enough_new_frames_renew_the_master_from_the_full_frame_set(
    admin, plugin, system, observatory
):
    put_settings(admin, observatory, min_frames_for_master=3)
    register_all(plugin, observatory, darks(0, 3))
    first = wait_for(
        lambda: active_master(admin, observatory, "dark"), timeout_s=60, what="the first master"
    )
    assert first["n_frames"] == 3

    register_all(plugin, observatory, darks(3, 2))
    wait_registered(admin, system.config, observatory, 5)
    assert [j["status"] for j in jobs(admin, observatory)] == [
        "succeeded"
    ]  # 2 new frames: not enough

    register_all(plugin, observatory, darks(5, 1))
    second = wait_for(
        lambda: active_master(admin, observatory, "dark", n_frames=6),
        timeout_s=60,
        what="the renewed master",
    )
    frames = library(admin, observatory, is_master="false")["items"]
    components = admin.get(f"/api/v1/calibration/frames/{second['id']}/components").json()["items"]
    assert {c["id"] for c in components} == {f["id"] for f in frames}
    newest_job = jobs(admin, observatory)[0]
    assert newest_job["trigger"] == "registration" and newest_job["master_id"] == second["id"]
    wait_for(
        lambda: (
            next(m for m in masters(admin, observatory) if m["id"] == first["id"])["status"]
            == "superseded"
        ),
        timeout_s=30,
        what="the first master to be superseded",
    )


def test_one_open_job_per_configuration_whatever_the_concurrency(
    admin, plugin, system, observatory
):
    """Thirty frames of one configuration in quick waves: registry batches, sweeps and
    the sweeps after each new master all try to queue while masters are being made;
    their jobs never overlap in time."""
    put_settings(admin, observatory, min_frames_for_master=3)
    for wave in range(10):
        register_all(plugin, observatory, darks(3 * wave, 3))
    wait_registered(admin, system.config, observatory, 30)

    def settled() -> dict | None:
        """No open job, and fewer unclaimed frames than the threshold (the last frames may
        arrive while a master is being made; they wait for more, as the rule says)."""
        frames = library(admin, observatory, is_master="false")["items"]
        open_jobs = [
            j for j in jobs(admin, observatory) if j["status"] in ("queued", "running", "deferred")
        ]
        unclaimed = sum(1 for f in frames if not f["master_id"])
        return None if open_jobs or unclaimed >= 3 else {"unclaimed": unclaimed}

    unclaimed = wait_for(settled, timeout_s=90, what="nothing left to stack")["unclaimed"]
    done = sorted(jobs(admin, observatory), key=lambda j: datetime.fromisoformat(j["created_at"]))
    assert len(done) >= 2 and all(j["status"] == "succeeded" for j in done)
    for earlier, later in zip(done, done[1:], strict=False):
        opened, closed = (
            datetime.fromisoformat(later["created_at"]),
            datetime.fromisoformat(earlier["finished_at"]),
        )
        assert opened >= closed, "two open jobs at once"
    # the last master has every frame but those still waiting for company
    assert active_master(admin, observatory, "dark")["n_frames"] == 30 - unclaimed


def test_concurrent_job_inserts_for_one_configuration_create_one(system, observatory):
    """The unique index behind "one open job per configuration", raced directly."""
    members = [
        Frame(
            **msgspec.structs.asdict(
                resolve_metadata(
                    {}, fields_from_header(image_layout(frame_bytes("bias", i)).header)
                )
            ),
            id=uuid.uuid4().hex,
            observatory_id=observatory,
            storage_key=f"k{i}",
            size_bytes=1,
            sha256=f"{i:064d}",
            registered_at=datetime.now(UTC),
        )
        for i in range(3)
    ]
    [group] = group_frames(members, CalibrationSettings())

    async def race() -> list:
        client = mongo_client(system.config)
        try:
            repository = JobRepository(client[system.config.mongodb_db])
            attempts = [
                plan_job(
                    group,
                    CalibrationSettings(),
                    observatory_id=observatory,
                    trigger=JobTrigger.SWEEP,
                    now=datetime.now(UTC),
                )
                for _ in range(20)
            ]
            return await asyncio.gather(*(repository.create(job) for job in attempts))
        finally:
            await client.close()

    created = [job for job in asyncio.run(race()) if job is not None]
    assert len(created) == 1


def test_the_sweep_queues_what_a_lost_trigger_missed(admin, plugin, system, observatory):
    """Frames stored without the registry (as if it died before its trigger ran)."""
    put_settings(admin, observatory, min_frames_for_master=3)
    with MongoClient(system.config.mongodb_uri) as client:
        frames = client[system.config.mongodb_db]["frames"]
        for data in darks(0, 3):
            metadata = resolve_metadata({}, fields_from_header(image_layout(data).header))
            frame = Frame(
                **msgspec.structs.asdict(metadata),
                id=uuid.uuid4().hex,
                observatory_id=observatory,
                storage_key=plugin.upload(observatory, data),
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                registered_at=datetime.now(UTC),
            )
            frames.insert_one(to_document(frame))

    [job] = wait_for(lambda: jobs(admin, observatory), timeout_s=30, what="the sweep's job")
    assert job["trigger"] == "sweep"
    assert wait_for(
        lambda: active_master(admin, observatory, "dark", n_frames=3),
        timeout_s=60,
        what="the master",
    )


# ---- deferral and resumption -------------------------------------------------------------


@pytest.fixture
def hour_long_sweep(system):
    """The session's scheduler swapped for one whose sweep waits an hour: whatever
    resumes a deferred job meanwhile is the work of ``master.created`` alone."""
    system.processes.pop("scheduler").stop()
    config = msgspec.structs.replace(system.config, sweep_interval_s=3600.0)
    scheduler = spawn(
        "scheduler-slow",
        [sys.executable, "-m", "calib_scheduler.main"],
        system.log_dir,
        env=environment(config, "scheduler-slow"),
    )
    try:
        # its first sweep runs at start; wait for it to be over
        wait_for(
            lambda: '"sweep finished"' in scheduler.log_path.read_text(),
            timeout_s=60,
            what="the slow scheduler's first sweep",
        )
        yield scheduler
    finally:
        scheduler.stop()
        system.start("scheduler")


def test_deferred_jobs_resume_when_their_master_appears(admin, plugin, system, hour_long_sweep):
    """A CMOS flat job waits for a master dark at its exposure, a CCD dark job for a
    master bias; each resumes (same job, next attempt) once that master is created."""
    cmos, ccd = (f"obs-deferral-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for observatory_id, camera_type in ((cmos, "CMOS"), (ccd, "CCD")):
        assert (
            admin.post(
                "/api/v1/admin/observatories", json={"id": observatory_id, "name": "D"}
            ).status_code
            == 201
        )
        put_settings(admin, observatory_id, min_frames_for_master=3, camera_type=camera_type)
    register_all(
        plugin, cmos, [frame_bytes("flat", i, exposure_s=2.0, filter_name="L") for i in range(3)]
    )
    register_all(plugin, ccd, darks(0, 3, exposure_s=60.0))

    def deferred(observatory_id: str):
        found = jobs(admin, observatory_id, status="deferred")
        return found[0] if found else None

    flat_job = wait_for(lambda: deferred(cmos), timeout_s=60, what="the flat job to be deferred")
    dark_job = wait_for(lambda: deferred(ccd), timeout_s=60, what="the CCD dark job to be deferred")
    assert flat_job["deferred_reason"] == f"{FLAT_DEFERRED_REASON} (flat exposure 2 s)"
    assert dark_job["deferred_reason"] == CCD_DARK_DEFERRED_REASON
    stacker_logs = "".join(path.read_text() for path in system.log_dir.glob("stacker*.log"))
    assert FLAT_DEFERRED_REASON in stacker_logs and CCD_DARK_DEFERRED_REASON in stacker_logs
    assert masters(admin, cmos) == [] and masters(admin, ccd) == []

    register_all(plugin, cmos, darks(100, 3, exposure_s=2.0))  # the flat's exposure
    register_all(plugin, ccd, [frame_bytes("bias", i, exposure_s=0.0) for i in range(3)])

    flat = wait_for(
        lambda: active_master(admin, cmos, "flat"), timeout_s=90, what="the flat master"
    )
    dark = wait_for(
        lambda: active_master(admin, ccd, "dark"), timeout_s=90, what="the CCD dark master"
    )
    for master, job in ((flat, flat_job), (dark, dark_job)):
        assert master["job_id"] == job["id"]
        # the master's record is written just before its job is marked succeeded
        resumed = wait_for(
            lambda m=master, j=job: next(
                (
                    x
                    for x in jobs(admin, m["observatory_id"])
                    if x["id"] == j["id"] and x["status"] == "succeeded"
                ),
                None,
            ),
            timeout_s=30,
            what="the resumed job to succeed",
        )
        assert resumed["attempts"] == 2
    assert "deferred job resumed" in hour_long_sweep.log_path.read_text()
    assert hour_long_sweep.log_path.read_text().count('"sweep finished"') == 1


def test_a_failed_automatic_job_is_not_repeated_by_the_sweep(admin, plugin, system, observatory):
    """An odd-sized frame fails the job (without the quality gates, which would hold it);
    the 3-second sweep must not queue the same frames again and again — the group waits
    for a retry or for new frames."""
    put_settings(admin, observatory, quality_gates_enabled=False)
    odd_camera = synthetic.Camera(name=CAMERA.name, width=CAMERA.width + 8, height=CAMERA.height)
    register_all(plugin, observatory, darks(0, 9) + [frame_bytes("dark", 9, camera=odd_camera)])
    [failed] = wait_for(
        lambda: jobs(admin, observatory, "failed"), timeout_s=60, what="the failed job"
    )
    assert "shape" in failed["error"] or "size" in failed["error"]

    time.sleep(7)  # absence can only be waited for: two sweeps (every 3 s) could have repeated it
    assert [j["id"] for j in jobs(admin, observatory)] == [failed["id"]]

    register_all(plugin, observatory, darks(10, 1))  # a new frame: worth another automatic try
    wait_for(
        lambda: len(jobs(admin, observatory)) == 2, timeout_s=30, what="a new job for the new frame"
    )
