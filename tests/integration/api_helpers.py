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
