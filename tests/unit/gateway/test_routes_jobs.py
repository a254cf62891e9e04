"""Jobs over the fakes: the list, manual creation at the thresholds, retries and deletion
by their rules, and the live event stream of the admin page."""

from __future__ import annotations

import json

import msgspec
import pytest

from calib_core import events
from calib_core.models import FrameType, JobStatus
from tests.unit.app.library_world import stored
from tests.unit.core import factories as make
from tests.unit.gateway.harness import API, OWN, Api


async def darks(api: Api, observatory_id: str, n: int, **overrides) -> None:
    for _ in range(n):
        frame_id = make.next_id()
        await stored(
            api.world,
            make.frame(
                FrameType.DARK,
                id=frame_id,
                observatory_id=observatory_id,
                storage_key=f"frames/{observatory_id}/{frame_id}.fits",
                exposure_s=30.0,
                **overrides,
            ),
        )


async def create(api: Api, observatory: str, role: str = "server_admin", **body):
    request = {"observatory_id": observatory, "frame_type": "dark", "exposure_s": 30.0}
    return await api.post(f"{API}/masters/create", role=role, json={**request, **body})


async def failed_job(api: Api, observatory_id: str) -> str:
    job = make.job(
        id=make.next_id("job"),
        observatory_id=observatory_id,
        config_key=make.next_id("cfg"),
        status=JobStatus.QUEUED,
        attempts=1,
    )
    await api.world.jobs.create(job)
    await api.world.jobs.finish(job.id, JobStatus.FAILED, api.world.now(), error="lost frame")
    return job.id


async def test_manual_creation_at_the_thresholds(api):
    observatory_id = await api.observatory(min_frames_for_master=5)  # force needs 3
    response = await create(api, observatory_id, force=True)
    assert response.status_code == 404
    assert response.json()["detail"] == (
        "no frames match that configuration (held frames do not count)"
    )

    await darks(api, observatory_id, 2)
    response = await create(api, observatory_id)
    assert response.status_code == 422
    assert response.json() == {
        "error": "unprocessable",
        "detail": "the group has 2 frames to stack; 5 needed (use force to stack fewer)",
    }
    response = await create(api, observatory_id, force=True)
    assert (
        response.status_code == 422 and "2 frames to stack; 3 needed" in response.json()["detail"]
    )

    await darks(api, observatory_id, 1)
    response = await create(api, observatory_id, force=True)
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["trigger"], job["status"], len(job["frame_ids"])) == ("manual", "queued", 3)
    assert (await create(api, observatory_id, force=True)).json()["id"] == job["id"]  # still open
    requests = api.world.events.bodies(events.STACK_REQUESTED)
    assert [r.job_id for r in requests if r.observatory_id == observatory_id] == [job["id"]]
    listed = await api.ok("GET", f"{API}/jobs/{observatory_id}", params={"status": "queued"})
    assert [j["id"] for j in listed["items"]] == [job["id"]]
    assert (await api.ok("GET", f"{API}/jobs/{observatory_id}", params={"status": "failed"})) == {
        "items": []
    }


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"frame_type": "light"}, 400),
        ({"frame_type": "sky"}, 400),
        ({"colour": "blue"}, 400),
        ({"camera_name": {"$ne": None}}, 400),
        ({"observatory_id": "nowhere"}, 404),
    ],
)
async def test_a_creation_request_is_validated(api, body, status):
    response = await create(api, OWN, **body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error", "detail"}


async def test_only_managers_create_and_list_jobs(api):
    for role, status in (("viewer", 403), ("plugin", 403), ("other_admin", 403), ("forged", 401)):
        assert (await create(api, OWN, role=role)).status_code == status, role
        assert (await api.get(f"{API}/jobs/{OWN}", role=role)).status_code == status, role
    assert (await api.get(f"{API}/jobs/{OWN}", role="obs_admin")).status_code == 200


async def test_a_bad_status_filter_is_a_400(api):
    response = await api.get(f"{API}/jobs/{OWN}", params={"status": "lost"})
    assert response.status_code == 400


async def test_a_failed_job_is_retried_once_as_a_new_request(api):
    observatory_id = await api.observatory()
    job_id = await failed_job(api, observatory_id)
    assert (await api.post(f"{API}/jobs/no-such-job/retry")).status_code == 404
    response = await api.post(f"{API}/jobs/{job_id}/retry")
    assert response.status_code == 202, response.text
    assert (response.json()["status"], response.json()["trigger"]) == ("queued", "retry")
    message = api.world.events.published[-1]
    assert (message.kind, message.msg_id) == (events.STACK_REQUESTED, f"{job_id}-2")
    again = await api.post(f"{API}/jobs/{job_id}/retry")
    assert again.status_code == 409
    assert again.json()["detail"] == (
        f"job '{job_id}' is queued: only failed jobs can be retried "
        "(or the group already has an open job)"
    )


async def test_a_retry_is_for_the_managers_of_the_jobs_observatory(api):
    job_id = await failed_job(api, OWN)
    assert (await api.post(f"{API}/jobs/{job_id}/retry", role="viewer")).status_code == 403
    assert (await api.post(f"{API}/jobs/{job_id}/retry", role="other_admin")).status_code == 403
    assert (await api.post(f"{API}/jobs/{job_id}/retry", role="obs_admin")).status_code == 202


async def test_only_a_server_admin_deletes_and_only_failed_jobs(api):
    job_id = await failed_job(api, OWN)
    assert (await api.delete(f"{API}/jobs/{job_id}", role="obs_admin")).status_code == 403
    assert (await api.delete(f"{API}/jobs/nope")).status_code == 404
    assert (await api.delete(f"{API}/jobs/{job_id}")).status_code == 204
    assert await api.world.jobs.get(job_id) is None

    queued = await failed_job(api, OWN)
    await api.post(f"{API}/jobs/{queued}/retry")
    response = await api.delete(f"{API}/jobs/{queued}")
    assert response.status_code == 409
    assert response.json()["detail"] == "only failed jobs can be deleted (job is queued)"


def stream_events(body: str) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a server-sent event stream."""
    found, event = [], None
    for line in body.splitlines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event:
            found.append((event, json.loads(line.removeprefix("data: "))))
            event = None
    return found


async def test_the_event_stream_relays_job_states_and_progress(api):
    observatory_id = await api.observatory()
    publish = api.world.events.publish
    await publish(
        events.STACK_REQUESTED,
        events.StackRequested(job_id="j1", observatory_id=observatory_id, attempt=1),
        observatory_id=observatory_id,
        msg_id=None,
    )
    api.world.clock.advance(1)  # the feed relays in order of publication
    await api.world.events.publish_transient(
        events.STACK_PROGRESS,
        events.StackProgress(
            job_id="j1", observatory_id=observatory_id, progress=0.5, status="running"
        ),
        observatory_id=observatory_id,
    )
    api.world.clock.advance(1)
    await publish(
        events.MASTER_CREATED,
        events.MasterCreated(master_id="m1", observatory_id=observatory_id, job_id="j1"),
        observatory_id=observatory_id,
        msg_id=None,
    )
    api.feed.extra.append((f"stack.failed.{observatory_id}", b"not json"))  # skipped

    response = await api.get(f"{API}/events/{observatory_id}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.text.startswith(": connected")
    assert stream_events(response.text) == [
        ("job", {"job_id": "j1", "observatory_id": observatory_id, "status": "queued"}),
        (
            "progress",
            {
                "job_id": "j1",
                "observatory_id": observatory_id,
                "progress": 0.5,
                "status": "running",
            },
        ),
        (
            "job",
            {
                "job_id": "j1",
                "observatory_id": observatory_id,
                "status": "succeeded",
                "master_id": "m1",
            },
        ),
    ]
    assert api.feed.subscriptions[-1].closed


async def test_the_stream_is_permission_checked_and_needs_the_bus(api):
    for role, status in (("no_token", 401), ("plugin", 403), ("other_admin", 403)):
        assert (await api.get(f"{API}/events/{OWN}", role=role)).status_code == status, role
    assert (await api.get(f"{API}/events/nowhere")).status_code == 404
    api.feed.connected = False
    response = await api.get(f"{API}/events/{OWN}")
    assert response.status_code == 503
    assert response.json() == {
        "error": "unavailable",
        "detail": "nats is unavailable",
        "dependency": "nats",
    }


def test_stack_deferred_carries_its_reason():
    from calib_gateway.jobs.live import to_message

    body = msgspec.json.encode({"job_id": "j2", "observatory_id": "o", "reason": "no dark"})
    message = to_message("stack.deferred.o", body)
    assert message.event == "job"
    assert json.loads(message.data) == {
        "job_id": "j2",
        "observatory_id": "o",
        "status": "deferred",
        "reason": "no dark",
    }
    assert to_message("stack.deferred.o", b"[1]") is None
    assert to_message("frame.registered.o", body) is None
