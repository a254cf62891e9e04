"""Dead letters over the fakes (SPEC §12): server admins list them and replay them; the
health report counts those waiting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from calib_app import dead_letters as office
from calib_app.dead_letters import Received
from tests.unit.app.library_world import dead_letter_office_of
from tests.unit.gateway.harness import ADMIN, API, OWN, Api

SUBJECT = f"stack.requested.{OWN}"


@pytest.fixture
def letters(api: Api) -> Iterator[Api]:
    """The api with no dead letter yet (its world is shared by the module's tests)."""
    api.world.dead_letters.collection.documents.clear()
    api.world.replays.published.clear()
    yield api
    api.world.replays.down = False


async def dead_letter(api: Api, n: int, body: bytes | None = None) -> str:
    """A message of ``stack.requested`` that failed for good; its dead letter's id."""
    message = Received(
        "stacker", SUBJECT, body or f'{{"job_id": "j{n}"}}'.encode(), stream_sequence=n
    )
    await office.failed(dead_letter_office_of(api.world, max_deliveries=1), message, "boom")
    api.world.clock.advance(seconds=1)
    return message.letter_id


async def test_dead_letters_are_listed_newest_first(letters):
    api = letters
    first = await dead_letter(api, 1)
    second = await dead_letter(api, 2, body=b'{"job_id": "\xff"')  # not UTF-8: shown replaced

    items = (await api.ok("GET", f"{ADMIN}/dead-letters"))["items"]

    assert [item["id"] for item in items] == [second, first]
    assert items[1] == {
        "id": first,
        "consumer": "stacker",
        "subject": SUBJECT,
        "observatory_id": OWN,
        "body": '{"job_id": "j1"}',
        "body_size": 16,
        "status": "dead",
        "attempts": 1,
        "error": "boom",
        "permanent": False,
        "first_seen": items[1]["last_seen"],
        "last_seen": items[1]["first_seen"],
        "stream_sequence": 1,
        "replays": 0,
        "replayed_at": None,
        "replay_msg_id": None,
    }
    assert items[0]["body"] == '{"job_id": "\ufffd"'
    only = await api.ok("GET", f"{ADMIN}/dead-letters", params={"status": "retrying"})
    assert only == {"items": []}
    assert (await api.get(f"{ADMIN}/dead-letters", params={"status": "lost"})).status_code == 400
    assert (await api.get(f"{ADMIN}/dead-letters", params={"limit": 0})).status_code == 400


async def test_a_replay_republishes_the_message_and_marks_the_letter(letters):
    api = letters
    letter_id = await dead_letter(api, 3)

    response = await api.post(f"{ADMIN}/dead-letters/{letter_id}/replay")

    assert response.status_code == 202, response.text
    replayed = response.json()
    assert replayed["status"] == "replayed" and replayed["replays"] == 1
    [published] = api.world.replays.published
    assert (published.subject, published.body) == (SUBJECT, b'{"job_id": "j3"}')
    assert replayed["replay_msg_id"] == published.msg_id
    listed = (await api.ok("GET", f"{ADMIN}/dead-letters"))["items"]
    assert [(item["id"], item["status"]) for item in listed] == [(letter_id, "replayed")]


async def test_replaying_what_is_no_dead_letter_is_a_404(letters):
    response = await letters.post(f"{ADMIN}/dead-letters/nothing/replay")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "dead letter 'nothing' not found"}
    assert letters.world.replays.published == []


async def test_a_replay_without_the_bus_is_a_503_and_changes_nothing(letters):
    api = letters
    letter_id = await dead_letter(api, 4)
    api.world.replays.down = True
    response = await api.post(f"{ADMIN}/dead-letters/{letter_id}/replay")
    assert response.status_code == 503 and response.json()["dependency"] == "nats"
    [item] = (await api.ok("GET", f"{ADMIN}/dead-letters"))["items"]
    assert item["status"] == "dead" and item["replays"] == 0


@pytest.mark.parametrize("role", ["plugin", "viewer", "obs_admin", "other_admin"])
async def test_only_server_admins_see_and_replay_dead_letters(letters, role):
    api = letters
    letter_id = await dead_letter(api, 5)
    assert (await api.get(f"{ADMIN}/dead-letters", role=role)).status_code == 403
    response = await api.post(f"{ADMIN}/dead-letters/{letter_id}/replay", role=role)
    assert response.status_code == 403
    assert (await api.get(f"{ADMIN}/dead-letters", role="no_token")).status_code == 401
    assert api.world.replays.published == []


async def test_health_counts_the_dead_letters_waiting(letters):
    api = letters
    assert (await api.ok("GET", f"{API}/health"))["dead_letters"] == 0
    first = await dead_letter(api, 6)
    await dead_letter(api, 7)
    await api.post(f"{ADMIN}/dead-letters/{first}/replay")
    assert (await api.ok("GET", f"{API}/health"))["dead_letters"] == 1
