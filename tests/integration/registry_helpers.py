"""Shared by the registry, trigger, settings and jobs integration tests: small N.I.N.A.
frames, many-at-once registration, and API look-ups."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import nats
import numpy as np

from calib_core import events
from calib_infra import bus
from calib_infra.config import Config
from calib_stack import synthetic
from tests.support.plugin import Plugin
from tests.support.system import consumer_drained, wait_for

API = "/api/v1/calibration"
CAMERA = synthetic.Camera(name="QHY268M", width=64, height=48)


def frame_bytes(
    kind: str,
    index: int = 0,
    *,
    camera: synthetic.Camera = CAMERA,
    exposure_s: float = 30.0,
    temperature_c: float = -10.0,
    filter_name: str | None = None,
    minutes_ago: float | None = None,
) -> bytes:
    """A small FITS frame as N.I.N.A. writes it; ``index`` makes the pixels (and file) unique."""
    rng = np.random.default_rng(index + 1000 * len(kind))
    if kind == "bias":
        data = synthetic.bias_frame(camera, rng=rng)
    elif kind == "dark":
        data = synthetic.dark_frame(
            camera, exposure_s=exposure_s, temperature_c=temperature_c, rng=rng
        )
    elif kind == "flat":
        data = synthetic.flat_frame(
            camera,
            filter_name=filter_name,
            exposure_s=exposure_s,
            temperature_c=temperature_c,
            rng=rng,
        )
    else:
        data = synthetic.light_frame(
            camera,
            filter_name=filter_name,
            exposure_s=exposure_s,
            temperature_c=temperature_c,
            rng=rng,
        )[0]
    data = np.asarray(data)
    data.flat[0] = index % 60000  # distinct files even where the noise repeats
    captured_at = datetime.now(UTC) - timedelta(
        minutes=minutes_ago if minutes_ago is not None else 120 - index
    )
    header = synthetic.nina_header(
        frame_type=kind,
        camera=camera,
        exposure_s=exposure_s,
        temperature_c=temperature_c,
        set_temperature_c=round(temperature_c),
        filter_name=filter_name,
        captured_at=captured_at,
    )
    return synthetic.fits_bytes(data, header)


def register_all(
    plugin: Plugin, observatory_id: str, files: list[bytes]
) -> list[events.FrameRegistered]:
    """Upload every file, then announce them all at once (the plugin after a sequence)."""
    registered = [plugin.uploaded(observatory_id, data) for data in files]
    plugin.announce([(event, event.event_id) for event in registered])
    return registered


def get_json(client: httpx.Client, path: str, **params) -> dict:
    response = client.get(API + path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def library(client: httpx.Client, observatory_id: str, **params) -> dict:
    return get_json(client, f"/library/{observatory_id}", limit=500, **params)


def jobs(client: httpx.Client, observatory_id: str, status: str | None = None) -> list[dict]:
    params = {"status": status} if status else {}
    return get_json(client, f"/jobs/{observatory_id}", **params)["items"]


def masters(client: httpx.Client, observatory_id: str) -> list[dict]:
    return library(client, observatory_id, is_master="true")["items"]


def put_settings(client: httpx.Client, observatory_id: str, **changes) -> dict:
    response = client.put(f"{API}/settings/{observatory_id}", json=changes)
    assert response.status_code == 200, response.text
    return response.json()


def wait_registered(
    client: httpx.Client, config: Config, observatory_id: str, count: int, timeout_s: float = 60.0
) -> list[dict]:
    """Wait until ``count`` individual frames are stored and the registry has nothing left."""
    wait_for(
        lambda: library(client, observatory_id, is_master="false")["total"] >= count,
        timeout_s=timeout_s,
        what=f"{count} frames",
    )
    wait_for(
        lambda: consumer_drained(config, "registry"),
        timeout_s=timeout_s,
        what="the registry to drain",
    )
    return library(client, observatory_id, is_master="false")["items"]


def publish_raw(config: Config, subject: str, body: bytes) -> None:
    """Publish bytes on any subject (events a well-behaved plugin would never send)."""

    async def send() -> None:
        connection = await bus.connect(config)
        try:
            await connection.jetstream().publish(
                subject, body, headers={"Nats-Msg-Id": uuid.uuid4().hex}
            )
        finally:
            await connection.close()

    asyncio.run(send())


def stream_messages(config: Config, subject: str) -> list[nats.aio.msg.Msg]:
    """Every message the CALIBRATION stream holds on ``subject`` (an ordered consumer)."""

    async def read() -> list[nats.aio.msg.Msg]:
        connection = await bus.connect(config)
        try:
            js = connection.jetstream()
            pending = (
                await js.stream_info(events.STREAM_NAME, subjects_filter=subject)
            ).state.subjects or {}
            expected = sum(pending.values())
            subscription = await js.subscribe(subject, ordered_consumer=True)
            found = []
            while len(found) < expected:
                found.append(await subscription.next_msg(timeout=5))
            await subscription.unsubscribe()
            return found
        finally:
            await connection.close()

    return asyncio.run(read())
