"""XISF frames through the running system (issue 15 item 2): N.I.N.A. XISF darks,
uncompressed and compressed, registered through the plugin path, stacked into a FITS
master, and an XISF light calibrated into a FITS file."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
from astropy.io import fits

from calib_stack import synthetic
from tests.integration.test_lifecycle import (
    API,
    MINUTE,
    camera,
    get_frame,
    light_id_for,
    put_settings,
    register,
    wait_masters,
)
from tests.support.xisf import keywords_of, xisf_bytes

EXPOSURE_S = 30.0
#: how N.I.N.A. may save each dark: uncompressed, zlib and LZ4 with byte shuffling
STORAGE = [(None, False), ("zlib", True), ("lz4", True)]


def nina_xisf(cam, frame_type: str, pixels: np.ndarray, captured_at: datetime, **options) -> bytes:
    header = synthetic.nina_header(
        frame_type=frame_type,
        camera=cam,
        exposure_s=EXPOSURE_S,
        temperature_c=-10.0,
        set_temperature_c=-10.0,
        filter_name="L" if frame_type == "light" else None,
        captured_at=captured_at,
    )
    properties = [
        ("Instrument:Camera:Name", "String", cam.name),
        ("Instrument:ExposureTime", "Float32", EXPOSURE_S),
        ("Observation:Time:Start", "TimePoint", captured_at.isoformat()),
    ]
    return xisf_bytes(pixels, keywords=keywords_of(header), properties=properties, **options)


def fits_pixels(content: bytes) -> tuple[fits.Header, np.ndarray]:
    with fits.open(io.BytesIO(content)) as hdul:
        return hdul[0].header.copy(), np.asarray(hdul[0].data, dtype=np.float64)


def test_xisf_darks_make_a_fits_master_that_calibrates_an_xisf_light(admin, plugin, observatory):
    obs, cam, rng = observatory, camera("XISF CMOS"), np.random.default_rng(15)
    put_settings(admin, obs, min_frames_for_master=len(STORAGE), stacking_method="mean")
    now = datetime.now(UTC)
    darks = [
        synthetic.dark_frame(
            cam, exposure_s=EXPOSURE_S, temperature_c=-10.0, rng=rng, cosmic_rays=False
        )
        for _ in STORAGE
    ]
    register(
        plugin,
        obs,
        [
            nina_xisf(cam, "dark", dark, now - (3 - i) * MINUTE, codec=codec, shuffle=shuffle)
            for i, (dark, (codec, shuffle)) in enumerate(zip(darks, STORAGE, strict=True))
        ],
    )
    [master] = wait_masters(admin, obs, 1, frame_type="dark", camera_name=cam.name)
    assert (master["n_frames"], master["exposure_s"]) == (3, EXPOSURE_S)
    download = admin.get(f"{API}/frames/{master['id']}/download")
    assert download.status_code == 200, download.text
    _, master_pixels = fits_pixels(download.content)  # a master is FITS
    expected = np.mean(np.asarray(darks, dtype=np.float64), axis=0)
    np.testing.assert_allclose(master_pixels, expected, rtol=1e-6)

    raw, _ = synthetic.light_frame(
        cam, filter_name="L", exposure_s=EXPOSURE_S, temperature_c=-10.0, rng=rng
    )
    [light_key] = register(
        plugin, obs, [nina_xisf(cam, "light", raw, now, codec="zlib", shuffle=True)]
    )
    light = light_id_for(admin, obs, light_key)
    view = get_frame(admin, light)
    assert (view["camera_name"], view["filter"], view["width"]) == (cam.name, "L", cam.width)
    assert view["calibration_masters"] == {"dark": master["id"]}

    response = admin.get(f"{API}/frames/{light}/calibrated")
    assert response.status_code == 200, response.text
    header, pixels = fits_pixels(response.content)
    assert (header["BITPIX"], header["CALDARK"], header["IMAGETYP"]) == (-32, master["id"], "LIGHT")
    np.testing.assert_allclose(pixels, raw - master_pixels, rtol=1e-5, atol=1e-3)
