"""The lifecycle service as a dependency, with services of their own: the scheduler asks it
for the daily expiry check and retention cleanup once a day has passed since their last
run; without it the gateway answers 503 naming it. Each test has its own NATS server (the
session's MongoDB and S3): requests on a shared one would reach the session's lifecycle."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from calib_core.models import Frame, FrameType, MasterStatus, Observatory
from calib_infra.devstack import EmbeddedServers, ServerPorts
from calib_infra.mongo import to_document
from calib_infra.store import ObjectStore
from tests.integration.test_lifecycle import DAY, MINUTE, database
from tests.support.clock import MovableClock
from tests.support.system import (
    ADMIN_TOKEN,
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    Services,
    free_port,
    service_config,
    unique,
    wait_for,
)


@pytest.fixture
def ports(servers, tmp_path):
    """The session's MongoDB and S3 with a NATS server of this test's own."""
    bus = EmbeddedServers(
        data_dir=tmp_path / "nats",
        ports=ServerPorts(nats=free_port(), s3=free_port(), mongodb=free_port()),
        s3_access_key=S3_ACCESS_KEY,
        s3_secret_key=S3_SECRET_KEY,
    )
    bus.start(s3=False, mongodb=False)
    try:
        yield servers.endpoints.with_nats_of(bus.endpoints)
    finally:
        bus.stop()


def test_the_scheduler_runs_the_daily_maintenance_once_a_day_has_passed(ports, tmp_path):
    clock = MovableClock(str(tmp_path / "clock"))
    config = service_config(
        ports,
        unique("calib_daily").replace("-", "_"),
        clock_offset_file=clock.offset_file,
        maintenance_poll_s=0.5,
    )
    services = Services(config=config, bus=ports.bus, log_dir=tmp_path / "logs")
    services.create_schema()
    db, store = database(config), ObjectStore(config)
    store.ensure_bucket_sync()
    now, observatory = clock.now(), unique("obs")
    db.observatories.insert_one(
        to_document(Observatory(id=observatory, name="Daily", created_at=now))
    )
    # a master half a day short of its 30 days, an object no record names, runs done just now
    master = Frame(
        id="m-daily",
        observatory_id=observatory,
        frame_type=FrameType.DARK,
        camera_name="Cam",
        exposure_s=30.0,
        width=4,
        height=4,
        storage_key=f"masters/{observatory}/m-daily.fits",
        size_bytes=1,
        sha256="0" * 64,
        registered_at=now,
        is_master=True,
        status=MasterStatus.ACTIVE,
        created_at=now - timedelta(days=29, hours=12),
        config_key="dark|Cam",
    )
    store.put_bytes_sync(master.storage_key, b"master")
    db.frames.insert_one(to_document(master))
    orphan = f"frames/{observatory}/never-announced.fits"
    store.put_bytes_sync(orphan, b"orphan")
    for task in ("expiry-check", "retention-cleanup"):
        db.maintenance_runs.insert_one({"_id": task, "finished_at": now, "report": {}})

    try:
        services.start("lifecycle")
        services.start("scheduler")
        wait_for(  # the lifecycle loads its numba kernels first: compiles them if the cache
            # is cold, on two cores that two test workers share (fresh clones took 22-33 s)
            lambda: {"lifecycle", "scheduler"} <= {h["service"] for h in db.heartbeats.find()},
            timeout_s=120,
            what="the services' heartbeats",
        )
        assert db.frames.find_one({"_id": master.id})["status"] == "active"

        clock.move_to(now + DAY + MINUTE)

        def both_ran():
            runs = {run["_id"]: run for run in db.maintenance_runs.find()}
            return runs if all(run["finished_at"] > now + DAY for run in runs.values()) else None

        runs = wait_for(both_ran, timeout_s=30, what="the daily runs")
        assert db.frames.find_one({"_id": master.id})["status"] == "expired"
        assert store.stat_sync(orphan) is None
        assert runs["expiry-check"]["report"]["expired"] == 1
        assert runs["retention-cleanup"]["report"]["orphans_deleted"] == 1
        assert store.stat_sync(master.storage_key) is not None  # current masters are kept
    finally:
        services.stop()


def test_without_a_lifecycle_service_maintenance_answers_503_naming_it(ports, tmp_path):
    config = service_config(
        ports, unique("calib_nolifecycle").replace("-", "_"), gateway_port=free_port()
    )
    services = Services(config=config, bus=ports.bus, log_dir=tmp_path / "logs")
    try:
        services.create_schema()
        services.start("gateway")
        services.wait_ready()
        with httpx.Client(
            base_url=services.base_url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        ) as admin:
            for task in ("expiry-check", "retention-cleanup"):
                response = admin.post(f"/api/v1/calibration/maintenance/{task}")
                assert response.status_code == 503, response.text
                assert response.json()["error"] == "unavailable"
                assert response.json()["detail"].startswith("lifecycle is unavailable")
    finally:
        services.stop()
