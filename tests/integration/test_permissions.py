"""SPEC §8 permissions, endpoint by endpoint: every route of the OpenAPI document ×
{no token, forged token, plugin token, view-only member, observatory admin of another
observatory, observatory admin, server admin} → the expected status.

The table below is the specification; ``test_every_route_has_a_row`` fails when a
route is added without one."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.integration.api_helpers import (
    API,
    ROLES,
    callers,
    create_observatory,
    frame_bytes,
    library,
    master_bytes,
    upload_frame,
)
from tests.support.system import unique, wait_for

ADMIN = "/api/v1/admin"
#: Who passes each capability's check (the others get 403; without a valid token, 401).
ALLOWED = {
    "view": {"viewer", "obs_admin", "server_admin"},
    "capture_plan": {"plugin", "viewer", "obs_admin", "server_admin"},
    "register": {"plugin", "obs_admin", "server_admin"},
    "manage": {"obs_admin", "server_admin"},
    "server": {"server_admin"},
    "public": set(ROLES),
    "authenticated": {"plugin", "viewer", "other_admin", "obs_admin", "server_admin"},
}


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # placeholders: {own} {frame} {light} {master} {job} {user} and per call {fresh_*}
    capability: str
    ok: int  # the status an allowed caller gets
    body: str | None = None  # "json:<name>", "frame" or "master" (multipart), or None
    note: str = ""


ROWS = [
    Row("GET", f"{API}/library/{{own}}", "view", 200),
    Row("GET", f"{API}/summary/{{own}}", "view", 200),
    Row("GET", f"{API}/needs/{{own}}", "view", 200),
    Row("GET", f"{API}/capture-plan/{{own}}", "capture_plan", 200),
    Row("GET", f"{API}/events/{{own}}", "view", 200, note="a stream: only its status is read"),
    Row("GET", f"{API}/frames/{{frame}}", "view", 200),
    Row("GET", f"{API}/frames/{{frame}}/download", "view", 200),
    Row("GET", f"{API}/frames/{{master}}/components", "view", 200),
    Row("GET", f"{API}/frames/{{master}}/preview.png", "view", 200),
    Row("GET", f"{API}/frames/{{light}}/calibrated", "view", 409, note="no masters for the light"),
    Row("GET", f"{API}/settings/{{own}}", "view", 200),
    Row("PUT", f"{API}/settings/{{own}}", "manage", 200, body="json:settings"),
    Row("GET", f"{API}/jobs/{{own}}", "manage", 200),
    Row("GET", f"{API}/rejections/{{own}}", "manage", 200),
    Row(
        "POST",
        f"{API}/jobs/{{job}}/retry",
        "manage",
        409,
        note="the job succeeded: nothing to retry",
    ),
    Row("DELETE", f"{API}/jobs/{{job}}", "server", 409, note="only failed jobs can be deleted"),
    Row("POST", f"{API}/masters/create", "manage", 404, body="json:create", note="no bias frames"),
    Row("POST", f"{API}/masters/upload", "manage", 201, body="master"),
    Row("POST", f"{API}/frames", "register", 202, body="frame"),
    Row("DELETE", f"{API}/frames/{{fresh_master}}", "manage", 204),
    Row("POST", f"{API}/cache/clear?observatory_id={{own}}", "server", 200),
    Row("POST", f"{API}/maintenance/expiry-check?observatory_id={{own}}", "server", 200),
    Row("POST", f"{API}/maintenance/retention-cleanup?observatory_id={{own}}", "server", 200),
    Row("GET", f"{API}/health", "server", 200),
    Row("GET", f"{ADMIN}/observatories", "server", 200),
    Row("POST", f"{ADMIN}/observatories", "server", 201, body="json:observatory"),
    Row("GET", f"{ADMIN}/users", "server", 200),
    Row("POST", f"{ADMIN}/users", "server", 201, body="json:user"),
    Row("POST", f"{ADMIN}/users/{{user}}/tokens", "server", 201),
    Row("POST", f"{ADMIN}/observatories/{{own}}/plugin-tokens", "server", 201),
    Row("DELETE", f"{ADMIN}/tokens/{{fresh_token}}", "server", 204),
    Row("GET", "/api/v1/me", "authenticated", 200),
    Row("GET", "/healthz", "public", 200),
    Row("GET", "/api/openapi.json", "public", 200),
]


def expected(row: Row, role: str) -> int:
    if row.capability != "public" and role in ("no_token", "forged"):
        return 401
    return row.ok if role in ALLOWED[row.capability] else 403


@dataclass
class World:
    own: str
    other: str
    frame: str
    light: str
    master: str
    job: str
    user: str
    admin: httpx.Client
    counter: itertools.count

    def fresh_master(self) -> str:
        response = self.admin.post(
            f"{API}/masters/upload",
            data={"observatory_id": self.own},
            files={"file": ("m.fits", master_bytes(seed=next(self.counter)))},
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def fresh_token(self) -> str:
        response = self.admin.post(f"{ADMIN}/observatories/{self.own}/plugin-tokens")
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def body(self, kind: str | None) -> dict[str, Any]:
        n = next(self.counter)
        if kind is None:
            return {}
        if kind == "frame":
            return {
                "data": {"observatory_id": self.own},
                "files": {"file": ("f.fits", frame_bytes("dark", index=n, seed=900))},
            }
        if kind == "master":
            return {
                "data": {"observatory_id": self.own},
                "files": {"file": ("m.fits", master_bytes(seed=1000 + n))},
            }
        return {
            "json": {
                "json:settings": {"min_frames_for_master": 10},
                "json:create": {"observatory_id": self.own, "frame_type": "bias", "force": True},
                "json:observatory": {"id": unique("perm"), "name": "permissions"},
                "json:user": {"name": f"user {n}"},
            }[kind]
        }

    def url(self, template: str) -> str:
        values = {
            name: getattr(self, name) for name in ("own", "frame", "light", "master", "job", "user")
        }
        if "{fresh_master}" in template:
            values["fresh_master"] = self.fresh_master()
        if "{fresh_token}" in template:
            values["fresh_token"] = self.fresh_token()
        return template.format(**values)


@pytest.fixture(scope="module")
def world(admin):
    own = create_observatory(admin, unique("own"))
    other = create_observatory(admin, unique("other"))
    for index in range(3):
        assert (
            upload_frame(admin, own, frame_bytes("dark", index=index, seed=500)).status_code == 202
        )
    assert (
        upload_frame(
            admin, own, frame_bytes("light", filter_name="L", exposure_s=300.0)
        ).status_code
        == 202
    )
    wait_for(lambda: library(admin, own)["total"] == 4, timeout_s=30, what="the frames")
    frame = library(admin, own, frame_type="dark")["items"][0]["id"]
    light = library(admin, own, frame_type="light")["items"][0]["id"]
    created = admin.post(
        f"{API}/masters/create", json={"observatory_id": own, "frame_type": "dark", "force": True}
    )
    assert created.status_code == 202, created.text
    job = created.json()["id"]
    wait_for(
        lambda: admin.get(f"{API}/jobs/{own}").json()["items"][0]["status"] == "succeeded",
        timeout_s=60,
        what="the manual job",
    )
    user = admin.post(f"{ADMIN}/users", json={"name": "someone"}).json()["id"]
    world = World(
        own=own,
        other=other,
        frame=frame,
        light=light,
        master="",
        job=job,
        user=user,
        admin=admin,
        counter=itertools.count(),
    )
    world.master = world.fresh_master()
    wait_for(
        lambda: admin.get(f"{API}/frames/{world.master}").json()["preview_key"],
        timeout_s=30,
        what="the uploaded master's preview",
    )
    return world


@pytest.fixture(scope="module")
def roles(admin, world):
    clients = callers(admin, world.own, world.other)
    yield clients
    clients.close()


def call(client: httpx.Client, row: Row, world: World) -> int:
    url = world.url(row.path)
    if row.path.startswith(f"{API}/events/"):
        with client.stream(row.method, url) as response:
            return response.status_code
    return client.request(row.method, url, **world.body(row.body)).status_code


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.method} {r.path}")
def test_permission_matrix(row, world, roles):
    got = {role: call(roles[role], row, world) for role in ROLES}
    want = {role: expected(row, role) for role in ROLES}
    assert got == want


def _shape(method: str, path: str) -> tuple[str, str]:
    return method.upper(), re.sub(r"\{[^}]*\}", "{}", path.split("?")[0])


def test_every_route_has_a_row(admin):
    document = admin.get("/api/openapi.json").json()
    routes = {
        _shape(method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }
    covered = {_shape(row.method, row.path) for row in ROWS}
    assert routes - covered == set(), "routes without a row in the permission matrix"
    assert covered - routes == {("GET", "/healthz"), ("GET", "/api/openapi.json")}
