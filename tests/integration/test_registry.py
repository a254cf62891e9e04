"""Frame ingestion through real NATS, S3 and MongoDB-wire servers (SPEC §2): a rejection
from the raw stream to the API, ranged reads of a large object, duplicates across
replicas, and crashes of the registry and of the NATS server mid-stream. What is stored
and every rejection reason are asserted without servers in tests/unit/app/
test_registration.py."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest
from pymongo import MongoClient

from calib_app.registration import HEAD_BYTES, read_frame
from calib_core import events
from calib_core.fitsheader import image_layout
from calib_core.models import Observatory
from calib_core.registration import Rejected
from calib_infra import compose
from calib_infra.config import Config
from calib_infra.mongo import to_document
from calib_infra.runtime import Runtime
from calib_stack import synthetic
from tests.integration.registry_helpers import (
    API,
    CAMERA,
    frame_bytes,
    library,
    publish_raw,
    register_all,
    stream_messages,
    wait_registered,
)
from tests.support.plugin import Plugin
from tests.support.system import (
    Services,
    consumer_drained,
    service_config,
    start_servers,
    unique,
    wait_for,
)


def frames_with_key(config: Config, storage_key: str) -> int:
    with MongoClient(config.mongodb_uri) as client:
        return client[config.mongodb_db]["frames"].count_documents({"storage_key": storage_key})


def event_body(observatory_id: str, storage_key: str, **fields) -> tuple[str, bytes]:
    event = events.FrameRegistered(
        event_id=uuid.uuid4().hex, observatory_id=observatory_id, storage_key=storage_key, **fields
    )
    return event.event_id, msgspec.json.encode(event)


# ---- rejections --------------------------------------------------------------------------


#: Every reason is asserted over the fakes; these two depend on the real servers: the range
#: read of an empty object (S3 refuses it), and bytes no plugin would send, through NATS.
REJECTIONS = ["empty object", "undecodable event"]


@pytest.mark.parametrize("case", REJECTIONS)
def test_a_rejection_is_recorded_announced_and_listed_and_stores_nothing(
    case, admin, plugin, system, observatory
):
    if case == "empty object":
        key = plugin.upload(observatory, b"")
        event_id, body = event_body(observatory, key)
        reason = "is not a valid FITS image: it is empty"
    else:
        key, event_id, body = None, "", b'{"event_id": 12, "storage_key": "frames/x.fits"'
        reason = "invalid event"
    publish_raw(system.config, f"frame.registered.{observatory}", body)

    def recorded():
        response = admin.get(f"{API}/rejections/{observatory}")
        return response.status_code == 200 and response.json()["items"]

    [rejection] = wait_for(recorded, timeout_s=30, what="the rejection")
    assert reason in rejection["reason"]
    assert rejection["observatory_id"] == observatory
    if event_id:
        assert rejection["event_id"] == event_id
    [announced] = wait_for(
        lambda: stream_messages(system.config, f"frame.rejected.{observatory}"),
        timeout_s=30,
        what="frame.rejected",
    )
    assert msgspec.json.decode(announced.data) == {
        "event_id": rejection["event_id"],
        "observatory_id": observatory,
        "reason": rejection["reason"],
        "storage_key": key,
    }
    wait_for(lambda: consumer_drained(system.config, "registry"), what="the registry to drain")
    if key is not None:
        assert frames_with_key(system.config, key) == 0
    assert library(admin, observatory)["total"] == 0
    log = (system.log_dir / "registry.log").read_text()
    assert rejection["reason"] in log


def test_rejections_of_an_id_never_seen_are_not_found(admin):
    assert admin.get(f"{API}/rejections/{unique('nobody')}").status_code == 404


def test_a_large_object_is_judged_from_its_first_bytes(system, observatory):
    """Not-FITS and incomplete frames are refused after one ranged read; only a frame
    worth keeping is streamed in full (for its sha256)."""
    big = 4 * 1024 * 1024
    not_fits = os.urandom(big)
    headerless = synthetic.fits_bytes(np.zeros((1024, 2048), dtype=np.uint16), {})
    header = synthetic.nina_header(
        frame_type="dark",
        camera=CAMERA,
        exposure_s=30.0,
        temperature_c=-10.0,
        captured_at=datetime.now(UTC),
    )
    good = synthetic.fits_bytes(np.full((1024, 2048), 7, dtype=np.uint16), header)

    async def reads_of(data: bytes) -> tuple[list[tuple], str]:
        runtime = Runtime("registry-test", system.config)
        try:
            key = f"frames/{observatory}/{uuid.uuid4().hex}.fits"
            await runtime.store.put_bytes(key, data)
            calls: list[tuple] = []
            range_read, scan = runtime.store.read_range, runtime.store.scan

            async def spy_range(k, offset, length):
                calls.append(("range", offset, length))
                return await range_read(k, offset, length)

            async def spy_scan(k, head):
                calls.append(("scan",))
                return await scan(k, head)

            runtime.store.read_range, runtime.store.scan = spy_range, spy_scan
            event = events.FrameRegistered(
                event_id="e", observatory_id=observatory, storage_key=key
            )
            try:
                outcome = (await read_frame(compose.registration(runtime), event)).sha256
            except Rejected as refused:
                outcome = str(refused)
            return calls, outcome
        finally:
            await runtime.mongo.close()

    calls, outcome = asyncio.run(reads_of(not_fits))
    assert calls == [("range", 0, HEAD_BYTES)] and "not a valid FITS image" in outcome
    calls, outcome = asyncio.run(reads_of(headerless))
    assert calls == [("range", 0, HEAD_BYTES)] and "missing required fields" in outcome
    calls, outcome = asyncio.run(reads_of(good))
    assert calls == [("range", 0, HEAD_BYTES), ("scan",)]
    assert outcome == hashlib.sha256(good).hexdigest()
    calls, outcome = asyncio.run(reads_of(good[: len(good) // 2]))  # a broken transfer
    assert calls == [("range", 0, HEAD_BYTES), ("scan",)]
    needed = image_layout(good).needed
    assert f"truncated, its image needs {needed} bytes, the object has {len(good) // 2}" in outcome


# ---- duplicates and crashes ----------------------------------------------------------------


def test_two_registry_replicas_store_each_file_once(admin, plugin, system, observatory):
    """Ten files, each announced under thirty event ids (and each event published
    twice): both replicas take batches of the same files at the same time."""
    files = [frame_bytes("light", i, filter_name="L") for i in range(10)]
    keys = [plugin.upload(observatory, data) for data in files]
    system.start("registry-2")
    try:
        wait_for(
            lambda: '"connected"' in (system.log_dir / "registry-2.log").read_text(),
            timeout_s=60,
            what="the second replica to connect",
        )
        announced = []
        for _ in range(30):
            for key in keys:
                event = events.FrameRegistered(
                    event_id=uuid.uuid4().hex, observatory_id=observatory, storage_key=key
                )
                announced += [(event, event.event_id), (event, uuid.uuid4().hex)]
        plugin.announce(announced)
        stored = wait_registered(admin, system.config, observatory, 10)

        def handled_by(name: str) -> int:
            return (
                (system.log_dir / f"{name}.log")
                .read_text()
                .count(f'"observatory_id": "{observatory}"')
            )

        assert handled_by("registry") > 0 and handled_by("registry-2") > 0
    finally:
        system.processes.pop("registry-2").stop()
    assert len(stored) == 10
    assert {f["sha256"] for f in stored} == {hashlib.sha256(d).hexdigest() for d in files}


@pytest.mark.parametrize("crash", ["sigterm", "sigkill"])
def test_a_registry_restarted_mid_stream_stores_every_event_once(
    crash, admin, plugin, system, observatory
):
    files = [frame_bytes("light", i, filter_name="R") for i in range(40)]
    register_all(plugin, observatory, files[:20])
    wait_for(
        lambda: library(admin, observatory)["total"] >= 1, timeout_s=30, what="the first frames"
    )
    registry = system.processes["registry"]
    registry.stop() if crash == "sigterm" else registry.kill()
    register_all(plugin, observatory, files[20:])
    system.start("registry")

    stored = wait_registered(admin, system.config, observatory, 40)
    assert len(stored) == 40
    assert len({f["sha256"] for f in stored}) == 40


def test_a_nats_server_restarted_mid_stream_loses_nothing(tmp_path):
    """The registry and the stream survive a NATS restart: the file store keeps the
    stream and the consumer, the registry reconnects and carries on."""
    servers = start_servers(tmp_path / "servers")
    config = service_config(servers.endpoints, unique("calib_natsrestart").replace("-", "_"))
    services = Services(config=config, bus=servers.endpoints.bus, log_dir=tmp_path / "logs")
    observatory = unique("obs")
    try:
        services.create_schema()
        with MongoClient(config.mongodb_uri) as client:
            client[config.mongodb_db]["observatories"].insert_one(
                to_document(
                    Observatory(id=observatory, name="Restart", created_at=datetime.now(UTC))
                )
            )
        services.start("registry")
        plugin = Plugin(config)
        files = [frame_bytes("light", i, filter_name="G") for i in range(40)]

        def stored() -> int:
            with MongoClient(config.mongodb_uri) as client:
                return client[config.mongodb_db]["frames"].count_documents(
                    {"observatory_id": observatory}
                )

        wait_for(
            lambda: '"connected"' in (tmp_path / "logs" / "registry.log").read_text(),
            timeout_s=60,
            what="the registry to connect",
        )
        register_all(plugin, observatory, files[:20])
        wait_for(lambda: stored() >= 1, timeout_s=30, what="the first frames")
        servers.processes["nats"].stop()
        servers.start_nats()
        register_all(plugin, observatory, files[20:])

        wait_for(lambda: stored() == 40, timeout_s=60, what="all 40 frames")
        wait_for(lambda: consumer_drained(config, "registry"), what="the registry to drain")
        assert stored() == 40
        assert services.processes["registry"].process.poll() is None
    finally:
        services.stop()
        servers.stop()
