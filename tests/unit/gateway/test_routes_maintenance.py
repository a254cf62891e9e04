"""Maintenance over the fakes: clearing the calibrated cache (here), expiry checks and
retention cleanups (asked of the lifecycle service), the health report, and the probes."""

from __future__ import annotations

from datetime import timedelta

from calib_core import events, wiring
from calib_core.lifecycle import MaintenanceTask
from calib_core.models import FrameType
from calib_gateway.ports import Backlog, ProcessHealth
from tests.unit.app.library_world import cached_file, stored
from tests.unit.core import factories as make
from tests.unit.gateway.harness import API, METRICS_BODY, Api


async def light_in(api: Api, observatory_id: str):
    frame_id = make.next_id()
    light = make.frame(
        FrameType.LIGHT,
        id=frame_id,
        observatory_id=observatory_id,
        storage_key=f"frames/{observatory_id}/{frame_id}.fits",
    )
    return await stored(api.world, light)


async def test_clearing_the_cache_of_one_observatory(api):
    observatory_id, other = await api.observatory(), await api.observatory()
    entries = [await cached_file(api.world, await light_in(api, observatory_id), "s1")]
    entries.append(await cached_file(api.world, await light_in(api, observatory_id), "s2"))
    kept = await cached_file(api.world, await light_in(api, other), "s3")

    cleared = await api.ok("POST", f"{API}/cache/clear", params={"observatory_id": observatory_id})
    assert cleared == {"observatory_id": observatory_id, "entries": 2}
    assert all(e.storage_key not in api.world.store for e in entries)
    assert kept.storage_key in api.world.store
    [invalidated] = [
        b
        for b in api.world.events.bodies(events.CACHE_INVALIDATED)
        if b.observatory_id == observatory_id
    ]
    assert invalidated.entries == 2
    response = await api.post(f"{API}/cache/clear", params={"observatory_id": "nowhere"})
    assert response.status_code == 404


async def test_the_expiry_check_is_run_by_the_lifecycle_service(api):
    observatory_id = await api.observatory()
    master_id = make.next_id("m")
    old = make.master(
        id=master_id,
        observatory_id=observatory_id,
        storage_key=f"masters/{observatory_id}/{master_id}.fits",
        created_at=api.world.now() - timedelta(days=400),
    )
    await stored(api.world, old)
    url = f"{API}/maintenance/expiry-check"
    report = await api.ok("POST", url, params={"observatory_id": observatory_id})
    assert report["observatory_id"] == observatory_id
    assert (report["observatories"], report["checked"], report["expired"]) == (1, 1, 1)
    assert (await api.world.frames.get(master_id)).status.value == "expired"
    assert api.lifecycle.requests[-1].body == {
        "task": MaintenanceTask.EXPIRY_CHECK.value,
        "observatory_id": observatory_id,
    }
    assert (await api.post(url, params={"observatory_id": "nowhere"})).status_code == 404


async def test_the_retention_cleanup_is_run_by_the_lifecycle_service(api):
    observatory_id = await api.observatory()
    url = f"{API}/maintenance/retention-cleanup"
    report = await api.ok("POST", url, params={"observatory_id": observatory_id})
    assert report["observatory_id"] == observatory_id and report["frames_deleted"] == 0
    assert api.lifecycle.requests[-1].body["task"] == MaintenanceTask.RETENTION_CLEANUP.value

    api.lifecycle.down = True
    response = await api.post(url)
    assert response.status_code == 503
    assert response.json()["detail"] == (
        "lifecycle is unavailable: the lifecycle service did not answer on "
        f"{events.LIFECYCLE_MAINTENANCE}"
    )


async def test_health_reports_dependencies_services_consumers_and_processes(api):
    world = api.world
    await world.heartbeats.beat("stacker", "s-1", world.now() - timedelta(seconds=2))
    await world.heartbeats.beat("registry", "r-1", world.now() - timedelta(seconds=60))
    api.probes.backlogs["stacker"] = Backlog(pending=4, ack_pending=1, redelivered=2)
    api.probes.supervised["gateway"] = ProcessHealth(state="running", pid=42, restarts=0)

    response = await api.get(f"{API}/health")
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "ok" and report["error"] is None
    assert all(report["dependencies"][d]["ok"] for d in ("mongodb", "s3", "nats"))
    alive = {s["service"]: s["alive"] for s in report["services"]}
    assert alive == {"stacker": True, "registry": False}  # 60 s: three beats missed
    assert set(report["consumers"]) == {c.durable for c in wiring.CONSUMERS}
    assert report["consumers"]["stacker"] == {
        "durable": "stacker",
        "service": "stacker",
        "pending": 4,
        "ack_pending": 1,
        "redelivered": 2,
        "error": None,
    }
    assert report["processes"]["gateway"]["state"] == "running"


async def test_health_is_a_503_naming_what_is_down_with_the_rest_of_the_report(api):
    api.probes.down.update({"s3", "nats"})
    response = await api.get(f"{API}/health")
    assert response.status_code == 503
    report = response.json()
    assert (report["status"], report["error"]) == ("degraded", "unavailable")
    assert report["detail"] == "s3, nats are unavailable"
    assert report["dependencies"]["s3"] == {
        "ok": False,
        "latency_ms": None,
        "error": "ConnectionError: s3 is down",
    }
    assert report["dependencies"]["mongodb"]["ok"] and report["consumers"] == {}

    api.probes.down = {"mongodb"}
    report = (await api.get(f"{API}/health")).json()
    assert report["detail"] == "mongodb is unavailable" and report["services"] == []


async def test_the_container_probes_need_no_token(api):
    assert (await api.get("/livez", role="no_token")).status_code == 200
    assert (await api.get("/healthz", role="no_token")).status_code == 200
    api.probes.down.add("nats")
    response = await api.get("/healthz", role="no_token")
    assert response.status_code == 503 and response.headers["content-type"] == "application/json"
    metrics = await api.get("/metrics", role="no_token")
    assert metrics.status_code == 200 and metrics.content == METRICS_BODY
    assert metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    root = await api.get("/", role="no_token", follow_redirects=False)
    assert root.status_code in (301, 302, 307) and root.headers["location"] == "/admin/"
