"""The stacker through the real pipeline (plugin → registry → stacker → API): SPEC §5
preprocessing checked against the synthetic camera's truth, failures that leave nothing
behind, provenance, statistics, previews and reproducible pixels."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import nats
import numpy as np
import pytest
from astropy.io import fits

from calib_core import events
from calib_infra.config import Config
from calib_infra.store import ObjectStore
from calib_stack import synthetic
from tests.support.plugin import Plugin
from tests.support.system import consumers_waiting, wait_for

API = "/api/v1/calibration"
# Small frames; enough hot pixels to count on a 64x48 sensor.
CAMERA = synthetic.Camera(name="Stacker Test Cam", width=64, height=48, hot_pixel_fraction=0.005)
MIN_FRAMES = 5


# -- helpers shared by the test_stacker_*.py files ---------------------------------------


class Subscription:
    """Core NATS messages on ``subject`` (JetStream publishes are seen too), collected by a
    thread of its own; ``on_message(subject, body)`` runs in that thread as each arrives
    (and when it returns a coroutine, such as :meth:`publish`'s, that is awaited)."""

    def __init__(
        self,
        config: Config,
        subject: str,
        on_message: Callable[[str, dict], Awaitable[None] | None] | None = None,
    ):
        self.url, self.subject, self.on_message = config.nats_url, subject, on_message
        self.messages: list[tuple[str, dict]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Subscription:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError(f"could not subscribe to {self.subject}")
        return self

    def __exit__(self, *exc_info) -> None:
        asyncio.run_coroutine_threadsafe(self._connection.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._subscribe())
        self._loop.run_forever()

    async def _subscribe(self) -> None:
        self._connection = await nats.connect(self.url)

        async def received(msg) -> None:
            body = json.loads(msg.data)
            self.messages.append((msg.subject, body))
            if self.on_message is not None and (reaction := self.on_message(msg.subject, body)):
                await reaction

        await self._connection.subscribe(self.subject, cb=received)
        await self._connection.flush()
        self._ready.set()

    def publish(self, subject: str, body: dict, msg_id: str) -> Awaitable[None]:
        """Publish on this connection (from ``on_message``: no time lost connecting)."""
        return self._connection.publish(
            subject, json.dumps(body).encode(), headers={"Nats-Msg-Id": msg_id}
        )

    def bodies(self, kind: str, job_id: str) -> list[dict]:
        return [
            body
            for subject, body in list(self.messages)
            if subject.startswith(f"{kind}.") and body.get("job_id") == job_id
        ]


def stackers_pulling(config: Config, replicas: int = 2) -> bool:
    """True when ``replicas`` stackers wait on the shared consumer (all started and idle)."""
    return consumers_waiting(config, "stacker") >= replicas


def stacker_log_lines(services, text: str) -> list[str]:
    return [
        line
        for name in services.processes
        if name.startswith("stacker")
        for line in (services.log_dir / f"{name}.log").read_text().splitlines()
        if text in line
    ]


def configure(admin, observatory_id: str, **settings) -> None:
    response = admin.put(f"{API}/settings/{observatory_id}", json=settings)
    assert response.status_code == 200, response.text


def register_all(plugin: Plugin, observatory_id: str, files: list[bytes]) -> list[str]:
    """Upload every file, then announce them all at once; returns the storage keys."""
    announced = []
    for data in files:
        event = events.FrameRegistered(
            event_id=uuid.uuid4().hex,
            observatory_id=observatory_id,
            storage_key=plugin.upload(observatory_id, data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        announced.append((event, event.event_id))
    plugin.announce(announced)
    return [event.storage_key for event, _ in announced]


def captured(index: int) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=120 - index)


def dark_file(
    index: int, *, exposure_s: float, temperature_c: float, camera=CAMERA, seed: int = 0
) -> bytes:
    rng = np.random.default_rng(seed * 1000 + index)
    data = synthetic.dark_frame(
        camera, exposure_s=exposure_s, temperature_c=temperature_c, rng=rng, cosmic_rays=False
    )
    header = synthetic.nina_header(
        frame_type="dark",
        camera=camera,
        exposure_s=exposure_s,
        temperature_c=temperature_c,
        captured_at=captured(index),
    )
    return synthetic.fits_bytes(data, header)


def bias_file(index: int, *, temperature_c: float) -> bytes:
    data = synthetic.bias_frame(CAMERA, rng=np.random.default_rng(500 + index))
    header = synthetic.nina_header(
        frame_type="bias",
        camera=CAMERA,
        exposure_s=0.0,
        temperature_c=temperature_c,
        captured_at=captured(index),
    )
    return synthetic.fits_bytes(data, header)


def flat_file(index: int, *, exposure_s: float, temperature_c: float, level_adu: float) -> bytes:
    data = synthetic.flat_frame(
        CAMERA,
        filter_name="L",
        exposure_s=exposure_s,
        temperature_c=temperature_c,
        rng=np.random.default_rng(900 + index),
        level_adu=level_adu,
    )
    header = synthetic.nina_header(
        frame_type="flat",
        camera=CAMERA,
        exposure_s=exposure_s,
        temperature_c=temperature_c,
        filter_name="L",
        captured_at=captured(index),
    )
    return synthetic.fits_bytes(data, header)


def library(admin, observatory_id: str, **params) -> list[dict]:
    response = admin.get(f"{API}/library/{observatory_id}", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def masters(admin, observatory_id: str, frame_type: str | None = None) -> list[dict]:
    params = {"is_master": "true", **({"frame_type": frame_type} if frame_type else {})}
    return library(admin, observatory_id, **params)


def wait_master(admin, observatory_id: str, frame_type: str, timeout_s: float = 60) -> dict:
    return wait_for(
        lambda: masters(admin, observatory_id, frame_type),
        timeout_s=timeout_s,
        what=f"a master {frame_type}",
    )[0]


def wait_frames(admin, observatory_id: str, count: int) -> list[dict]:
    return wait_for(
        lambda: (
            (items := library(admin, observatory_id, is_master="false"))
            and len(items) >= count
            and items
        ),
        what=f"{count} frames registered",
    )


def job(admin, observatory_id: str, job_id: str) -> dict:
    response = admin.get(f"{API}/jobs/{observatory_id}")
    assert response.status_code == 200, response.text
    return next(j for j in response.json()["items"] if j["id"] == job_id)


def wait_job(admin, observatory_id: str, job_id: str, status: str, timeout_s: float = 60) -> dict:
    return wait_for(
        lambda: (found := job(admin, observatory_id, job_id))["status"] == status and found,
        timeout_s=timeout_s,
        what=f"job {job_id} to be {status}",
    )


def create_master(admin, observatory_id: str, **group) -> dict:
    response = admin.post(
        f"{API}/masters/create",
        json={"observatory_id": observatory_id, "force": True, "camera_name": CAMERA.name, **group},
    )
    assert response.status_code == 202, response.text
    return response.json()


def download(admin, frame_id: str) -> tuple[fits.Header, np.ndarray, bytes]:
    response = admin.get(f"{API}/frames/{frame_id}/download")
    assert response.status_code == 200, response.text
    with fits.open(io.BytesIO(response.content)) as hdul:
        return hdul[0].header.copy(), np.array(hdul[0].data), response.content


def object_keys(config: Config, prefix: str) -> list[str]:
    return sorted(o.key for o in ObjectStore(config).list_sync(prefix))


# -- preprocessing ---------------------------------------------------------------------


def test_ccd_master_dark_is_the_bias_subtracted_dark_rate(admin, plugin, observatory):
    """CCD darks of several exposures stack into one rate map (ADU/s) after the master
    bias is subtracted from each; compared with the synthetic camera's true dark rate."""
    configure(admin, observatory, camera_type="CCD", min_frames_for_master=MIN_FRAMES)
    temperature = 10.0
    register_all(
        plugin, observatory, [bias_file(i, temperature_c=temperature) for i in range(MIN_FRAMES)]
    )
    bias = wait_master(admin, observatory, "bias")
    exposures = [120.0, 180.0, 240.0, 300.0, 300.0]
    register_all(
        plugin,
        observatory,
        [
            dark_file(i, exposure_s=t, temperature_c=temperature, seed=1)
            for i, t in enumerate(exposures)
        ],
    )
    dark = wait_master(admin, observatory, "dark")

    header, rate, _ = download(admin, dark["id"])
    assert header["BUNIT"] == "adu/s" and header["CALPRE"] == bias["id"]
    assert header["BITPIX"] == -32 and header["NCOMBINE"] == len(exposures)
    assert dark["method_params"]["unit"] == "adu/s"
    truth = synthetic.dark_rate(CAMERA, temperature)
    residual = rate - truth
    # per pixel: the mean of (read noise 3.5 ADU + shot noise) / exposure over the frames,
    # plus the noise of the master bias divided by the exposure
    t = np.array(exposures)[:, None, None]
    variance = ((CAMERA.read_noise_adu**2 + truth[None] * t) / t**2).sum(axis=0) / len(
        exposures
    ) ** 2 + CAMERA.read_noise_adu**2 / MIN_FRAMES * float(np.mean(1 / t)) ** 2
    noise = float(np.sqrt(np.median(variance)))
    assert abs(float(np.median(residual))) < 0.1 * noise  # no bias left: it would be ~500/exposure
    assert 0.5 * noise < 1.4826 * float(np.median(np.abs(residual))) < 1.5 * noise
    rows, cols = synthetic.hot_pixels(CAMERA)
    np.testing.assert_allclose(rate[rows, cols], truth[rows, cols], rtol=0.15)  # a rate, not counts
    assert dark["stats"]["hot_pixels"] == pytest.approx(len(rows), abs=2)


def test_master_flat_is_dark_subtracted_and_normalised_to_one(admin, plugin, observatory):
    """Flats get the matching master dark subtracted and are normalised by their median;
    the master flat has median 1.0 and follows the synthetic camera's flat field."""
    configure(admin, observatory, min_frames_for_master=MIN_FRAMES)
    temperature, exposure = -10.0, 2.0
    register_all(
        plugin,
        observatory,
        [
            dark_file(i, exposure_s=exposure, temperature_c=temperature, seed=2)
            for i in range(MIN_FRAMES)
        ],
    )
    dark = wait_master(admin, observatory, "dark")
    level = 5000.0  # the bias (~500 ADU) is a tenth of the signal: leaving it in would show
    register_all(
        plugin,
        observatory,
        [
            flat_file(i, exposure_s=exposure, temperature_c=temperature, level_adu=level)
            for i in range(MIN_FRAMES)
        ],
    )
    flat = wait_master(admin, observatory, "flat")

    header, pixels, _ = download(admin, flat["id"])
    assert header["CALPRE"] == dark["id"] and header["FILTER"] == "L"
    assert float(np.median(pixels)) == pytest.approx(1.0, abs=1e-6)
    assert flat["stats"]["median"] == pytest.approx(1.0, abs=1e-6)
    truth = synthetic.flat_field(CAMERA, "L")
    residual = pixels - truth
    noise = 1 / np.sqrt(level * MIN_FRAMES)  # shot noise of the summed flats, relative
    assert 1.4826 * float(np.median(np.abs(residual))) < 1.5 * noise
    # without the dark subtracted the vignetting would be compressed by level/(level+bias):
    # a slope of about -0.09 of the residual against the flat field
    slope = np.polyfit((truth - 1).ravel(), residual.ravel(), 1)[0]
    assert abs(slope) < 0.02


def test_ccd_master_flat_loses_the_bias_and_the_dark_rate_times_its_exposure(
    admin, plugin, observatory
):
    """On CCD the master dark is a rate: flats get the master bias subtracted plus that
    rate × their exposure, then normalise to the synthetic flat field."""
    configure(admin, observatory, camera_type="CCD", min_frames_for_master=MIN_FRAMES)
    temperature, exposure = 10.0, 30.0
    register_all(
        plugin, observatory, [bias_file(i, temperature_c=temperature) for i in range(MIN_FRAMES)]
    )
    bias = wait_master(admin, observatory, "bias")
    register_all(
        plugin,
        observatory,
        [
            dark_file(i, exposure_s=300.0, temperature_c=temperature, seed=3)
            for i in range(MIN_FRAMES)
        ],
    )
    dark = wait_master(admin, observatory, "dark")
    level = 5000.0
    register_all(
        plugin,
        observatory,
        [
            flat_file(i, exposure_s=exposure, temperature_c=temperature, level_adu=level)
            for i in range(MIN_FRAMES)
        ],
    )
    flat = wait_master(admin, observatory, "flat")

    header, pixels, _ = download(admin, flat["id"])
    assert header["CALPRE"] == bias["id"] and header["CALDARK"] == dark["id"]
    assert float(np.median(pixels)) == pytest.approx(1.0, abs=1e-6)
    truth = synthetic.flat_field(CAMERA, "L")
    residual = pixels - truth
    assert 1.4826 * float(np.median(np.abs(residual))) < 1.5 / np.sqrt(level * MIN_FRAMES)
    # the bias left in (the old behaviour) compresses the vignetting: slope ≈ -0.09
    assert abs(np.polyfit((truth - 1).ravel(), residual.ravel(), 1)[0]) < 0.02


def test_frames_of_unequal_size_fail_the_job_naming_the_odd_frame(
    admin, plugin, system, observatory
):
    configure(admin, observatory, min_frames_for_master=100)  # only the manual job below
    small = synthetic.Camera(name=CAMERA.name, width=32, height=24)
    files = [dark_file(i, exposure_s=60.0, temperature_c=-10.0) for i in range(4)]
    odd_key = register_all(
        plugin,
        observatory,
        [*files, dark_file(9, exposure_s=60.0, temperature_c=-10.0, camera=small)],
    )[-1]
    frames = wait_frames(admin, observatory, 5)
    odd = next(f for f in frames if f["storage_key"] == odd_key)

    queued = create_master(admin, observatory, frame_type="dark", exposure_s=60.0)
    failed = wait_job(admin, observatory, queued["id"], "failed")
    assert (
        odd["id"] in failed["error"] and odd_key in failed["error"] and "32x24" in failed["error"]
    )
    assert all(f["id"] not in failed["error"] for f in frames if f["id"] != odd["id"])
    assert masters(admin, observatory) == []
    assert object_keys(system.config, f"masters/{observatory}/") == []
    assert object_keys(system.config, f"previews/{observatory}/") == []
    assert all(f.get("master_id") is None for f in library(admin, observatory))


# -- the master file and record --------------------------------------------------------


def test_same_frames_and_settings_give_bit_identical_pixels(admin, plugin, system, observatory):
    configure(admin, observatory, min_frames_for_master=MIN_FRAMES)
    temperatures = [-10.0, -10.2, -9.8, -10.1, -9.9]
    files = [
        synthetic.fits_bytes(
            synthetic.dark_frame(
                CAMERA, exposure_s=30.0, temperature_c=t, rng=np.random.default_rng(i)
            ),
            synthetic.nina_header(
                frame_type="dark",
                camera=CAMERA,
                exposure_s=30.0,
                temperature_c=t,
                captured_at=captured(i),
            ),
        )
        for i, t in enumerate(temperatures)
    ]
    register_all(plugin, observatory, files)
    first = wait_master(admin, observatory, "dark")
    # the master is recorded just before its job closes; until then a manual request joins that job
    wait_job(admin, observatory, first["job_id"], "succeeded")
    second_job = create_master(admin, observatory, frame_type="dark", exposure_s=30.0)
    assert second_job["id"] != first["job_id"]
    wait_job(admin, observatory, second_job["id"], "succeeded")
    second = next(m for m in masters(admin, observatory) if m["job_id"] == second_job["id"])

    first_header, first_pixels, first_file = download(admin, first["id"])
    second_header, second_pixels, _ = download(admin, second["id"])
    assert first_pixels.dtype == np.dtype(">f4")
    assert first_pixels.tobytes() == second_pixels.tobytes()
    assert first_header["CALJOB"] != second_header["CALJOB"]  # two masters, the same pixels

    components = sorted(f["id"] for f in library(admin, observatory, is_master="false"))
    assert first_header["NCOMBINE"] == 5 and first_header["CALMETH"] == "sigma_clip"
    assert first_header["CLIPSIG"] == 3.0 and first_header["CLIPITER"] == 5
    assert first_header["INSTRUME"] == CAMERA.name and first_header["EXPTIME"] == 30.0
    assert first_header["GAIN"] == CAMERA.gain and first_header["OFFSET"] == CAMERA.offset
    assert first_header["TEMPMIN"] == -10.2 and first_header["TEMPMAX"] == -9.8
    assert first_header["CCD-TEMP"] == pytest.approx(-10.0)
    assert first_header["CALMSTR"] == first["id"] and first_header["SWCREATE"].startswith("calib ")
    assert sorted(first_header[f"SRC{i:04d}"] for i in range(1, 6)) == components
    assert first_header["SRCDIGST"] == hashlib.sha256("\n".join(components).encode()).hexdigest()
    assert first["sha256"] == hashlib.sha256(first_file).hexdigest()

    stats = first["stats"]
    assert stats["median"] == pytest.approx(float(np.median(first_pixels)), rel=1e-6)
    assert stats["robust_std"] > 0 and stats["hot_pixels"] >= 1
    assert 0 <= stats["rejected_fraction"] < 0.05
    assert (stats["temperature_min_c"], stats["temperature_max_c"]) == (-10.2, -9.8)
    assert stats["temperature_mean_c"] == pytest.approx(-10.0)
    assert first["temperature_min_c"] == -10.2 and first["temperature_max_c"] == -9.8

    preview = admin.get(f"{API}/frames/{first['id']}/preview.png")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    assert preview.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(preview.content[16:20], "big") == CAMERA.width  # IHDR width
    assert object_keys(system.config, f"masters/{observatory}/") == sorted(
        [first["storage_key"], second["storage_key"]]
    )
