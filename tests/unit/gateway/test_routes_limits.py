"""SPEC §12 over the fakes: bodies bounded before they are read (JSON 1 MiB, uploads
``CALIB_MAX_UPLOAD_MB``, at most 64 form fields), the caller's permission checked before
a body is read, numbers in forms and bodies held to their ranges (422 naming the field),
and uploaded files held to the image limits. Nothing refused is stored.

Whether a body was read is observed through httpx's ASGI transport, which hands the
application the body one chunk at a time, as it asks (Litestar's test client reads it
whole first)."""

from __future__ import annotations

from collections.abc import Iterable

import httpx
import numpy as np
import pytest

from calib_stack import synthetic
from tests.integration.api_helpers import frame_bytes, master_bytes
from tests.support.hostile import compressed_header, declared_image
from tests.support.xisf import xisf_bytes
from tests.unit.gateway.harness import API, OTHER, OWN, UPLOAD_LIMIT_BYTES, Api

MIB = 1024 * 1024
CHUNK = 64 * 1024
BOUNDARY = "limits-boundary"


async def send(
    api: Api,
    method: str,
    path: str,
    chunks: Iterable[bytes],
    *,
    role: str,
    headers: dict[str, str] | None = None,
) -> tuple[httpx.Response, int]:
    """Send the body chunk by chunk; the response and how many chunks the app pulled."""
    pulled = 0

    async def body():
        nonlocal pulled
        for chunk in chunks:
            pulled += 1
            yield chunk

    token = api.tokens[role]
    transport = httpx.ASGITransport(app=api.client.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client:
        response = await client.request(
            method,
            path,
            content=body(),
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
        )
    return response, pulled


def big_json(size: int) -> list[bytes]:
    """A JSON object of about ``size`` bytes, in chunks."""
    text = b'{"observatory_id": "' + OWN.encode() + b'", "frame_type": "dark", "camera_name": "'
    text += b"x" * size + b'"}'
    return [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]


def multipart(fields: list[tuple[str, str]], file: bytes | None = None) -> list[bytes]:
    """A multipart body: the fields in order, then the file, in chunks (the fields and the
    file part's headers in the first)."""
    head = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields
    )
    if file is None:
        return [head + f"--{BOUNDARY}--\r\n".encode()]
    head += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="f.fits"\r\n'
        "Content-Type: application/fits\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return [head] + [file[i : i + CHUNK] for i in range(0, len(file), CHUNK)] + [tail]


MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def stored_keys(api: Api, prefix: str) -> list[str]:
    return [key for key in api.world.store.objects if key.startswith(prefix)]


# ---- JSON bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", f"{API}/masters/create"), ("PUT", f"{API}/settings/{OWN}")],
)
async def test_a_json_body_announced_over_1_mib_is_a_413_unread(api, method, path):
    chunks = big_json(8 * MIB)
    length = str(sum(map(len, chunks)))
    response, pulled = await send(
        api, method, path, chunks, role="obs_admin", headers={"content-length": length}
    )
    assert response.status_code == 413, response.text
    assert response.json() == {
        "error": "payload_too_large",
        "detail": "request body is larger than the limit of 1048576 bytes",
    }
    assert pulled == 0


async def test_a_json_body_streamed_past_1_mib_is_a_413_once_past_it(api):
    response, pulled = await send(
        api, "POST", f"{API}/masters/create", big_json(8 * MIB), role="obs_admin"
    )
    assert response.status_code == 413, response.text
    assert "limit of 1048576 bytes" in response.json()["detail"]
    assert pulled <= MIB // CHUNK + 2
    assert await api.world.jobs.list(OWN) == []


@pytest.mark.parametrize("role", ["plugin", "viewer", "no_token", "forged"])
async def test_a_caller_who_may_create_masters_nowhere_is_refused_before_the_body_is_read(
    api, role
):
    response, pulled = await send(
        api, "POST", f"{API}/masters/create", big_json(8 * MIB), role=role
    )
    assert response.status_code in (401, 403), response.text
    assert pulled == 0
    assert set(response.json()) == {"error", "detail"}


async def test_a_caller_is_refused_before_a_body_for_an_observatory_in_the_path_is_read(api):
    for role in ("plugin", "viewer", "other_admin"):
        response, pulled = await send(
            api, "PUT", f"{API}/settings/{OWN}", big_json(8 * MIB), role=role
        )
        assert (response.status_code, pulled) == (403, 0), role


async def test_an_admin_of_another_observatory_is_refused_for_the_one_the_body_names(api):
    body = {"observatory_id": OWN, "frame_type": "dark", "force": True}
    response = await api.post(f"{API}/masters/create", role="other_admin", json=body)
    assert response.status_code == 403
    assert f"observatory '{OWN}'" in response.json()["detail"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("gain", -5.0), ("offset", 2_000_000), ("exposure_s", 90_000.0), ("temperature_c", -300)],
)
async def test_a_number_out_of_range_in_a_json_body_is_a_422_naming_the_field(api, field, value):
    body = {"observatory_id": OWN, "frame_type": "dark", field: value, "force": True}
    response = await api.post(f"{API}/masters/create", role="obs_admin", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "out_of_range" and response.json()["field"] == field
    assert response.json()["detail"].startswith(f"{field} = ")
    assert await api.world.jobs.list(OWN) == []


async def test_a_number_json_cannot_hold_is_refused(api):
    body = b'{"observatory_id": "%s", "frame_type": "dark", "gain": 1e999}' % OWN.encode()
    response = await api.post(
        f"{API}/masters/create",
        role="obs_admin",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("Number out of range")


# ---- uploads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [f"{API}/frames", f"{API}/masters/upload"])
async def test_an_upload_announced_over_its_limit_is_a_413_unread(api, path):
    chunks = multipart([("observatory_id", OWN)], b"\0" * (UPLOAD_LIMIT_BYTES * 8))
    length = str(sum(map(len, chunks)))
    response, pulled = await send(
        api,
        "POST",
        path,
        chunks,
        role="server_admin",
        headers={**MULTIPART, "content-length": length},
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"
    assert "request body is larger than the limit of" in response.json()["detail"]
    assert f"a file of at most {UPLOAD_LIMIT_BYTES} bytes" in response.json()["detail"]
    assert pulled == 0


@pytest.mark.parametrize(
    ("path", "role"),
    [
        (f"{API}/frames", "viewer"),
        (f"{API}/masters/upload", "viewer"),
        (f"{API}/masters/upload", "plugin"),
    ],
)
async def test_a_caller_who_may_upload_nowhere_is_refused_before_the_body_is_read(api, path, role):
    chunks = multipart([("observatory_id", OWN)], b"\0" * (UPLOAD_LIMIT_BYTES // 2))
    response, pulled = await send(api, "POST", path, chunks, role=role, headers=MULTIPART)
    assert (response.status_code, pulled) == (403, 0), response.text


@pytest.mark.parametrize(
    ("path", "role"),
    [(f"{API}/frames", "plugin"), (f"{API}/masters/upload", "other_admin")],
)
async def test_an_upload_to_another_observatory_stops_at_the_field_naming_it(api, path, role):
    target = OTHER if role == "plugin" else OWN
    chunks = multipart([("observatory_id", target)], b"\0" * (UPLOAD_LIMIT_BYTES // 2))
    response, pulled = await send(api, "POST", path, chunks, role=role, headers=MULTIPART)
    assert response.status_code == 403, response.text
    assert pulled == 1  # the chunk holding the field; none of the file's
    assert stored_keys(api, f"frames/{target}/") == []


async def test_at_most_64_form_fields(api):
    fields = [("observatory_id", OWN)] + [(f"x{i}", "1") for i in range(64)]
    response, _ = await send(
        api,
        "POST",
        f"{API}/frames",
        multipart(fields, frame_bytes("dark")),
        role="server_admin",
        headers=MULTIPART,
    )
    assert response.status_code == 413, response.text
    assert response.json() == {
        "error": "payload_too_large",
        "detail": "more than the limit of 64 form fields",
    }
    assert stored_keys(api, f"frames/{OWN}/") == []


async def test_a_form_field_over_its_length_is_a_413(api):
    fields = [("observatory_id", OWN), ("camera_name", "x" * (64 * 1024 + 1))]
    response, _ = await send(
        api, "POST", f"{API}/frames", multipart(fields), role="server_admin", headers=MULTIPART
    )
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == (
        "form field 'camera_name' is longer than the limit of 65536 bytes"
    )


async def test_part_headers_over_their_length_are_a_413(api):
    """The parser bounds each header line (4 KiB) and their count (8); their total is
    bounded too."""
    padding = "".join(f"X-Padding-{i}: {'p' * 4000}\r\n" for i in range(5))
    header = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="gain"\r\n{padding}\r\n'
    body = (header + f"1\r\n--{BOUNDARY}--\r\n").encode()
    response, _ = await send(
        api, "POST", f"{API}/frames", [body], role="server_admin", headers=MULTIPART
    )
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == (
        "a part's headers are longer than the limit of 16384 bytes"
    )


async def upload(api: Api, path: str, data: bytes, role: str = "server_admin", **fields):
    form = {"observatory_id": OWN, **{k: str(v) for k, v in fields.items()}}
    files = {"file": ("f.fits", data, "application/fits")}
    return await api.post(path, role=role, data=form, files=files)


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("width", "18446744073709551615", "form field 'width' = 18446744073709551615 is out of"),
        ("height", "0", "form field 'height' = 0 is out of range for height (1 to 100000)"),
        ("gain", "nan", "form field 'gain' = nan is not a finite number"),
        ("offset", "inf", "form field 'offset' = inf is not a finite number"),
        ("exposure_s", "1e999", "form field 'exposure_s' = inf is not a finite number"),
        ("exposure_s", "-1", "form field 'exposure_s' = -1.0 is out of range"),
        ("temperature_c", "-274", "form field 'temperature_c' = -274.0 is out of range"),
        ("set_temperature_c", "101", "form field 'set_temperature_c' = 101.0 is out of range"),
        ("rotation_deg", "-inf", "form field 'rotation_deg' = -inf is not a finite number"),
    ],
)
@pytest.mark.parametrize("path", [f"{API}/frames", f"{API}/masters/upload"])
async def test_a_form_number_out_of_range_is_a_422_naming_the_field(
    api, path, field, value, detail
):
    response = await upload(api, path, master_bytes(seed=7), **{field: value})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "out_of_range" and body["field"] == field
    assert body["detail"].startswith(detail), body["detail"]
    assert stored_keys(api, f"frames/{OWN}/") == stored_keys(api, f"masters/{OWN}/") == []


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (
            compressed_header(60_000, 60_000),
            "file: image too large: its header declares 60000 x 60000 = 3600000000 pixels"
            " (ZNAXIS1 x ZNAXIS2), more than the limit of 250000000 (CALIB_MAX_IMAGE_PIXELS)",
        ),
        (
            declared_image(NAXIS1=30_000, NAXIS2=30_000),
            "file: image too large: its header declares 30000 x 30000 = 900000000 pixels",
        ),
        (
            declared_image(NAXIS=4, NAXIS3=1, NAXIS4=1),
            "file: image has 4 axes (NAXIS = 4), more than the limit of 3",
        ),
    ],
)
@pytest.mark.parametrize("path", [f"{API}/frames", f"{API}/masters/upload"])
async def test_a_file_declaring_more_than_the_image_limits_is_a_422_and_not_stored(
    api, path, data, detail
):
    response = await upload(api, path, data)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(detail)
    assert stored_keys(api, f"frames/{OWN}/") == stored_keys(api, f"masters/{OWN}/") == []
    assert await api.world.frames.masters(OWN) == []


async def test_an_xisf_frame_is_held_to_the_image_limits_too(api):
    tiny = np.ones((48, 64), np.uint16)
    giant = xisf_bytes(tiny, image_attributes={"geometry": "60000:60000:1"})
    response = await upload(api, f"{API}/frames", giant)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(
        "file: image too large: its geometry '60000:60000:1' declares 3600000000 samples"
    )
    assert stored_keys(api, f"frames/{OWN}/") == []
    response = await upload(api, f"{API}/frames", xisf_bytes(tiny))
    assert response.status_code == 202, response.text
    assert response.json()["storage_key"].endswith(".xisf")


async def test_a_frame_within_the_limits_still_uploads_and_registers(api):
    observatory_id = await api.observatory()
    response = await upload(api, f"{API}/frames", frame_bytes("dark", index=9), role="server_admin")
    assert response.status_code == 202, response.text
    response = await api.post(
        f"{API}/frames",
        data={"observatory_id": observatory_id, "width": "64", "gain": "0"},
        files={"file": ("f.fits", frame_bytes("dark", index=10), "application/fits")},
    )
    assert response.status_code == 202, response.text
    assert response.json()["storage_key"].startswith(f"frames/{observatory_id}/")


async def test_an_upload_body_may_be_larger_than_the_json_limit(api):
    """The upload routes are bounded by ``CALIB_MAX_UPLOAD_MB`` (1 MiB here, for the file)
    and the form's limits, not by the 1 MiB of JSON bodies."""
    header = {"IMAGETYP": "DARK", "INSTRUME": "cam", "EXPTIME": 30.0}
    data = synthetic.fits_bytes(np.zeros((1000, 512), dtype=np.uint16), header)
    assert MIB - 64 * 1024 < len(data) <= UPLOAD_LIMIT_BYTES
    observatory_id = await api.observatory()
    response = await api.post(
        f"{API}/frames",
        data={"observatory_id": observatory_id, "readout_mode": "r" * 60_000},
        files={"file": ("f.fits", data, "application/fits")},
    )
    assert response.status_code == 202, response.text
    assert api.world.store.data(response.json()["storage_key"]) == data
