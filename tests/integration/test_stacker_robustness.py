"""The stacker under repeated messages and bad input: a duplicate request, a corrupt
source file (the job fails naming it; a retry without it succeeds), live progress."""

from __future__ import annotations

import threading
import uuid

from calib_core import events
from calib_infra.store import ObjectStore
from calib_stack import synthetic
from tests.integration.test_stacker import (
    API,
    CAMERA,
    Subscription,
    configure,
    create_master,
    dark_file,
    library,
    masters,
    object_keys,
    register_all,
    stacker_log_lines,
    stackers_pulling,
    wait_frames,
    wait_job,
)
from tests.support.system import consumer_drained, wait_for


def test_a_duplicate_request_for_a_running_job_makes_one_master(admin, plugin, system, observatory):
    configure(admin, observatory, min_frames_for_master=100)
    big = synthetic.Camera(name=CAMERA.name, width=1024, height=768)  # a job long enough to overlap
    register_all(
        plugin,
        observatory,
        [dark_file(i, exposure_s=60.0, temperature_c=-10.0, camera=big) for i in range(8)],
    )
    wait_frames(admin, observatory, 8)
    wait_for(lambda: stackers_pulling(system.config), what="both stackers to wait for work")

    requested_again = threading.Event()

    def request_again(subject: str, body: dict):
        """As the job starts, publish its ``stack.requested`` once more under a new
        ``Nats-Msg-Id`` (so the stream keeps it): what a confused operator might do."""
        if requested_again.is_set():
            return None
        requested_again.set()
        return progress.publish(
            events.subject(events.STACK_REQUESTED, observatory),
            {"job_id": body["job_id"], "observatory_id": observatory},
            uuid.uuid4().hex,
        )

    with Subscription(
        system.config, f"stack.progress.{observatory}", on_message=request_again
    ) as progress:
        queued = create_master(admin, observatory, frame_type="dark", exposure_s=60.0)
        done = wait_job(admin, observatory, queued["id"], "succeeded")
    assert requested_again.is_set()
    assert done["attempts"] == 1  # the duplicate did not stack the job a second time
    assert stacker_log_lines(
        system, f"job {queued['id']} is being stacked by"
    )  # it came while running
    wait_for(
        lambda: consumer_drained(system.config, "stacker"),
        timeout_s=30,
        what="the duplicate to be acknowledged",
    )
    found = masters(admin, observatory)
    assert [m["job_id"] for m in found] == [queued["id"]]
    assert object_keys(system.config, f"masters/{observatory}/") == [found[0]["storage_key"]]
    job_after = wait_job(admin, observatory, queued["id"], "succeeded")
    assert job_after["attempts"] == 1 and job_after["finished_at"] == done["finished_at"]


def test_a_corrupt_frame_fails_the_job_naming_it_and_a_retry_without_it_succeeds(
    admin, plugin, system, observatory
):
    configure(admin, observatory, min_frames_for_master=100)
    files = [dark_file(i, exposure_s=60.0, temperature_c=-10.0, seed=4) for i in range(6)]
    keys = register_all(plugin, observatory, files)
    frames = wait_frames(admin, observatory, 6)
    corrupt = next(f for f in frames if f["storage_key"] == keys[2])
    store = ObjectStore(system.config)
    store.put_bytes_sync(
        corrupt["storage_key"], files[2][: len(files[2]) // 2]
    )  # cut short in storage

    with Subscription(system.config, f"stack.*.{observatory}") as seen:
        queued = create_master(admin, observatory, frame_type="dark", exposure_s=60.0)
        failed = wait_job(admin, observatory, queued["id"], "failed")
        assert corrupt["id"] in failed["error"] and corrupt["storage_key"] in failed["error"]
        assert "changed in storage since it was recorded" in failed["error"]
        notice = wait_for(lambda: seen.bodies("stack.failed", queued["id"]), what="stack.failed")
        assert notice[0]["reason"] == failed["error"]
        assert masters(admin, observatory) == []
        assert object_keys(system.config, f"masters/{observatory}/") == []

        response = admin.delete(f"{API}/frames/{corrupt['id']}")
        assert response.status_code == 204, response.text
        assert object_keys(system.config, corrupt["storage_key"]) == []
        response = admin.post(f"{API}/jobs/{queued['id']}/retry")
        assert response.status_code == 202, response.text
        first_attempt = len(
            seen.bodies("stack.progress", queued["id"])
        )  # all in: stack.failed came after
        done = wait_job(admin, observatory, queued["id"], "succeeded")
        reports = wait_for(
            lambda: (
                (r := seen.bodies("stack.progress", queued["id"])[first_attempt:])
                and r[-1]["progress"] == 1.0
                and r
            ),
            what="the last progress report",
        )

    assert done["attempts"] == 2 and done["trigger"] == "retry" and done["error"] is None
    master = masters(admin, observatory)[0]
    assert master["n_frames"] == 5 and corrupt["id"] not in master["components"]
    assert sorted(master["components"]) == sorted(
        f["id"] for f in library(admin, observatory, is_master="false")
    )
    values = [r["progress"] for r in reports]
    assert values == sorted(set(values)) and values[0] == 0.0 and len(values) >= 4
    assert [r["status"] for r in reports][-1] == "succeeded"
    assert {r["status"] for r in reports[:-1]} == {"running"}
