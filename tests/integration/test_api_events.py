"""Live job progress over server-sent events, read while a real job runs."""

from __future__ import annotations

import json
import queue
import threading

import httpx

from tests.integration.api_helpers import (
    API,
    frame_bytes,
    put_settings,
    upload_frame,
)
from tests.support.system import wait_for


def read_events(
    client: httpx.Client,
    observatory_id: str,
    into: queue.Queue,
    connected: threading.Event,
    stop: threading.Event,
) -> None:
    """Parse the stream into (event, data) pairs until ``stop`` is set (and the client closed)."""
    try:
        with client.stream("GET", f"{API}/events/{observatory_id}") as response:
            into.put(("status", response.status_code, response.headers.get("content-type")))
            event = None
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    connected.set()
                elif line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event:
                    into.put((event, json.loads(line.removeprefix("data: "))))
                    event = None
    except httpx.HTTPError:
        if not stop.is_set():
            raise


def test_progress_and_job_states_stream_while_a_job_runs(admin, observatory):
    put_settings(admin, observatory, min_frames_for_master=3)
    received: queue.Queue = queue.Queue()
    connected, stop = threading.Event(), threading.Event()
    client = httpx.Client(
        base_url=admin.base_url, headers=admin.headers, timeout=httpx.Timeout(30, read=60)
    )
    reader = threading.Thread(
        target=read_events, args=(client, observatory, received, connected, stop), daemon=True
    )
    reader.start()
    assert connected.wait(10), "the stream did not start"
    for index in range(3):
        assert (
            upload_frame(admin, observatory, frame_bytes("dark", index=index, seed=77)).status_code
            == 202
        )

    seen: list[tuple] = []

    def succeeded():
        while not received.empty():
            seen.append(received.get())
        return any(e[0] == "job" and e[1]["status"] == "succeeded" for e in seen)

    try:
        wait_for(succeeded, timeout_s=60, what="the job's success on the stream")
    finally:
        stop.set()
        client.close()
        reader.join(5)
    assert seen[0] == ("status", 200, "text/event-stream; charset=utf-8")
    states = [e[1]["status"] for e in seen if e[0] == "job"]
    assert states[0] == "queued" and states[-1] == "succeeded"
    job_ids = {e[1]["job_id"] for e in seen[1:]}
    assert len(job_ids) == 1  # one job, every event about it
    progress = [e[1]["progress"] for e in seen if e[0] == "progress"]
    assert progress and progress == sorted(progress) and progress[-1] == 1.0
    master_id = next(
        e[1]["master_id"] for e in seen if e[0] == "job" and e[1]["status"] == "succeeded"
    )
    assert admin.get(f"{API}/frames/{master_id}").json()["status"] == "active"
