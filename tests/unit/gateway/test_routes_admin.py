"""Server administration over the fakes: observatories, users, tokens and revocation,
and ``GET /me``."""

from __future__ import annotations

import pytest

from tests.unit.gateway.harness import ADMIN, API, OWN


async def test_observatories_are_created_once_and_listed(api):
    response = await api.post(f"{ADMIN}/observatories", json={"id": "north", "name": "North"})
    assert response.status_code == 201
    assert response.json() == {
        "id": "north",
        "name": "North",
        "created_at": api.world.now().isoformat().replace("+00:00", "Z"),
    }
    listed = await api.ok("GET", f"{ADMIN}/observatories")
    assert "north" in {o["id"] for o in listed["items"]}
    again = await api.post(f"{ADMIN}/observatories", json={"id": "north", "name": "x"})
    assert again.status_code == 409
    assert again.json() == {"error": "conflict", "detail": "observatory 'north' already exists"}


@pytest.mark.parametrize(
    "body",
    [
        {"id": "Bad Id", "name": "x"},
        {"id": "-dash", "name": "x"},
        {"id": "ok", "name": ""},
        {"id": "x" * 65, "name": "x"},
        {"id": {"$gt": ""}, "name": "x"},
        {"id": "ok", "name": "x", "colour": "blue"},
    ],
)
async def test_observatory_bodies_are_validated(api, body):
    response = await api.post(f"{ADMIN}/observatories", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_request"


async def test_users_tokens_and_revocation(api):
    created = await api.post(
        f"{ADMIN}/users",
        json={"name": "carol", "memberships": [{"observatory_id": OWN, "can_admin": False}]},
    )
    assert created.status_code == 201
    user = created.json()
    assert set(user) == {"id", "token", "token_id"}
    api.tokens["carol"] = user["token"]
    assert (await api.get(f"{API}/library/{OWN}", role="carol")).status_code == 200

    listed = {u["id"]: u for u in (await api.ok("GET", f"{ADMIN}/users"))["items"]}
    assert listed[user["id"]]["token_ids"] == [user["token_id"]]
    assert listed[user["id"]]["memberships"] == [{"observatory_id": OWN, "can_admin": False}]
    assert "token" not in listed[user["id"]] and user["token"] not in str(listed)

    assert (await api.delete(f"{ADMIN}/tokens/{user['token_id']}")).status_code == 204
    response = await api.get(f"{API}/library/{OWN}", role="carol")
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert (await api.delete(f"{ADMIN}/tokens/{user['token_id']}")).status_code == 204
    assert (await api.delete(f"{ADMIN}/tokens/nope")).status_code == 404

    fresh = await api.post(f"{ADMIN}/users/{user['id']}/tokens")
    assert fresh.status_code == 201 and set(fresh.json()) == {"token_id", "token"}
    api.tokens["carol"] = fresh.json()["token"]
    assert (await api.get(f"{API}/library/{OWN}", role="carol")).status_code == 200
    assert (await api.post(f"{ADMIN}/users/nope/tokens")).status_code == 404


async def test_memberships_and_plugin_tokens_name_existing_observatories(api):
    response = await api.post(
        f"{ADMIN}/users",
        json={"name": "x", "memberships": [{"observatory_id": "nowhere", "can_admin": True}]},
    )
    assert response.status_code == 404
    assert (await api.post(f"{ADMIN}/observatories/nowhere/plugin-tokens")).status_code == 404
    plugin = await api.post(f"{ADMIN}/observatories/{OWN}/plugin-tokens")
    assert plugin.status_code == 201
    assert plugin.json()["observatory_id"] == OWN and set(plugin.json()) == {
        "id",
        "token",
        "observatory_id",
    }
    assert (await api.post(f"{ADMIN}/users", json={"name": ""})).status_code == 400


async def test_me_tells_each_caller_who_it_is(api):
    viewer = await api.ok("GET", "/api/v1/me", role="viewer")
    assert viewer["name"] == "viewer" and not viewer["server_admin"]
    assert viewer["memberships"] == [{"observatory_id": OWN, "can_admin": False}]
    plugin = await api.ok("GET", "/api/v1/me", role="plugin")
    assert plugin["plugin_observatory"] == OWN and plugin["user_id"] is None
    assert (await api.ok("GET", "/api/v1/me"))["server_admin"] is True
    assert (await api.get("/api/v1/me", role="no_token")).status_code == 401
