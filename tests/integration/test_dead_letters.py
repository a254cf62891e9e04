"""Poison messages through the real servers (SPEC §12): a ``frame.registered`` event that
keeps failing for a transient reason (S3 is down) is retried with backoff, becomes a dead
letter after ``CALIB_MAX_DELIVERIES`` failures, is listed to the server admin and, once
S3 is back, replayed and registered; an undecodable message is a permanent dead letter at
once; the stream is bounded as configured, an existing stream updated.

The system here is its own (servers, database, a gateway, a registry and a scheduler
with ``CALIB_MAX_DELIVERIES=3``): stopping S3 must not disturb the session's services."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import msgspec
import pytest

from calib_core import events
from calib_infra import bus
from calib_infra.config import Config
from tests.integration.registry_helpers import API, frame_bytes, publish_raw
from tests.integration.test_cli_admin import calib, output
from tests.support.plugin import Plugin
from tests.support.system import (
    ADMIN_TOKEN,
    Services,
    consumer_drained,
    free_port,
    scrape,
    service_config,
    start_servers,
    unique,
    wait_for,
)

ADMIN = "/api/v1/admin"
MAX_DELIVERIES = 3


def stream_limits(config: Config) -> tuple[float, int]:
    """The CALIBRATION stream's (max age in seconds, max bytes), as the server has them."""

    async def ask() -> tuple[float, int]:
        connection = await bus.connect(config)
        try:
            info = await connection.jetstream().stream_info(events.STREAM_NAME)
            return info.config.max_age, info.config.max_bytes
        finally:
            await connection.close()

    return asyncio.run(ask())


def dead_letters(admin: httpx.Client, **params) -> list[dict]:
    response = admin.get(f"{ADMIN}/dead-letters", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


@pytest.fixture
def own_system(tmp_path):
    servers = start_servers(tmp_path / "servers")
    config = service_config(
        servers.endpoints,
        unique("calib_dead").replace("-", "_"),
        gateway_port=free_port(),
        max_deliveries=MAX_DELIVERIES,
        stream_max_age_days=7.0,
        stream_max_gb=1.0,
        # the daily maintenance asks a lifecycle service that does not run here
        expiry_check_interval_s=10 * 365 * 86400.0,
        retention_interval_s=10 * 365 * 86400.0,
    )
    services = Services(config=config, log_dir=tmp_path / "logs", bus=servers.endpoints.bus)
    try:
        yield servers, services
    finally:
        services.stop()
        servers.stop()


def test_a_message_failing_past_the_bound_is_a_dead_letter_listed_and_replayed(own_system):
    servers, services = own_system
    config = services.config
    plugin = Plugin(config)  # makes the stream as a tool does: unbounded by this config
    plugin.announce([])
    services.create_schema()
    for name in ("gateway", "registry", "scheduler"):
        services.start(name)
    services.wait_ready()
    # the services bring the existing stream to their bounds
    assert stream_limits(config) == (7 * 86400.0, 1024**3)

    with httpx.Client(
        base_url=services.base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as admin:
        observatory = unique("obs")
        created = admin.post(f"{ADMIN}/observatories", json={"id": observatory, "name": "Dead"})
        assert created.status_code == 201, created.text
        data = frame_bytes("dark")
        key = plugin.upload(observatory, data)

        # S3 goes away: the registry cannot read the object, a transient failure
        servers.processes["s3"].stop()
        event = events.FrameRegistered(
            event_id=uuid.uuid4().hex, observatory_id=observatory, storage_key=key
        )
        plugin.announce([(event, event.event_id)])
        # and a body no redelivery would make valid, on a subject the scheduler consumes
        publish_raw(config, f"{events.MASTER_CREATED}.{observatory}", b'{"master_id": ')

        def given_up() -> list[dict]:
            return [d for d in dead_letters(admin, status="dead") if d["consumer"] == "registry"]

        [letter] = wait_for(given_up, timeout_s=60, what="the registry's dead letter")
        assert letter["subject"] == f"{events.FRAME_REGISTERED}.{observatory}"
        assert msgspec.json.decode(letter["body"].encode(), type=events.FrameRegistered) == event
        assert (letter["attempts"], letter["status"], letter["permanent"]) == (3, "dead", False)
        assert letter["observatory_id"] == observatory and letter["error"]
        assert letter["last_seen"] > letter["first_seen"]  # retried after a backoff
        # terminated: the stream does not deliver it again
        wait_for(lambda: consumer_drained(config, "registry"), what="the registry to drain")
        assert dead_letters(admin, status="retrying") == []

        [rejected] = [d for d in dead_letters(admin) if d["consumer"] != "registry"]
        assert rejected["consumer"] == "scheduler-master-created"
        assert rejected["permanent"] and rejected["attempts"] == 1
        assert rejected["body"] == '{"master_id": '
        assert rejected["error"].startswith("invalid event: ")

        # and as Prometheus counts them
        registry = scrape(services, "registry")
        labels = (("consumer", "registry"), ("event", events.FRAME_REGISTERED))
        assert registry["calib_messages_failed_total", labels] == MAX_DELIVERIES
        assert registry["calib_dead_letters_total", (*labels, ("permanent", "false"))] == 1
        scheduler = scrape(services, "scheduler")
        labels = (("consumer", rejected["consumer"]), ("event", events.MASTER_CREATED))
        assert scheduler["calib_dead_letters_total", (*labels, ("permanent", "true"))] == 1
        assert scrape(services, "gateway")["calib_dead_letters_waiting", ()] == 2

        # S3 is back; the administrator replays the dead letter: the frame is registered
        servers.start(nats=False, mongodb=False)
        response = admin.post(f"{ADMIN}/dead-letters/{letter['id']}/replay")
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "replayed"

        def registered() -> list[dict]:
            return admin.get(f"{API}/library/{observatory}").json()["items"]

        [frame] = wait_for(registered, timeout_s=30, what="the replayed frame")
        assert frame["storage_key"] == key
        listed = {d["id"]: d for d in dead_letters(admin)}
        assert listed[letter["id"]]["status"] == "replayed"
        assert admin.get(f"{API}/health").json()["dead_letters"] == 1  # the permanent one
        assert scrape(services, "gateway")["calib_dead_letters_waiting", ()] == 1
        unknown = admin.post(f"{ADMIN}/dead-letters/no-such-letter/replay")
        assert unknown.status_code == 404
        # the command line lists them too
        listed = output(calib(services, "list-dead-letters", "--status", "replayed"))["items"]
        assert [d["id"] for d in listed] == [letter["id"]]
