"""The walking skeleton through real NATS, S3 and the MongoDB-wire server, with every
service a real process: frames in, master out."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
from astropy.io import fits
from astropy.stats import sigma_clip

from calib_stack import synthetic
from tests.support.system import wait_for

CAMERA = synthetic.Camera(name="ZWO ASI294MM Pro", width=96, height=64)


def dark_bytes(rng: np.random.Generator, index: int, exposure_s: float = 30.0) -> bytes:
    data = synthetic.dark_frame(CAMERA, exposure_s=exposure_s, temperature_c=-10.0, rng=rng)
    header = synthetic.nina_header(
        frame_type="dark",
        camera=CAMERA,
        exposure_s=exposure_s,
        temperature_c=-10.0 + 0.05 * (index % 3),
        set_temperature_c=-10.0,
        captured_at=datetime.now(UTC) - timedelta(minutes=60 - index),
    )
    return synthetic.fits_bytes(data, header)


def masters(admin, observatory_id: str) -> list[dict]:
    response = admin.get(
        f"/api/v1/calibration/library/{observatory_id}", params={"is_master": "true"}
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]


def fits_pixels(content: bytes) -> np.ndarray:
    with fits.open(io.BytesIO(content)) as hdul:
        return np.asarray(hdul[0].data, dtype=np.float64)


def test_darks_become_a_master_equal_to_astropy_sigma_clip(admin, plugin, observatory):
    rng = np.random.default_rng(7)
    for index in range(10):
        plugin.register(observatory, dark_bytes(rng, index))

    master = wait_for(lambda: masters(admin, observatory), timeout_s=90, what="a master")[0]
    assert master["frame_type"] == "dark"
    assert master["status"] == "active"
    assert master["n_frames"] == 10
    assert master["exposure_s"] == 30.0
    assert master["camera_name"] == CAMERA.name

    components = admin.get(f"/api/v1/calibration/frames/{master['id']}/components").json()
    assert components["master_id"] == master["id"]
    assert len(components["items"]) == 10
    cube = np.stack(
        [
            fits_pixels(admin.get(f"/api/v1/calibration/frames/{c['id']}/download").content)
            for c in components["items"]
        ]
    )
    expected = sigma_clip(
        cube, sigma=3.0, maxiters=5, axis=0, cenfunc="median", stdfunc="std"
    ).mean(axis=0)

    download = admin.get(f"/api/v1/calibration/frames/{master['id']}/download")
    assert download.status_code == 200
    assert "attachment" in download.headers["content-disposition"]
    with fits.open(io.BytesIO(download.content)) as hdul:
        header = hdul[0].header
        pixels = np.asarray(hdul[0].data, dtype=np.float64)
    assert hdul[0].header["BITPIX"] == -32
    assert header["NCOMBINE"] == 10
    assert header["CALMETH"] == "sigma_clip"
    np.testing.assert_allclose(pixels, expected, rtol=1e-6)

    preview = admin.get(f"/api/v1/calibration/frames/{master['id']}/preview.png")
    assert preview.status_code == 200
    assert preview.content[:8] == b"\x89PNG\r\n\x1a\n"

    # the frames are now claimed: an unclaimed-only view of the library is empty
    unclaimed = admin.get(
        f"/api/v1/calibration/library/{observatory}",
        params={"is_master": "false", "exclude_mastered": "true"},
    ).json()
    assert unclaimed["total"] == 0


def test_a_newer_master_supersedes_the_previous_one(admin, plugin, observatory):
    rng = np.random.default_rng(11)
    for index in range(10):
        plugin.register(observatory, dark_bytes(rng, index))
    first = wait_for(lambda: masters(admin, observatory), timeout_s=90, what="first master")[0]
    for index in range(10, 20):
        plugin.register(observatory, dark_bytes(rng, index))

    def superseded():
        items = {m["id"]: m for m in masters(admin, observatory)}
        return items if len(items) == 2 and items[first["id"]]["status"] == "superseded" else None

    items = wait_for(superseded, timeout_s=90, what="supersession")
    second = next(m for m in items.values() if m["id"] != first["id"])
    assert second["status"] == "active"
    assert second["n_frames"] == 20  # the full retained frame set, not only the new frames
    assert items[first["id"]]["superseded_by"] == second["id"]
    assert items[first["id"]]["superseded_at"] is not None
