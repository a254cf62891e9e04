"""SPEC §12 through the real servers, as a hostile plugin or caller would act: malformed
and oversized FITS objects (hypothesis-generated), numbers no camera produces in event
bodies and form fields, storage keys of another observatory, bodies larger than allowed.
Every case gets a clear rejection (``GET /rejections/{obs}``) or a 4xx, a good frame sent
right after registers within seconds, and the registry's memory stays bounded while
hostile objects arrive. The rules themselves are asserted over the fakes in
tests/unit/core/test_limits.py, tests/unit/app/test_registration.py and
tests/unit/gateway/test_routes_limits.py."""

from __future__ import annotations

import hashlib
import itertools
import socket
import threading
import time
import uuid
from pathlib import Path

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings

from calib_core import events
from tests.integration.registry_helpers import API, frame_bytes, library
from tests.integration.test_registry import publish_raw
from tests.support.hostile import (
    compressed_header,
    declared_image,
    endless_header,
    header_bytes,
    hostile_fits,
    hostile_numbers,
)
from tests.support.plugin import Plugin
from tests.support.system import ADMIN_TOKEN, wait_for

#: Few examples: each goes through NATS, S3, the registry and MongoDB.
REAL_SERVERS = settings(
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: How long a good frame sent after hostile input may take to register.
SECONDS = 15.0
_GOOD = itertools.count(int(time.time()) % 30_000)


def good_frame() -> bytes:
    """A light (lights never trigger stacking) unlike every other one of the session."""
    return frame_bytes("light", next(_GOOD), filter_name="L")


def rejection_of(admin: httpx.Client, observatory_id: str, event_id: str) -> dict | None:
    response = admin.get(f"{API}/rejections/{observatory_id}")
    assert response.status_code == 200, response.text
    return next((r for r in response.json()["items"] if r["event_id"] == event_id), None)


def registered(admin: httpx.Client, observatory_id: str, data: bytes) -> dict | None:
    digest = hashlib.sha256(data).hexdigest()
    items = library(admin, observatory_id, is_master="false")["items"]
    return next((f for f in items if f["sha256"] == digest), None)


def announce(plugin: Plugin, observatory_id: str, storage_key: str, **fields) -> str:
    event = events.FrameRegistered(
        event_id=uuid.uuid4().hex, observatory_id=observatory_id, storage_key=storage_key, **fields
    )
    plugin.announce([(event, event.event_id)])
    return event.event_id


def then_a_good_frame_registers(admin, plugin: Plugin, observatory_id: str) -> None:
    data = good_frame()
    announce(plugin, observatory_id, plugin.upload(observatory_id, data))
    wait_for(
        lambda: registered(admin, observatory_id, data),
        timeout_s=SECONDS,
        interval_s=0.1,
        what="the good frame sent after hostile input",
    )


def rejected(admin, observatory_id: str, event_id: str) -> dict:
    return wait_for(
        lambda: rejection_of(admin, observatory_id, event_id),
        timeout_s=SECONDS,
        interval_s=0.1,
        what=f"the rejection of {event_id}",
    )


# ---- hostile objects ------------------------------------------------------------------------

VALID = good_frame()


@REAL_SERVERS
@given(hostile=hostile_fits(VALID))
def test_every_hostile_file_is_rejected_and_a_good_frame_after_it_registers(
    hostile, admin, plugin, observatory
):
    key = plugin.upload(observatory, hostile.data)
    event_id = announce(plugin, observatory, key)
    then_a_good_frame_registers(admin, plugin, observatory)

    rejection = rejected(admin, observatory, event_id)
    assert hostile.words in rejection["reason"], rejection["reason"]
    assert rejection["storage_key"] == key
    assert all(f["storage_key"] != key for f in library(admin, observatory)["items"])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            compressed_header(60_000, 60_000),
            "exceeds a limit: image too large: its header declares 60000 x 60000 = 3600000000"
            " pixels (ZNAXIS1 x ZNAXIS2), more than the limit of 250000000"
            " (CALIB_MAX_IMAGE_PIXELS)",
        ),
        (
            declared_image(NAXIS=4, NAXIS3=1, NAXIS4=1),
            "exceeds a limit: image has 4 axes (NAXIS = 4), more than the limit of 3",
        ),
        (
            header_bytes(("SIMPLE", "T"), ("BITPIX", 8), ("NAXIS", 1), ("NAXIS1", 900_000_000)),
            "exceeds a limit: header longer than 1048576 bytes (CALIB_MAX_HEADER_BYTES)",
        ),
        (
            declared_image(NAXIS1=150_000, NAXIS2=10),
            "header card NAXIS1 = 150000 is out of range for width (1 to 100000)",
        ),
    ],
    ids=["giant ZNAXIS", "4 axes", "900 MB declared before the image", "width card"],
)
def test_each_image_limit_is_named_in_its_rejection(data, reason, admin, plugin, observatory):
    key = plugin.upload(observatory, data)
    event_id = announce(plugin, observatory, key)
    assert reason in rejected(admin, observatory, event_id)["reason"]
    then_a_good_frame_registers(admin, plugin, observatory)


# ---- hostile events --------------------------------------------------------------------------


@REAL_SERVERS
@given(number=hostile_numbers())
@example(number=("width", "18446744073709551615"))
@example(number=("gain", "NaN"))
@example(number=("exposure_s", "1e999"))
def test_a_number_out_of_range_in_an_event_is_a_rejection(
    number, admin, plugin, system, observatory
):
    """Once, never retried: the issue's ``width=18446744073709551615`` used to overflow
    BSON and be redelivered forever."""
    field, raw = number
    event_id = uuid.uuid4().hex
    key = plugin.upload(observatory, good_frame())
    body = msgspec.json.encode(
        {"event_id": event_id, "observatory_id": observatory, "storage_key": key}
    )
    body = body[:-1] + f',"{field}":{raw}}}'.encode()
    if raw in ("NaN", "Infinity", "-Infinity"):  # not JSON: recorded under the body's digest
        event_id = hashlib.sha256(body).hexdigest()
    publish_raw(system.config, f"frame.registered.{observatory}", body)
    then_a_good_frame_registers(admin, plugin, observatory)

    rejection = rejected(admin, observatory, event_id)
    assert rejection["reason"].startswith("invalid event: "), rejection["reason"]
    if raw not in ("NaN", "Infinity", "-Infinity"):
        assert field in rejection["reason"]
    assert all(f["storage_key"] != key for f in library(admin, observatory)["items"])


def test_an_object_of_another_observatory_is_rejected(admin, plugin, observatory):
    """Plugin A naming B's object (or reaching it through ``..``) registers nothing."""
    other = f"{observatory}-b"
    assert (
        admin.post("/api/v1/admin/observatories", json={"id": other, "name": "B"}).status_code
        == 201
    )
    theirs = plugin.upload(other, good_frame())
    tricks = [theirs, theirs.replace(f"frames/{other}/", f"frames/{observatory}/../{other}/")]
    event_ids = [announce(plugin, observatory, key) for key in tricks]
    then_a_good_frame_registers(admin, plugin, observatory)
    for event_id in event_ids:
        rejection = rejected(admin, observatory, event_id)
        assert rejection["reason"] == "storage key outside this observatory's prefix"
    assert library(admin, observatory)["total"] == 1
    assert library(admin, other)["total"] == 0


# ---- hostile HTTP ------------------------------------------------------------------------------


@REAL_SERVERS
@given(number=hostile_numbers())
@example(number=("width", "18446744073709551615"))
def test_a_number_out_of_range_in_a_form_field_is_a_4xx_naming_it(number, admin, observatory):
    field, raw = number
    value = {"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}.get(raw, raw)
    response = admin.post(
        f"{API}/frames",
        data={"observatory_id": observatory, field: value},
        files={"file": ("f.fits", good_frame(), "application/fits")},
    )
    assert response.status_code in (400, 422), response.text
    assert response.json()["error"] in ("out_of_range", "bad_request")
    assert f"form field '{field}'" in response.json()["detail"]
    assert library(admin, observatory)["total"] == 0


def answer_before_the_body(
    base_url: str, path: str, token: str, content_length: int
) -> tuple[int, dict]:
    """POST headers announcing ``content_length`` bytes of JSON and only the first KiB of
    them: the status and body the gateway answers without waiting for the rest (a
    gateway that read the body first would not answer at all)."""
    url = httpx.URL(base_url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {content_length}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((url.host, url.port), timeout=10) as connection:
        connection.sendall(head.encode() + b'{"observatory_id": "' + b"x" * 1024)
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), msgspec.json.decode(body)


def test_a_large_json_body_is_refused_before_it_is_read(admin, observatory):
    """An 8 MB JSON body to ``POST /masters/create``: from a plugin token, a 403 before it
    is read; from an observatory's admin, a 413 naming the limit, also unread."""
    response = admin.post(f"/api/v1/admin/observatories/{observatory}/plugin-tokens")
    assert response.status_code == 201, response.text
    plugin_token = response.json()["token"]
    path = f"{API}/masters/create"

    status, body = answer_before_the_body(str(admin.base_url), path, plugin_token, 8 * 2**20)
    assert status == 403 and body["error"] == "forbidden", body
    status, body = answer_before_the_body(str(admin.base_url), path, ADMIN_TOKEN, 8 * 2**20)
    assert (status, body) == (
        413,
        {
            "error": "payload_too_large",
            "detail": "request body is larger than the limit of 1048576 bytes",
        },
    )


def test_an_upload_declaring_too_many_pixels_is_a_422_and_not_stored(admin, observatory):
    response = admin.post(
        f"{API}/frames",
        data={"observatory_id": observatory},
        files={"file": ("f.fits", compressed_header(60_000, 60_000), "application/fits")},
    )
    assert response.status_code == 422, response.text
    assert "60000 x 60000 = 3600000000 pixels" in response.json()["detail"]
    master = admin.post(
        f"{API}/masters/upload",
        data={"observatory_id": observatory},
        files={"file": ("m.fits", declared_image(NAXIS=4, NAXIS3=1, NAXIS4=1), "image/fits")},
    )
    assert master.status_code == 422, master.text
    assert "image has 4 axes" in master.json()["detail"]
    assert library(admin, observatory)["total"] == 0


# ---- memory --------------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class PeakRss:
    """Samples a process's resident memory in the background; the highest seen."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_the_registrys_memory_stays_bounded_while_hostile_objects_arrive(
    admin, plugin, system, observatory
):
    """Headers that never end (40 MB each, all read at once: before the header limit the
    registry fetched each whole), a 60000 x 60000 compressed header, 900 MB declared
    before the image: each judged from at most 1 MiB of its start."""
    endless = endless_header(40 * 1024 * 1024)
    objects = [endless] * 4 + [
        compressed_header(60_000, 60_000),
        header_bytes(("SIMPLE", "T"), ("BITPIX", 8), ("NAXIS", 1), ("NAXIS1", 900_000_000)),
    ]
    keys = [plugin.upload(observatory, data) for data in objects]
    then_a_good_frame_registers(admin, plugin, observatory)  # the registry is warm
    pid = system.processes["registry"].process.pid
    baseline = rss_bytes(pid)

    with PeakRss(pid) as memory:
        messages = []
        for key in keys:
            event = events.FrameRegistered(
                event_id=uuid.uuid4().hex, observatory_id=observatory, storage_key=key
            )
            messages.append((event, event.event_id))
        plugin.announce(messages)
        for event, _ in messages:
            assert "exceeds a limit" in rejected(admin, observatory, event.event_id)["reason"]
        then_a_good_frame_registers(admin, plugin, observatory)

    growth = memory.peak - baseline
    assert growth < 48 * 1024 * 1024, f"the registry grew by {growth / 2**20:.0f} MiB"
