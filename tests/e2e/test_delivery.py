"""At-least-once delivery made exactly-once in effect: duplicates, crashes, start-up order."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
from astropy.io import fits
from pymongo import MongoClient

from calib_core import events
from calib_infra.devstack import EmbeddedServers, ServerPorts
from calib_stack import synthetic
from tests.e2e.test_skeleton import dark_bytes, masters
from tests.support.plugin import Plugin
from tests.support.system import (
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    Services,
    consumer_drained,
    free_port,
    service_config,
    unique,
    wait_for,
)


def library(admin, observatory_id: str, **params) -> dict:
    response = admin.get(f"/api/v1/calibration/library/{observatory_id}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_repeated_event_and_a_repeated_file_store_one_frame(admin, plugin, system, observatory):
    data = dark_bytes(np.random.default_rng(3), 0)
    event = events.FrameRegistered(
        event_id=uuid.uuid4().hex,
        observatory_id=observatory,
        storage_key=plugin.upload(observatory, data),
    )
    plugin.announce([(event, event.event_id), (event, event.event_id)])  # same Nats-Msg-Id
    same_file = events.FrameRegistered(
        event_id=uuid.uuid4().hex,
        observatory_id=observatory,
        storage_key=plugin.upload(observatory, data),
    )
    plugin.announce([(same_file, same_file.event_id)])  # same bytes under a new event and key

    wait_for(lambda: library(admin, observatory)["total"] >= 1, what="the frame")
    wait_for(lambda: consumer_drained(system.config, "registry"), what="registry to drain")
    page = library(admin, observatory)
    assert page["total"] == 1
    assert page["items"][0]["storage_key"] == event.storage_key


def big_dark(rng: np.random.Generator, index: int, shape=(1400, 2000)) -> bytes:
    data = rng.normal(1000, 20, size=shape).astype(np.uint16)
    header = fits.Header()
    header["IMAGETYP"] = "DARK"
    header["INSTRUME"] = "Big CMOS"
    header["EXPTIME"] = 120.0
    header["CCD-TEMP"] = -5.0
    header["GAIN"] = 0
    header["DATE-OBS"] = (datetime.now(UTC) - timedelta(minutes=30 - index)).isoformat()
    return synthetic.fits_bytes(data, header)


def test_a_stacker_killed_mid_job_leaves_the_job_to_the_other_replica(
    admin, plugin, system, observatory
):
    rng = np.random.default_rng(5)
    for index in range(12):
        plugin.register(observatory, big_dark(rng, index))

    def running_job():
        jobs = admin.get(f"/api/v1/calibration/jobs/{observatory}").json()["items"]
        return next((j for j in jobs if j["status"] == "running" and j["worker"]), None)

    job = wait_for(running_job, timeout_s=60, interval_s=0.05, what="a running job")
    victim = job["worker"]
    system.processes[victim].kill()
    try:

        def finished():
            current = admin.get(f"/api/v1/calibration/jobs/{observatory}").json()["items"]
            done = [j for j in current if j["id"] == job["id"] and j["status"] == "succeeded"]
            return done[0] if done else None

        done = wait_for(finished, timeout_s=120, what="the job to finish elsewhere")
        assert done["worker"] != victim
        assert done["attempts"] >= 2
        found = masters(admin, observatory)
        assert len(found) == 1
        assert found[0]["job_id"] == job["id"]
        assert found[0]["n_frames"] == 10  # queued when the 10th frame arrived
    finally:
        system.start(victim)


def test_services_started_before_their_servers_wait_and_connect(tmp_path):
    """Services pointed at servers that are not up yet report not-ready, then connect."""
    ports = ServerPorts(nats=free_port(), s3=free_port(), mongodb=free_port())
    late = EmbeddedServers(tmp_path / "late", ports, S3_ACCESS_KEY, S3_SECRET_KEY)
    config = service_config(
        late.endpoints, unique("calib_late").replace("-", "_"), gateway_port=free_port()
    )
    services = Services(config=config, bus=late.bus, log_dir=tmp_path / "logs")
    services.start("gateway")
    services.start("registry")

    def health():
        try:
            return httpx.get(f"{services.base_url}/healthz", timeout=5)  # checks take <= 2 s
        except httpx.HTTPError:
            return None

    try:
        response = wait_for(health, timeout_s=30, what="the gateway to answer")
        assert response.status_code == 503
        assert response.json()["status"] == "starting"
        time.sleep(2)
        assert all(p.process.poll() is None for p in services.processes.values()), (
            "a service crashed"
        )

        late.start()
        services.create_schema()  # as `calib run` does once the servers are up
        wait_for(
            lambda: (r := health()) is not None and r.status_code == 200,
            timeout_s=60,
            what="the gateway to become ready",
        )
        wait_for(
            lambda: '"connected"' in (services.log_dir / "registry.log").read_text(),
            timeout_s=60,
            what="the registry to connect",
        )
    finally:
        services.stop()
        late.stop()


def test_a_stacker_told_to_stop_mid_job_hands_it_over_at_once(servers, tmp_path):
    """SIGTERM (a deploy, a scale-down) mid-job: the job goes to the other replica within
    seconds, not after the minute-long ack wait and lease a crashed replica would need."""
    bus = EmbeddedServers(
        tmp_path / "nats",
        ServerPorts(nats=free_port(), s3=free_port(), mongodb=free_port()),
        S3_ACCESS_KEY,
        S3_SECRET_KEY,
    )
    bus.start(s3=False, mongodb=False)  # a bus of its own: no other stacker may take the job
    endpoints = servers.endpoints.with_nats_of(bus.endpoints)
    config = service_config(
        endpoints, unique("calib_handover").replace("-", "_"), stacker_ack_wait_s=60.0
    )
    services = Services(config=config, bus=endpoints.bus, log_dir=tmp_path / "logs")
    observatory = unique("obs")
    try:
        services.start_all(stackers=2)
        services.wait_ready()
        with MongoClient(config.mongodb_uri) as client:
            db = client[config.mongodb_db]
            db["observatories"].insert_one(
                {"_id": observatory, "name": "Hand-over", "created_at": datetime.now(UTC)}
            )
            plugin = Plugin(config)
            rng = np.random.default_rng(11)
            for index in range(10):
                plugin.register(observatory, big_dark(rng, index, shape=(2000, 3000)))

            def running() -> dict | None:
                return db["jobs"].find_one({"observatory_id": observatory, "status": "running"})

            job = wait_for(running, timeout_s=60, interval_s=0.05, what="a running job")
            victim = job["worker"]
            stopped_at = time.monotonic()
            services.processes[victim].stop()  # SIGTERM: a graceful stop

            def finished() -> dict | None:
                return db["jobs"].find_one({"_id": job["_id"], "status": "succeeded"})

            done = wait_for(finished, timeout_s=30, what="the other replica to finish the job")
            assert done["worker"] != victim
            assert done["attempts"] == 2
            assert time.monotonic() - stopped_at < 30  # a crashed holder would take over 60 s
            log = (tmp_path / "logs" / f"{victim}.log").read_text()
            assert "stopping: job given back" in log
    finally:
        services.stop()
        bus.stop()
