"""SPEC §8 permissions end to end: every route × {no token, forged token, plugin token,
view-only member, observatory admin of another observatory, observatory admin, server
admin} → the expected status, against the running system.

The table is ``tests.integration.api_helpers.ROWS``; the route tests
(tests/unit/gateway/test_routes_permissions.py) check it over the fakes, and that every
route of the OpenAPI document has a row."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.integration.api_helpers import (
    ADMIN,
    API,
    ROLES,
    ROWS,
    Row,
    callers,
    create_observatory,
    expected,
    frame_bytes,
    library,
    master_bytes,
    upload_frame,
)
from tests.support.system import unique, wait_for


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
                "json:release": {"frame_ids": [self.frame]},
                "json:upload": {"observatory_id": self.own, "filename": f"dark-{n}.fits"},
                "json:observatory": {"id": unique("perm"), "name": "permissions"},
                "json:user": {"name": f"user {n}"},
            }[kind]
        }

    def url(self, template: str) -> str:
        values = {
            name: getattr(self, name) for name in ("own", "frame", "light", "master", "job", "user")
        }
        values["missing"] = "no-such-id"  # an id that names nothing
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
