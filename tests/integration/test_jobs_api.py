"""Manual master creation and retries (SPEC §5, §8) through the real services: the same
job machinery as the automatic triggers, up to the masters the stackers make. Refusals
(thresholds, retry and deletion rules) are tested over fakes in
tests/unit/gateway/test_routes_jobs.py."""

from __future__ import annotations

import asyncio
import hashlib

import msgspec

from calib_infra.store import ObjectStore
from tests.integration.registry_helpers import (
    API,
    frame_bytes,
    jobs,
    masters,
    put_settings,
    register_all,
    stream_messages,
    wait_registered,
)
from tests.support.system import wait_for


def create(admin, observatory_id: str, force: bool = False, **group) -> tuple[int, dict]:
    body = {
        "observatory_id": observatory_id,
        "frame_type": "dark",
        "exposure_s": 30.0,
        "force": force,
        **group,
    }
    response = admin.post(f"{API}/masters/create", json=body)
    return response.status_code, response.json()


def finished(admin, observatory_id: str, job_id: str) -> dict | None:
    job = next(j for j in jobs(admin, observatory_id) if j["id"] == job_id)
    return job if job["status"] in ("succeeded", "failed") else None


def test_manual_creation_at_the_thresholds(admin, plugin, system, observatory):
    put_settings(admin, observatory, min_frames_for_master=5)  # sigma_clip: force needs 3
    register_all(plugin, observatory, [frame_bytes("dark", i) for i in range(3)])
    wait_registered(admin, system.config, observatory, 3)
    status, forced = create(admin, observatory, force=True)
    assert status == 202 and forced["trigger"] == "manual" and len(forced["frame_ids"]) == 3
    assert (
        wait_for(
            lambda: finished(admin, observatory, forced["id"]), timeout_s=60, what="the forced job"
        )["status"]
        == "succeeded"
    )

    # the threshold counts the group's retained frames, claimed ones included
    register_all(plugin, observatory, [frame_bytes("dark", 3)])
    wait_registered(admin, system.config, observatory, 4)
    status, body = create(admin, observatory)
    assert status == 422 and "4 frames to stack; 5 needed" in body["detail"]
    register_all(plugin, observatory, [frame_bytes("dark", 4)])
    wait_registered(admin, system.config, observatory, 5)
    status, manual = create(admin, observatory)
    assert status == 202 and len(manual["frame_ids"]) == 5
    assert (
        wait_for(
            lambda: finished(admin, observatory, manual["id"]), timeout_s=60, what="the manual job"
        )["status"]
        == "succeeded"
    )
    assert sorted(m["n_frames"] for m in masters(admin, observatory)) == [3, 5]

    put_settings(admin, observatory, stacking_method="mean")  # force: a single frame will do
    register_all(plugin, observatory, [frame_bytes("bias", 0, exposure_s=0.0)])
    wait_registered(admin, system.config, observatory, 6)
    status, single = create(admin, observatory, force=True, frame_type="bias", exposure_s=None)
    assert status == 202 and len(single["frame_ids"]) == 1
    assert (
        wait_for(
            lambda: finished(admin, observatory, single["id"]),
            timeout_s=60,
            what="the single-frame job",
        )["status"]
        == "succeeded"
    )

    assert {j["id"] for j in jobs(admin, observatory, status="succeeded")} == {
        forced["id"],
        manual["id"],
        single["id"],
    }
    assert jobs(admin, observatory, status="failed") == []


def test_a_failed_job_retried_is_a_new_request_and_succeeds(admin, plugin, system, observatory):
    put_settings(admin, observatory, min_frames_for_master=100)  # nothing automatic
    files = {
        hashlib.sha256(data).hexdigest(): data
        for data in (frame_bytes("dark", i) for i in range(3))
    }
    register_all(plugin, observatory, list(files.values()))
    lost = wait_registered(admin, system.config, observatory, 3)[0]
    store = ObjectStore(system.config)
    asyncio.run(store.delete(lost["storage_key"]))

    status, job = create(admin, observatory, force=True)
    assert status == 202
    failed = wait_for(
        lambda: finished(admin, observatory, job["id"]), timeout_s=60, what="the job to fail"
    )
    assert failed["status"] == "failed" and lost["id"] in failed["error"]
    assert [j["id"] for j in jobs(admin, observatory, status="failed")] == [job["id"]]

    store.put_bytes_sync(lost["storage_key"], files[lost["sha256"]])  # the object is back
    response = admin.post(f"{API}/jobs/{job['id']}/retry")
    assert response.status_code == 202
    assert response.json()["status"] == "queued" and response.json()["trigger"] == "retry"
    retried = wait_for(
        lambda: finished(admin, observatory, job["id"]), timeout_s=60, what="the retried job"
    )
    assert retried["status"] == "succeeded" and retried["attempts"] == 2
    [master] = masters(admin, observatory)
    assert master["job_id"] == job["id"] and master["n_frames"] == 3
    assert admin.post(f"{API}/jobs/{job['id']}/retry").status_code == 409  # only failed jobs

    requests = stream_messages(system.config, f"stack.requested.{observatory}")
    assert [m.headers["Nats-Msg-Id"] for m in requests] == [f"{job['id']}-1", f"{job['id']}-2"]
    assert [msgspec.json.decode(m.data)["attempt"] for m in requests] == [1, 2]
