"""SPEC §5–§6 against the running system: who may run maintenance, and DELETE
/frames/{id} end to end (permissions, files, the cache, events). Masters come from the
real pipeline (plugin → registry → stacker → lifecycle). Supersession, expiry, retention,
orphans and interrupted deletions are decided by the use cases, tested over fakes in
tests/unit/app (test_lifecycle, test_maintenance, test_deletion)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
import numpy as np
import pymongo
import pytest

from calib_core import events
from calib_infra import bus
from calib_infra.config import Config
from calib_stack import synthetic
from tests.support.plugin import Plugin
from tests.support.system import wait_for

API = "/api/v1/calibration"
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


# ---- helpers (also used by the calibration tests) -----------------------------------------------


def camera(name: str) -> synthetic.Camera:
    return synthetic.Camera(name=name, width=64, height=48)


def frame_file(
    cam: synthetic.Camera,
    frame_type: str,
    *,
    rng: np.random.Generator,
    captured_at: datetime,
    exposure_s: float = 30.0,
    temperature_c: float = -10.0,
    filter_name: str | None = None,
) -> bytes:
    """A synthetic N.I.N.A. frame (darks without cosmic rays: mean-stacked in these tests)."""
    if frame_type == "dark":
        data = synthetic.dark_frame(
            cam, exposure_s=exposure_s, temperature_c=temperature_c, rng=rng, cosmic_rays=False
        )
    elif frame_type == "flat":
        data = synthetic.flat_frame(
            cam,
            filter_name=filter_name,
            exposure_s=exposure_s,
            temperature_c=temperature_c,
            rng=rng,
        )
    elif frame_type == "bias":
        data = synthetic.bias_frame(cam, rng=rng)
    else:
        raise ValueError(frame_type)
    header = synthetic.nina_header(
        frame_type=frame_type,
        camera=cam,
        exposure_s=exposure_s,
        temperature_c=temperature_c,
        set_temperature_c=temperature_c,
        filter_name=filter_name,
        captured_at=captured_at,
    )
    return synthetic.fits_bytes(data, header)


def light_file(
    cam: synthetic.Camera,
    *,
    rng: np.random.Generator,
    captured_at: datetime,
    exposure_s: float = 30.0,
    temperature_c: float = -10.0,
    filter_name: str | None = "L",
    sky_adu_s: float = 2.0,
) -> tuple[bytes, np.ndarray]:
    """A light and its true signal (see synthetic.light_frame)."""
    raw, truth = synthetic.light_frame(
        cam,
        filter_name=filter_name,
        exposure_s=exposure_s,
        temperature_c=temperature_c,
        rng=rng,
        sky_adu_s=sky_adu_s,
    )
    header = synthetic.nina_header(
        frame_type="light",
        camera=cam,
        exposure_s=exposure_s,
        temperature_c=temperature_c,
        set_temperature_c=temperature_c,
        filter_name=filter_name,
        captured_at=captured_at,
    )
    return synthetic.fits_bytes(raw, header), truth


def register(plugin: Plugin, observatory_id: str, files: list[bytes]) -> list[str]:
    """Upload and announce frames in one batch, like the capture plugin; returns their keys."""
    batch = [plugin.uploaded(observatory_id, data) for data in files]
    plugin.announce([(event, event.event_id) for event in batch])
    return [event.storage_key for event in batch]


def put_settings(admin: httpx.Client, observatory_id: str, **changes) -> None:
    response = admin.put(f"{API}/settings/{observatory_id}", json=changes)
    assert response.status_code == 200, response.text


def library(admin: httpx.Client, observatory_id: str, **params) -> list[dict]:
    response = admin.get(f"{API}/library/{observatory_id}", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def masters(admin: httpx.Client, observatory_id: str) -> list[dict]:
    return library(admin, observatory_id, is_master="true")


def wait_masters(admin: httpx.Client, observatory_id: str, count: int, **match) -> list[dict]:
    """Wait until ``count`` masters (with the ``match`` field values) exist, oldest first."""

    def found():
        items = [
            m for m in masters(admin, observatory_id) if all(m[k] == v for k, v in match.items())
        ]
        return sorted(items, key=lambda m: m["created_at"]) if len(items) >= count else None

    return wait_for(found, timeout_s=90, what=f"{count} masters {match}")


def get_frame(admin: httpx.Client, frame_id: str) -> dict:
    response = admin.get(f"{API}/frames/{frame_id}")
    assert response.status_code == 200, response.text
    return response.json()


def light_id_for(admin: httpx.Client, observatory_id: str, storage_key: str) -> str:
    def find():
        return next(
            (
                f["id"]
                for f in library(admin, observatory_id, frame_type="light")
                if f["storage_key"] == storage_key
            ),
            None,
        )

    return wait_for(find, timeout_s=30, what="the light's registration")


def subject_count(config: Config, subject: str) -> int:
    """How many messages the stream holds on ``subject``."""

    async def count() -> int:
        connection = await bus.connect(config)
        try:
            info = await connection.jetstream().stream_info(
                events.STREAM_NAME, subjects_filter=subject
            )
            return (info.state.subjects or {}).get(subject, 0)
        finally:
            await connection.close()

    return asyncio.run(count())


def database(config: Config):
    return pymongo.MongoClient(config.mongodb_uri, tz_aware=True)[config.mongodb_db]


def darks(
    cam, rng, now: datetime, n: int = 3, temperature_c: float = -10.0, exposure_s: float = 30.0
):
    return [
        frame_file(
            cam,
            "dark",
            rng=rng,
            captured_at=now - (n - i) * MINUTE,
            temperature_c=temperature_c,
            exposure_s=exposure_s,
        )
        for i in range(n)
    ]


@pytest.fixture
def small_masters(admin, observatory):
    """An observatory whose masters are the mean of 3 frames (fast to make)."""
    put_settings(admin, observatory, min_frames_for_master=3, stacking_method="mean")
    return observatory


def test_maintenance_is_for_server_admins_and_known_observatories(admin, observatory):
    user = admin.post(
        "/api/v1/admin/users",
        json={
            "name": "observatory admin",
            "memberships": [{"observatory_id": observatory, "can_admin": True}],
        },
    ).json()
    with httpx.Client(
        base_url=str(admin.base_url), headers={"Authorization": f"Bearer {user['token']}"}
    ) as observatory_admin:
        for path in ("maintenance/expiry-check", "maintenance/retention-cleanup", "cache/clear"):
            assert (
                observatory_admin.post(
                    f"{API}/{path}", params={"observatory_id": observatory}
                ).status_code
                == 403
            )
    assert (
        admin.post(
            f"{API}/maintenance/expiry-check", params={"observatory_id": "no-such-obs"}
        ).status_code
        == 404
    )

    everything = admin.post(f"{API}/maintenance/expiry-check")  # every service is ready
    assert everything.status_code == 200 and everything.json()["observatory_id"] is None
    assert everything.json()["observatories"] >= 1


# ---- delete --------------------------------------------------------------------------------------


def test_delete_a_source_frame_a_master_and_a_light(admin, plugin, small_masters, system):
    obs, cam, rng = small_masters, camera("Delete Cam"), np.random.default_rng(6)
    now = datetime.now().astimezone()
    light_bytes, _ = light_file(cam, rng=rng, captured_at=now)
    light_key = register(plugin, obs, [*darks(cam, rng, now), light_bytes])[-1]
    master = wait_masters(admin, obs, 1)[0]
    light = light_id_for(admin, obs, light_key)
    assert admin.get(f"{API}/frames/{light}/calibrated").status_code == 200
    assert len(plugin.store.list_sync(f"calibrated/{obs}/")) == 1
    put_settings(
        admin, obs, min_frames_for_master=100
    )  # the sweep must not restack released frames

    assert admin.delete(f"{API}/frames/no-such-frame").status_code == 404
    member = admin.post(
        "/api/v1/admin/users",
        json={"name": "viewer", "memberships": [{"observatory_id": obs, "can_admin": False}]},
    ).json()
    with httpx.Client(
        base_url=str(admin.base_url), headers={"Authorization": f"Bearer {member['token']}"}
    ) as viewer:
        assert viewer.delete(f"{API}/frames/{master['id']}").status_code == 403
        assert viewer.get(f"{API}/frames/{master['id']}").status_code == 200

    source = get_frame(admin, master["components"][0])
    assert admin.delete(f"{API}/frames/{source['id']}").status_code == 204
    assert admin.get(f"{API}/frames/{source['id']}").status_code == 404
    assert plugin.store.stat_sync(source["storage_key"]) is None
    remaining = get_frame(admin, master["id"])["components"]
    assert sorted(remaining) == sorted(master["components"][1:])  # the master shrinks, stays intact

    assert admin.delete(f"{API}/frames/{master['id']}").status_code == 204
    assert admin.get(f"{API}/frames/{master['id']}").status_code == 404
    assert plugin.store.stat_sync(master["storage_key"]) is None
    assert plugin.store.stat_sync(master["preview_key"]) is None
    unclaimed = library(admin, obs, frame_type="dark", exclude_mastered="true")
    assert sorted(f["id"] for f in unclaimed) == sorted(remaining)
    view = get_frame(admin, light)
    assert (view["calibration_status"], view["calibration_masters"]) == ("no_masters", {})
    refused = admin.get(f"{API}/frames/{light}/calibrated")
    assert (refused.status_code, refused.json()["error"]) == (409, "no_masters")
    assert plugin.store.list_sync(f"calibrated/{obs}/") == []  # its cached file is gone
    assert subject_count(system.config, f"cache.invalidated.{obs}") == 1

    assert admin.delete(f"{API}/frames/{light}").status_code == 204
    assert plugin.store.stat_sync(light_key) is None
    assert subject_count(system.config, f"frame.deleted.{obs}") == 3
