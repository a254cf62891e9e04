"""A stacker SIGKILLed after it uploaded the master but before it recorded it: another
replica finishes the job, one master exists and no orphan object is left in the bucket."""

from __future__ import annotations

import hashlib
import os
import signal
import threading

from calib_infra.store import ObjectStore
from tests.integration.test_stacker import (
    API,
    Subscription,
    configure,
    create_master,
    dark_file,
    job,
    masters,
    object_keys,
    register_all,
    stackers_pulling,
    wait_frames,
    wait_job,
)
from tests.support.system import wait_for


def test_a_stacker_killed_after_uploading_the_master_leaves_no_orphan(
    admin, plugin, system, observatory
):
    configure(admin, observatory, min_frames_for_master=100)
    register_all(
        plugin,
        observatory,
        [dark_file(i, exposure_s=60.0, temperature_c=-10.0, seed=6) for i in range(6)],
    )
    wait_frames(admin, observatory, 6)
    wait_for(lambda: stackers_pulling(system.config), what="both stackers to wait for work")
    stackers = {
        name: p.process.pid for name, p in system.processes.items() if name.startswith("stacker")
    }
    frozen = threading.Event()

    def freeze_at_upload(subject: str, body: dict) -> None:
        # the stacker reports 0.99 once the master's object is in S3, before its record exists
        if body["progress"] >= 0.99 and body["status"] == "running" and not frozen.is_set():
            for pid in stackers.values():
                os.killpg(pid, signal.SIGSTOP)
            frozen.set()

    with Subscription(system.config, f"stack.progress.{observatory}", on_message=freeze_at_upload):
        queued = create_master(admin, observatory, frame_type="dark", exposure_s=60.0)
        wait_for(frozen.is_set, what="the master to be uploaded")
    victim = job(admin, observatory, queued["id"])["worker"]
    master_id = f"m{queued['id']}"
    try:
        assert (
            ObjectStore(system.config).stat_sync(f"masters/{observatory}/{master_id}.fits")
            is not None
        )
        assert admin.get(f"{API}/frames/{master_id}").status_code == 404  # object, no record yet
        system.processes[victim].kill()
    finally:
        for name, pid in stackers.items():
            if name != victim:
                os.killpg(pid, signal.SIGCONT)
    try:
        done = wait_job(admin, observatory, queued["id"], "succeeded", timeout_s=90)
        assert done["worker"] != victim and done["attempts"] == 2
        found = masters(admin, observatory)
        assert [m["id"] for m in found] == [master_id]
        assert object_keys(system.config, f"masters/{observatory}/") == [found[0]["storage_key"]]
        assert object_keys(system.config, f"previews/{observatory}/") == [found[0]["preview_key"]]
        stored = admin.get(f"{API}/frames/{master_id}/download").content
        assert hashlib.sha256(stored).hexdigest() == found[0]["sha256"]
    finally:
        system.start(victim)
