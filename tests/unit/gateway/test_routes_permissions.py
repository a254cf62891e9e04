"""SPEC §8 permissions over the fakes: every route × every role → the status of the table
in ``tests.integration.api_helpers`` (which the end-to-end sweep checks too), and every
route of the OpenAPI document has a row."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from calib_app import access as admin
from calib_core.models import FrameType, JobStatus
from tests.integration.api_helpers import (
    ROLES,
    ROWS,
    Row,
    expected,
    frame_bytes,
    master_bytes,
)
from tests.unit.app.library_world import stored
from tests.unit.core import factories as make
from tests.unit.gateway.harness import API, OWN, Api


def master_of(observatory_id: str) -> Any:
    """A master with a preview, of another camera than the frames (the light has none)."""
    master_id = make.next_id("u")
    return make.master(
        id=master_id,
        camera_name="QHY 268M",
        observatory_id=observatory_id,
        storage_key=f"masters/{observatory_id}/{master_id}.fits",
        preview_key=f"previews/{observatory_id}/{master_id}.png",
    )


@dataclass
class Seeded:
    """What the table's placeholders name, stored in the api's world."""

    api: Api
    frame: str = ""
    light: str = ""
    master: str = ""
    job: str = ""
    user: str = ""
    own: str = OWN
    counter: itertools.count = field(default_factory=itertools.count)

    async def seed(self) -> None:
        world = self.api.world
        dark = make.frame(observatory_id=OWN, storage_key=f"frames/{OWN}/dark.fits")
        light = make.frame(
            FrameType.LIGHT, observatory_id=OWN, storage_key=f"frames/{OWN}/light.fits"
        )
        self.frame = (await stored(world, dark)).id
        self.light = (await stored(world, light)).id
        self.master = (await stored(world, master_of(OWN))).id
        job = make.job(observatory_id=OWN, id=make.next_id("job"), status=JobStatus.QUEUED)
        await world.jobs.create(job)
        await world.jobs.finish(job.id, JobStatus.SUCCEEDED, world.now())
        self.job = job.id
        user, _ = await admin.create_user(
            self.api.access, name="someone", server_admin=False, memberships=[]
        )
        self.user = user.id

    async def url(self, template: str) -> str:
        values = {n: getattr(self, n) for n in ("own", "frame", "light", "master", "job", "user")}
        values["missing"] = "no-such-id"  # an id that names nothing
        if "{fresh_master}" in template:
            values["fresh_master"] = (await stored(self.api.world, master_of(OWN))).id
        if "{fresh_token}" in template:
            values["fresh_token"] = (await admin.plugin_token(self.api.access, OWN)).id
        return template.format(**values)

    def body(self, kind: str | None) -> dict[str, Any]:
        n = next(self.counter)
        if kind is None:
            return {}
        if kind in ("frame", "master"):
            data = frame_bytes("dark", index=n) if kind == "frame" else master_bytes(seed=n)
            return {"data": {"observatory_id": OWN}, "files": {"file": ("f.fits", data)}}
        return {
            "json": {
                "json:settings": {"min_frames_for_master": 10},
                "json:create": {"observatory_id": OWN, "frame_type": "bias", "force": True},
                "json:release": {"frame_ids": [self.frame]},
                "json:upload": {"observatory_id": OWN, "filename": f"dark-{n}.fits"},
                "json:observatory": {"id": f"perm-{n}", "name": "permissions"},
                "json:user": {"name": f"user {n}"},
            }[kind]
        }


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.method} {r.path}")
async def test_permission_matrix(row: Row, api: Api):
    seeded = Seeded(api)
    await seeded.seed()
    got = {}
    for role in ROLES:
        url = await seeded.url(row.path)
        response = await api.call(row.method, url, role=role, **seeded.body(row.body))
        got[role] = response.status_code
    assert got == {role: expected(row, role) for role in ROLES}


def _shape(method: str, path: str) -> tuple[str, str]:
    return method.upper(), re.sub(r"\{[^}]*\}", "{}", path.split("?")[0])


async def test_every_route_has_a_row(api: Api):
    document = (await api.get("/api/openapi.json")).json()
    routes = {
        _shape(method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }
    covered = {_shape(row.method, row.path) for row in ROWS}
    assert routes - covered == set(), "routes without a row in the permission matrix"
    assert covered - routes == {("GET", "/healthz"), ("GET", "/api/openapi.json")}


async def test_a_revoked_token_is_refused_and_public_paths_need_none(api: Api):
    """A token revoked after issue is a 401 on every route, like a forged one."""
    issued = await admin.plugin_token(api.access, OWN)
    api.tokens["revoked"] = issued.token
    await admin.revoke_token(api.access, issued.id)
    response = await api.get(f"{API}/capture-plan/{OWN}", role="revoked")
    assert response.status_code == 401 and response.json() == {
        "error": "unauthorized",
        "detail": "invalid or revoked token",
    }
    assert (await api.get("/healthz", role="revoked")).status_code == 200  # public
