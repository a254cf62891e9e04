"""The stacker through the real pipeline (plugin → registry → stacker → API) on the real
servers: masters made from registered frames, stored in S3 and served by the API as
recorded. Preprocessing, failures, provenance and statistics are checked without servers
in tests/unit/app/test_stacking.py."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from astropy.io import fits

from calib_core import events
from calib_infra import bus
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
        self.config, self.subject, self.on_message = config, subject, on_message
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
        self._connection = await bus.connect(self.config)

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
