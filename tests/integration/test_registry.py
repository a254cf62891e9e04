"""Frame ingestion through real NATS, S3 and MongoDB-wire servers (SPEC §2): what is
stored, every rejection reason, duplicates across replicas, and crashes of the
registry and of the NATS server mid-stream."""

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

from calib_core import events
from calib_core.headers import plain_image_layout
from calib_core.models import Observatory
from calib_infra.config import Config
from calib_infra.mongo import to_document
from calib_infra.runtime import Runtime
from calib_registry.ingest import HEAD_BYTES, Rejected, read_frame
from calib_stack import synthetic
from tests.integration.registry_helpers import (
    API,
    CAMERA,
    frame_bytes,
    library,
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


def publish_raw(config: Config, subject: str, body: bytes) -> None:
    """Publish bytes on any subject (events a well-behaved plugin would never send)."""
    import nats

    async def send() -> None:
        connection = await nats.connect(config.nats_url)
        try:
            await connection.jetstream().publish(
                subject, body, headers={"Nats-Msg-Id": uuid.uuid4().hex}
            )
        finally:
            await connection.close()

    asyncio.run(send())


def frames_with_key(config: Config, storage_key: str) -> int:
    with MongoClient(config.mongodb_uri) as client:
        return client[config.mongodb_db]["frames"].count_documents({"storage_key": storage_key})


def event_body(observatory_id: str, storage_key: str, **fields) -> tuple[str, bytes]:
    event = events.FrameRegistered(
        event_id=uuid.uuid4().hex, observatory_id=observatory_id, storage_key=storage_key, **fields
    )
    return event.event_id, msgspec.json.encode(event)


def headerless_fits() -> bytes:
    """A valid FITS image whose header names none of the required fields."""
    return synthetic.fits_bytes(np.zeros((48, 64), dtype=np.uint16), {})


# ---- what is stored ------------------------------------------------------------------------


def test_light_and_calibration_frames_are_stored_with_header_metadata(
    admin, plugin, system, observatory
):
    light = frame_bytes("light", 1, exposure_s=120.0, filter_name="Ha", temperature_c=-9.5)
    dark = frame_bytes("dark", 2, exposure_s=60.0)
    register_all(plugin, observatory, [light, dark])

    stored = {f["frame_type"]: f for f in wait_registered(admin, system.config, observatory, 2)}
    assert set(stored) == {"light", "dark"}
    assert stored["light"]["filter"] == "Ha"
    assert stored["light"]["exposure_s"] == 120.0
    assert stored["light"]["temperature_c"] == -9.5
    assert stored["light"]["camera_name"] == CAMERA.name
    assert (stored["light"]["width"], stored["light"]["height"]) == (64, 48)
    assert stored["light"]["sha256"] == hashlib.sha256(light).hexdigest()
    assert stored["light"]["size_bytes"] == len(light)
    assert stored["dark"]["filter"] is None
    assert stored["dark"]["gain"] == CAMERA.gain
    assert stored["dark"]["binning"] == "1x1"


def test_a_header_longer_than_the_first_ranged_read_is_read_in_full(
    admin, plugin, system, observatory
):
    header = synthetic.nina_header(
        frame_type="flat",
        camera=CAMERA,
        exposure_s=2.0,
        temperature_c=-10.0,
        filter_name="OIII",
        captured_at=datetime.now(UTC),
    )
    for index in range(HEAD_BYTES // 80 + 200):
        header.add_history(f"processing step {index}")
    for keyword in ("ROTATANG", "ROTATOR"):
        header.remove(keyword, ignore_missing=True)
    header.append(
        ("ROTATANG", 42.5), end=True
    )  # after the history: in the header's last blocks only
    data = synthetic.fits_bytes(np.ones((48, 64), dtype=np.uint16), header)
    assert data.index(b"ROTATANG") > HEAD_BYTES

    register_all(plugin, observatory, [data])
    [stored] = wait_registered(admin, system.config, observatory, 1)
    assert stored["frame_type"] == "flat"
    assert stored["filter"] == "OIII"
    assert stored["rotation_deg"] == 42.5


def test_event_fields_win_over_the_header(admin, plugin, system, observatory):
    data = frame_bytes("dark", 3, exposure_s=60.0)
    event = events.FrameRegistered(
        event_id=uuid.uuid4().hex,
        observatory_id=observatory,
        storage_key=plugin.upload(observatory, data),
        camera_name="Renamed Cam",
        gain=0.0,
    )
    plugin.announce([(event, event.event_id)])
    [stored] = wait_registered(admin, system.config, observatory, 1)
    assert stored["camera_name"] == "Renamed Cam"
    assert stored["gain"] == 0.0
    assert stored["exposure_s"] == 60.0  # from the header


# ---- rejections --------------------------------------------------------------------------


REJECTIONS = [
    "unknown observatory",
    "subject and body differ",
    "missing object",
    "not FITS",
    "empty object",
    "truncated header",
    "truncated data",
    "missing required fields",
    "sha256 mismatch",
    "undecodable event",
]


@pytest.mark.parametrize("case", REJECTIONS)
def test_each_rejection_is_recorded_announced_and_stores_nothing(
    case, admin, plugin, system, observatory
):
    valid = frame_bytes("dark", 7)
    listed_under = observatory
    subject_observatory = observatory
    if case == "unknown observatory":
        listed_under = subject_observatory = unique("ghost")
        key = plugin.upload(subject_observatory, valid)
        event_id, body = event_body(subject_observatory, key)
        reason = f"unknown observatory '{subject_observatory}'"
    elif case == "subject and body differ":
        other = unique("other")
        assert (
            admin.post(
                "/api/v1/admin/observatories", json={"id": other, "name": "Other"}
            ).status_code
            == 201
        )
        key = plugin.upload(other, valid)
        event_id, body = event_body(other, key)
        reason = f"subject names observatory '{observatory}' but the body names '{other}'"
    elif case == "missing object":
        key = f"frames/{observatory}/never-uploaded.fits"
        event_id, body = event_body(observatory, key)
        reason = "is missing from the bucket"
    elif case == "not FITS":
        key = plugin.upload(observatory, os.urandom(5000))
        event_id, body = event_body(observatory, key)
        reason = "is not a valid FITS image"
    elif case == "empty object":
        key = plugin.upload(observatory, b"")
        event_id, body = event_body(observatory, key)
        reason = "is not a valid FITS image: it is empty"
    elif case == "truncated header":
        key = plugin.upload(observatory, valid[:2000])
        event_id, body = event_body(observatory, key)
        reason = "is not a valid FITS image: it ends inside its header"
    elif case == "truncated data":
        needed = plain_image_layout(valid)[1]  # header blocks and data, without the final padding
        key = plugin.upload(observatory, valid[: needed - 100])
        event_id, body = event_body(observatory, key)
        reason = (
            f"is not a valid FITS image: truncated, its image needs {needed} bytes,"
            f" the object has {needed - 100}"
        )
    elif case == "missing required fields":
        key = plugin.upload(observatory, headerless_fits())
        event_id, body = event_body(observatory, key)
        reason = "missing required fields: frame_type, camera_name, exposure_s"
    elif case == "sha256 mismatch":
        key = plugin.upload(observatory, valid)
        event_id, body = event_body(
            observatory, key, sha256=hashlib.sha256(b"other bytes").hexdigest()
        )
        reason = "sha256 mismatch"
    else:
        key, event_id, body = None, "", b'{"event_id": 12, "storage_key": "frames/x.fits"'
        reason = "invalid event"
    publish_raw(system.config, f"frame.registered.{subject_observatory}", body)

    def recorded():
        response = admin.get(f"{API}/rejections/{listed_under}")
        return response.status_code == 200 and response.json()["items"]

    [rejection] = wait_for(recorded, timeout_s=30, what="the rejection")
    assert reason in rejection["reason"]
    assert rejection["observatory_id"] == listed_under
    if event_id:
        assert rejection["event_id"] == event_id
    [announced] = wait_for(
        lambda: stream_messages(system.config, f"frame.rejected.{listed_under}"),
        timeout_s=30,
        what="frame.rejected",
    )
    assert msgspec.json.decode(announced.data) == {
        "event_id": rejection["event_id"],
        "observatory_id": listed_under,
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
                outcome = (await read_frame(runtime, event)).sha256
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
    needed = plain_image_layout(good)[1]
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
    services = Services(config=config, log_dir=tmp_path / "logs")
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


def test_invalid_metadata_in_the_event_is_rejected(admin, plugin, system, observatory):
    data = frame_bytes("dark", 9)
    key = plugin.upload(observatory, data)
    body = msgspec.json.encode(
        {
            "event_id": uuid.uuid4().hex,
            "observatory_id": observatory,
            "storage_key": key,
            "width": -3,
        }
    )
    publish_raw(system.config, f"frame.registered.{observatory}", body)
    [rejection] = wait_for(
        lambda: admin.get(f"{API}/rejections/{observatory}").json()["items"],
        timeout_s=30,
        what="the rejection",
    )
    assert "invalid" in rejection["reason"]
    assert frames_with_key(system.config, key) == 0
