"""Presigned uploads on the real servers (SPEC §8 ``POST /uploads``, §12): a plugin token
gets an upload URL, PUTs a real FITS file with plain HTTP and no bucket credentials,
publishes ``frame.registered`` and the frame registers; a URL opens only its own key, and
only until it expires; the README's example script runs end to end; the orphan cleanup
keeps what a pending upload or an unhandled registration names."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import msgspec
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from calib_core import events, wiring
from calib_core.presigned import PENDING_UPLOAD_GRACE, UPLOAD_URL_LIFETIME
from calib_infra.backlog import StreamBacklog
from calib_infra.bus import ensure_stream, make_broker, publish
from calib_infra.config import Config
from calib_infra.mongo import mongo_client
from calib_infra.store import ObjectStore, public_endpoint
from tests.integration.api_helpers import API, frame_bytes, library
from tests.support.system import service_config, unique, wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin_upload.py"
ADMIN = "/api/v1/admin"


def load_example():
    spec = importlib.util.spec_from_file_location("plugin_upload_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plugin_token(admin: httpx.Client, observatory_id: str) -> str:
    response = admin.post(f"{ADMIN}/observatories/{observatory_id}/plugin-tokens")
    assert response.status_code == 201, response.text
    return response.json()["token"]


def ask_upload(base_url: str, token: str, observatory_id: str, filename: str) -> dict:
    response = httpx.post(
        f"{base_url}{API}/uploads",
        json={"observatory_id": observatory_id, "filename": filename},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()


def registered_keys(admin: httpx.Client, observatory_id: str) -> set[str]:
    return {item["storage_key"] for item in library(admin, observatory_id)["items"]}


# ---- the object store's presigned PUT -----------------------------------------------------


@pytest.fixture
def store(servers) -> ObjectStore:
    store = ObjectStore(
        service_config(servers.endpoints, unique("calib_presign").replace("-", "_"))
    )
    store.ensure_bucket_sync()
    return store


def test_a_presigned_put_needs_no_credentials_and_opens_only_its_key(store):
    key, other = f"frames/obs/{uuid.uuid4().hex}/a.fits", f"frames/obs/{uuid.uuid4().hex}/b.fits"
    url = store.presigned_put_sync(key, timedelta(minutes=1))
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    assert httpx.put(url, content=b"SIMPLE  =  T").status_code == 200
    assert store.read_range_sync(key, 0, 0) == b"SIMPLE  =  T"
    assert httpx.put(url, content=b"again").status_code == 200  # until it expires: same key

    elsewhere = url.replace(key, other)
    assert httpx.put(elsewhere, content=b"intruder").status_code == 403
    assert httpx.get(url).status_code == 403  # a PUT URL is not a GET URL
    unsigned = url.split("?")[0]
    assert httpx.put(unsigned, content=b"anonymous").status_code == 403
    assert store.stat_sync(other) is None


def test_an_expired_url_is_refused(store):
    key = f"frames/obs/{uuid.uuid4().hex}/late.fits"
    url = store.presigned_put_sync(key, timedelta(seconds=1))
    time.sleep(2.5)
    response = httpx.put(url, content=b"too late")
    assert response.status_code == 403, response.text
    assert store.stat_sync(key) is None


def test_urls_are_signed_for_the_public_endpoint(servers):
    config = service_config(servers.endpoints, unique("calib_public").replace("-", "_"))
    port = config.s3_endpoint.rsplit(":", 1)[1]
    public = msgspec.structs.replace(config, s3_public_endpoint=f"http://localhost:{port}")
    store = ObjectStore(public)
    store.ensure_bucket_sync()
    key = f"frames/obs/{uuid.uuid4().hex}/public.fits"
    url = store.presigned_put_sync(key, timedelta(minutes=1))
    assert urlsplit(url).netloc == f"localhost:{port}"  # as plugins reach it, not as we do
    assert httpx.put(url, content=b"from outside").status_code == 200
    assert store.read_range_sync(key, 0, 0) == b"from outside"


@pytest.mark.parametrize(
    ("public", "secure", "expected"),
    [
        ("", False, ("127.0.0.1:8333", False)),
        ("s3.example.org", True, ("s3.example.org", True)),
        ("https://s3.example.org", False, ("s3.example.org", True)),
        ("http://s3.example.org:9000/", True, ("s3.example.org:9000", False)),
    ],
)
def test_the_public_endpoint_is_host_port_or_a_url(public, secure, expected):
    config = Config(s3_endpoint="127.0.0.1:8333", s3_public_endpoint=public, s3_secure=secure)
    assert public_endpoint(config) == expected


@pytest.mark.parametrize("public", ["ftp://s3.example.org", "https://s3.example.org/bucket"])
def test_a_public_endpoint_with_a_path_or_another_scheme_is_refused(public):
    with pytest.raises(ValueError, match="CALIB_S3_PUBLIC_ENDPOINT"):
        public_endpoint(Config(s3_public_endpoint=public))


# ---- the unhandled registrations, read from the stream -----------------------------------


def test_the_backlog_is_what_the_registrys_consumer_has_not_acknowledged(servers):
    """The adapter over a durable consumer of this test's own, on the CALIBRATION stream,
    for an observatory of its own, and its dead letters."""
    config = service_config(servers.endpoints, unique("calib_backlog").replace("-", "_"))
    observatory_id = unique("obs")
    durable = unique("backlog-test")
    consumer = wiring.Consumer(durable, f"{events.FRAME_REGISTERED}.{observatory_id}", "test")

    async def scenario() -> None:
        broker = make_broker(config)
        await broker.connect()
        js = broker.connection.jetstream()
        try:
            await ensure_stream(broker)
            backlog = StreamBacklog(broker, _NoLog(), consumer=consumer)
            keys = [f"frames/{observatory_id}/{i}.fits" for i in range(3)]
            for key in keys:
                event = events.FrameRegistered(
                    event_id=uuid.uuid4().hex, observatory_id=observatory_id, storage_key=key
                )
                await publish(
                    broker,
                    events.FRAME_REGISTERED,
                    event,
                    observatory_id=observatory_id,
                    msg_id=event.event_id,
                )
            await broker.connection.publish(
                events.subject(events.FRAME_REGISTERED, observatory_id), b"{not json"
            )
            await broker.connection.flush()
            # never bound: every registration of the stream is unhandled
            assert await backlog.unhandled_storage_keys(observatory_id) == set(keys)

            await js.add_consumer(
                wiring.STREAM.name,
                ConsumerConfig(
                    durable_name=durable,
                    filter_subject=consumer.subject,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                ),
            )
            subscription = await js.pull_subscribe_bind(durable, stream=wiring.STREAM.name)
            first, second = await subscription.fetch(2, timeout=5)
            await first.ack_sync()
            assert await backlog.unhandled_storage_keys(observatory_id) == set(keys[1:])
            assert (
                await StreamBacklog(
                    broker, _NoLog(), consumer=consumer, limit=1
                ).unhandled_storage_keys(observatory_id)
                is None
            )  # too long to read at once
            await second.ack_sync()
            assert await backlog.unhandled_storage_keys(observatory_id) == {keys[2]}
            for message in await subscription.fetch(2, timeout=5):
                await message.ack_sync()
            assert await backlog.unhandled_storage_keys(observatory_id) == set()

            # given up on, terminated, waiting for an administrator: still unhandled
            client = mongo_client(config)
            letters = client[config.mongodb_db]["dead_letters"]
            dead_key = f"frames/{observatory_id}/dead.fits"

            for consumer_name, status, key in (
                (durable, "dead", dead_key),
                (durable, "retrying", f"frames/{observatory_id}/retrying.fits"),
                (durable, "replayed", f"frames/{observatory_id}/replayed.fits"),
                ("stacker", "dead", f"frames/{observatory_id}/other.fits"),
            ):
                await letters.insert_one(
                    {
                        "consumer": consumer_name,
                        "status": status,
                        "observatory_id": observatory_id,
                        "body": json.dumps({"storage_key": key}).encode(),
                    }
                )
            await letters.insert_one(
                {"consumer": durable, "status": "dead", "observatory_id": observatory_id}
            )
            with_letters = StreamBacklog(broker, _NoLog(), consumer=consumer, dead_letters=letters)
            assert await with_letters.unhandled_storage_keys(observatory_id) == {dead_key}
            assert await with_letters.unhandled_storage_keys("obs-elsewhere") == set()
            await client.close()
            await js.delete_consumer(wiring.STREAM.name, durable)
        finally:
            await broker.stop()
        assert await backlog.unhandled_storage_keys(observatory_id) is None  # disconnected

    asyncio.run(scenario())


class _NoLog:
    def warning(self, event: str, **fields) -> None:
        pass


# ---- a plugin's whole flow through the services -------------------------------------------


def test_a_plugin_uploads_with_a_presigned_url_and_its_frame_registers(
    admin, observatory, system, tmp_path
):
    token = plugin_token(admin, observatory)
    data = frame_bytes("dark", index=1, seed=4242)
    path = tmp_path / "Dark 0001.fits"
    path.write_bytes(data)

    example = load_example()
    [event], plan = example.run(system.base_url, system.config.nats_url, token, observatory, [path])
    key = event["storage_key"]
    assert key.startswith(f"frames/{observatory}/") and key.endswith("/Dark_0001.fits")
    assert "items" in plan

    wait_for(
        lambda: key in registered_keys(admin, observatory),
        timeout_s=30,
        what="the frame's registration",
    )
    [frame] = library(admin, observatory)["items"]
    assert frame["frame_type"] == "dark" and frame["size_bytes"] == len(data)

    # another upload's URL opens its own key only
    ticket = ask_upload(system.base_url, token, observatory, "second.fits")
    elsewhere = ticket["upload_url"].replace(ticket["storage_key"], key)
    assert httpx.put(elsewhere, content=b"overwrite").status_code == 403
    download = admin.get(f"{API}/frames/{frame['id']}/download")
    assert download.status_code == 200 and download.content == data


def test_the_example_script_runs_end_to_end(admin, observatory, system, tmp_path):
    token = plugin_token(admin, observatory)
    files = []
    for index in range(2):
        path = tmp_path / f"flat_{index}.fits"
        path.write_bytes(frame_bytes("flat", index=index, seed=4343, filter_name="L"))
        files.append(str(path))
    finished = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--url",
            system.base_url,
            "--nats",
            system.config.nats_url,
            "--token",
            token,
            "--observatory",
            observatory,
            *files,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert finished.returncode == 0, finished.stderr
    lines = [json.loads(line) for line in finished.stdout.splitlines()]
    uploads, plan = lines[:-1], lines[-1]
    assert [u["file"] for u in uploads] == files
    assert "items" in plan["capture_plan"]
    keys = {u["storage_key"] for u in uploads}
    wait_for(
        lambda: registered_keys(admin, observatory) == keys,
        timeout_s=30,
        what="both frames' registration",
    )


def test_the_example_script_says_why_it_fails(system, observatory, tmp_path):
    path = tmp_path / "dark.fits"
    path.write_bytes(b"SIMPLE")
    finished = subprocess.run(
        [sys.executable, str(EXAMPLE), "--url", system.base_url, "--token", "calib_" + "x" * 43]
        + ["--observatory", observatory, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 1
    assert "plugin upload failed" in finished.stderr and "unauthorized" in finished.stderr


def test_the_orphan_cleanup_keeps_a_pending_uploads_object(admin, observatory, system, clock):
    """The services' clock runs two days ahead of the bucket's: the object looks two days
    old, past the orphan age, yet its upload is pending and it stays; once the upload is
    over (its URL expired, plus the grace) and nothing announced it, it goes."""
    token = plugin_token(admin, observatory)
    start = clock.now() + timedelta(days=2)
    clock.move_to(start)
    ticket = ask_upload(system.base_url, token, observatory, "slow.fits")
    assert httpx.put(ticket["upload_url"], content=frame_bytes("bias", seed=77)).status_code == 200

    def cleanup() -> dict:
        response = admin.post(
            f"{API}/maintenance/retention-cleanup", params={"observatory_id": observatory}
        )
        assert response.status_code == 200, response.text
        return response.json()

    report = cleanup()
    assert (report["orphans_deleted"], report["pending_uploads_removed"]) == (0, 0)
    store = ObjectStore(system.config)
    assert store.stat_sync(ticket["storage_key"]) is not None

    clock.move_to(start + UPLOAD_URL_LIFETIME + PENDING_UPLOAD_GRACE + timedelta(minutes=1))
    report = cleanup()
    assert (report["orphans_deleted"], report["pending_uploads_removed"]) == (1, 1)
    assert store.stat_sync(ticket["storage_key"]) is None
