"""``POST /uploads`` over the fakes (SPEC §8, §12): a presigned PUT for a server-chosen key
under ``frames/<observatory>/``, for the observatory's plugin, its admins and server
admins; every refusal in the one error shape, with nothing recorded."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from calib_core.presigned import UPLOAD_URL_LIFETIME
from tests.unit.gateway.harness import API, OTHER, OWN, Api

UPLOADS = f"{API}/uploads"


def pending_keys(api: Api) -> set[str]:
    return set(api.world.pending_uploads.collection.documents)


@pytest.mark.parametrize("role", ["plugin", "obs_admin", "server_admin"])
async def test_the_plugin_and_admins_get_an_upload_url(api: Api, role):
    response = await api.post(
        UPLOADS, role=role, json={"observatory_id": OWN, "filename": "dark_001.fits"}
    )
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert set(ticket) == {"storage_key", "upload_url", "expires_at"}
    assert ticket["storage_key"].startswith(f"frames/{OWN}/")
    assert ticket["storage_key"].endswith("/dark_001.fits")
    assert ticket["upload_url"].startswith(f"https://s3.fake/bucket/{ticket['storage_key']}?")
    expires_at = datetime.fromisoformat(ticket["expires_at"])
    assert (
        expires_at
        == api.world.now() + UPLOAD_URL_LIFETIME
        == api.world.now() + timedelta(minutes=15)
    )
    assert ticket["storage_key"] in pending_keys(api)


async def test_a_hostile_file_name_stays_inside_the_observatorys_prefix(api: Api):
    for name in ("../../masters/obs-other/m.fits", "..", "a/../../b\x00\n.fits", "x" * 1024):
        ticket = await api.ok("POST", UPLOADS, json={"observatory_id": OWN, "filename": name})
        folder, unique, safe = ticket["storage_key"].rsplit("/", 2)
        assert folder == f"frames/{OWN}" and len(unique) == 32
        assert ".." not in safe and len(safe) <= 100 and safe.isprintable()


@pytest.mark.parametrize(
    ("role", "observatory_id", "status", "error"),
    [
        ("plugin", OTHER, 403, "forbidden"),  # a plugin registers for its own observatory only
        ("other_admin", OWN, 403, "forbidden"),
        ("viewer", OWN, 403, "forbidden"),  # a member without can_admin may only look
        ("plugin", "nowhere", 403, "forbidden"),
        ("obs_admin", "nowhere", 403, "forbidden"),
        ("server_admin", "nowhere", 404, "not_found"),
        ("no_token", OWN, 401, "unauthorized"),
        ("forged", OWN, 401, "unauthorized"),
    ],
)
async def test_others_are_refused_and_nothing_is_recorded(
    api: Api, role, observatory_id, status, error
):
    before = pending_keys(api)
    response = await api.post(
        UPLOADS, role=role, json={"observatory_id": observatory_id, "filename": "dark.fits"}
    )
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and body["detail"]
    assert pending_keys(api) == before


async def test_a_caller_who_may_register_nowhere_is_refused_before_the_body_is_read(api: Api):
    response = await api.post(UPLOADS, role="viewer", content=b"{not json at all")
    assert response.status_code == 403, response.text
    assert response.json() == {
        "error": "forbidden",
        "detail": "not allowed to register any observatory",
    }


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"observatory_id": OWN}, "filename"),
        ({"filename": "dark.fits"}, "observatory_id"),
        ({"observatory_id": OWN, "filename": ""}, "filename"),
        ({"observatory_id": OWN, "filename": "x" * 1025}, "filename"),
        ({"observatory_id": OWN, "filename": 12}, "filename"),
        ({"observatory_id": {"$ne": None}, "filename": "dark.fits"}, "observatory_id"),
        ({"observatory_id": OWN, "filename": "d.fits", "storage_key": "frames/x"}, "storage_key"),
        ([OWN, "dark.fits"], "object"),
    ],
)
async def test_a_bad_body_is_a_422_naming_what_is_wrong(api: Api, body, words):
    before = pending_keys(api)
    response = await api.post(UPLOADS, json=body)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["error"] == "unprocessable" and words in answer["detail"]
    assert set(answer) == {"error", "detail"}
    assert pending_keys(api) == before


async def test_a_body_that_is_not_json_is_a_400(api: Api):
    response = await api.post(
        UPLOADS, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"


async def test_the_route_is_in_the_openapi_document(api: Api):
    document = await api.ok("GET", "/api/openapi.json")
    operation = document["paths"][UPLOADS]["post"]
    assert set(operation["responses"]) >= {"201", "401", "403", "404", "422"}
    [success] = operation["responses"]["201"]["content"].values()
    schema = success["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert set(schema["properties"]) == {"storage_key", "upload_url", "expires_at"}
    [body] = operation["requestBody"]["content"].values()
    request = body["schema"]
    if "$ref" in request:
        request = document["components"]["schemas"][request["$ref"].rsplit("/", 1)[-1]]
    assert set(request["required"]) == {"observatory_id", "filename"}
