"""Helpers for the API tests: FITS files of a realistic camera, uploads over HTTP, and
callers in every role of SPEC §8."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
from astropy.io import fits

from calib_stack import synthetic

API = "/api/v1/calibration"
CAMERA = synthetic.Camera(name="ZWO ASI294MM Pro", width=64, height=48)


def camera(gain: float = 100, name: str = CAMERA.name) -> synthetic.Camera:
    return synthetic.Camera(name=name, width=64, height=48, gain=gain, offset=CAMERA.offset)


def frame_bytes(
    frame_type: str,
    *,
    index: int = 0,
    gain: float = 100,
    filter_name: str | None = None,
    exposure_s: float = 60.0,
    temperature_c: float = -10.0,
    camera_name: str = CAMERA.name,
    seed: int = 0,
) -> bytes:
    """A small N.I.N.A.-style frame; ``index`` and ``seed`` make each file distinct."""
    rng = np.random.default_rng(seed * 1000 + index)
    cam = camera(gain, camera_name)
    if frame_type == "flat":
        data = synthetic.flat_frame(
            cam,
            filter_name=filter_name,
            exposure_s=exposure_s,
            temperature_c=temperature_c,
            rng=rng,
        )
    elif frame_type == "light":
        data, _ = synthetic.light_frame(
            cam,
            filter_name=filter_name,
            exposure_s=exposure_s,
            temperature_c=temperature_c,
            rng=rng,
        )
    elif frame_type == "bias":
        data = synthetic.bias_frame(cam, rng=rng)
    else:
        data = synthetic.dark_frame(
            cam, exposure_s=exposure_s, temperature_c=temperature_c, rng=rng
        )
    header = synthetic.nina_header(
        frame_type=frame_type,
        camera=cam,
        exposure_s=exposure_s,
        temperature_c=temperature_c,
        set_temperature_c=temperature_c,
        filter_name=filter_name,
        captured_at=datetime.now(UTC) - timedelta(minutes=100 - index),
    )
    return synthetic.fits_bytes(data, header)


def master_bytes(
    frame_type: str = "dark",
    *,
    exposure_s: float = 60.0,
    temperature_c: float = -10.0,
    gain: float = 100,
    filter_name: str | None = None,
    level: float = 500.0,
    seed: int = 0,
) -> bytes:
    """A float32 master as another tool would make it (IMAGETYP 'MASTER DARK', NCOMBINE)."""
    rng = np.random.default_rng(seed)
    data = (level + rng.normal(0, 1, size=(48, 64))).astype(np.float32)
    header = fits.Header()
    header["IMAGETYP"] = f"MASTER {frame_type.upper()}"
    header["INSTRUME"] = CAMERA.name
    header["EXPTIME"] = exposure_s
    header["GAIN"] = gain
    header["OFFSET"] = CAMERA.offset
    header["XBINNING"] = 1
    header["YBINNING"] = 1
    header["CCD-TEMP"] = temperature_c
    header["NCOMBINE"] = 20
    if filter_name:
        header["FILTER"] = filter_name
    buffer = io.BytesIO()
    fits.PrimaryHDU(data=data, header=header).writeto(buffer)
    return buffer.getvalue()


def upload_frame(
    client: httpx.Client, observatory_id: str | None, data: bytes, **fields
) -> httpx.Response:
    form = {k: str(v) for k, v in fields.items()}
    if observatory_id is not None:
        form["observatory_id"] = observatory_id
    return client.post(
        f"{API}/frames", data=form, files={"file": ("frame.fits", data, "application/fits")}
    )


def upload_master(
    client: httpx.Client, observatory_id: str, data: bytes, **fields
) -> httpx.Response:
    form = {"observatory_id": observatory_id, **{k: str(v) for k, v in fields.items()}}
    return client.post(
        f"{API}/masters/upload",
        data=form,
        files={"file": ("master.fits", data, "application/fits")},
    )


def library(client: httpx.Client, observatory_id: str, **params) -> dict:
    response = client.get(f"{API}/library/{observatory_id}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def put_settings(client: httpx.Client, observatory_id: str, **changes) -> None:
    response = client.put(f"{API}/settings/{observatory_id}", json=changes)
    assert response.status_code == 200, response.text


def create_observatory(admin: httpx.Client, observatory_id: str) -> str:
    response = admin.post(
        "/api/v1/admin/observatories", json={"id": observatory_id, "name": observatory_id}
    )
    assert response.status_code == 201, response.text
    return observatory_id


@dataclass
class Callers:
    """A client per role of SPEC §8, for one observatory (``own``) and another (``other``)."""

    own: str
    other: str
    clients: dict[str, httpx.Client]

    def __getitem__(self, role: str) -> httpx.Client:
        return self.clients[role]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


ROLES = ("no_token", "forged", "plugin", "viewer", "other_admin", "obs_admin", "server_admin")


# -- SPEC §8 permissions, route by route: the specification both the route tests (over
# fakes) and the end-to-end sweep (tests/integration/test_permissions.py) check ----------
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
    path: str  # placeholders: {own} {frame} {light} {master} {job} {user} {missing} (an id
    # of nothing) and per call {fresh_*}
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
    Row("POST", f"{API}/uploads", "register", 201, body="json:upload"),
    Row("DELETE", f"{API}/frames/{{fresh_master}}", "manage", 204),
    Row("POST", f"{API}/frames/{{frame}}/release", "manage", 200),
    Row("POST", f"{API}/frames/release", "manage", 200, body="json:release"),
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
    Row("GET", f"{ADMIN}/dead-letters", "server", 200),
    Row("POST", f"{ADMIN}/dead-letters/{{missing}}/replay", "server", 404, note="no such letter"),
    Row("GET", "/api/v1/me", "authenticated", 200),
    Row("GET", "/healthz", "public", 200),
    Row("GET", "/api/openapi.json", "public", 200),
]


def expected(row: Row, role: str) -> int:
    if row.capability != "public" and role in ("no_token", "forged"):
        return 401
    return row.ok if role in ALLOWED[row.capability] else 403


def callers(admin: httpx.Client, own: str, other: str) -> Callers:
    """Users and tokens for every role; ``server_admin`` is a created user, not the
    bootstrap one."""

    def user(name: str, server_admin: bool = False, memberships=()) -> str:
        response = admin.post(
            "/api/v1/admin/users",
            json={"name": name, "server_admin": server_admin, "memberships": list(memberships)},
        )
        assert response.status_code == 201, response.text
        return response.json()["token"]

    plugin = admin.post(f"/api/v1/admin/observatories/{own}/plugin-tokens")
    assert plugin.status_code == 201, plugin.text
    tokens = {
        "no_token": None,
        "forged": "calib_" + "x" * 43,
        "plugin": plugin.json()["token"],
        "viewer": user("viewer", memberships=[{"observatory_id": own, "can_admin": False}]),
        "other_admin": user(
            "other admin", memberships=[{"observatory_id": other, "can_admin": True}]
        ),
        "obs_admin": user(
            "observatory admin", memberships=[{"observatory_id": own, "can_admin": True}]
        ),
        "server_admin": user("server admin", server_admin=True),
    }
    clients = {
        role: httpx.Client(
            base_url=str(admin.base_url),
            timeout=30,
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )
        for role, token in tokens.items()
    }
    return Callers(own=own, other=other, clients=clients)
