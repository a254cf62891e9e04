"""The bus is never open (SPEC §10, §12): tried against the real NATS server and gateway
as an anonymous client, a plugin and an attacker would."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import nats
import nats.errors
import pytest

from calib_core import events
from calib_core.busaccess import inbox_prefix
from calib_infra import bus
from tests.integration.api_helpers import frame_bytes
from tests.support.plugin import Plugin
from tests.support.system import unique, wait_for

pytestmark = pytest.mark.usefixtures("system")


def plugin_token(admin, observatory: str) -> tuple[str, str]:
    """(token, token id) of a new plugin token of ``observatory``."""
    issued = admin.post(f"/api/v1/admin/observatories/{observatory}/plugin-tokens")
    assert issued.status_code == 201, issued.text
    return issued.json()["token"], issued.json()["id"]


async def refused(url: str, **credentials) -> str:
    """Why the server refuses a connection with ``credentials``."""
    with pytest.raises(nats.errors.Error) as refusal:
        connection = await nats.connect(
            url, allow_reconnect=False, connect_timeout=3, max_reconnect_attempts=0, **credentials
        )
        await connection.close()
    return str(refusal.value)


class PluginConnection:
    """A plugin's connection, recording what the server tells it."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.disconnected = asyncio.Event()
        self.connection: nats.NATS | None = None

    async def open(self, url: str, token: str, observatory: str) -> PluginConnection:
        async def error(problem: Exception) -> None:
            self.errors.append(str(problem))

        async def disconnected() -> None:
            self.disconnected.set()

        self.connection = await nats.connect(
            url,
            token=token,
            inbox_prefix=inbox_prefix(observatory),
            error_cb=error,
            disconnected_cb=disconnected,
            # A cut-off connection stays cut (the server's refusal of a new one is tested on
            # its own): nats-py can leave a reconnect task running past close() when the
            # server refuses a reconnect, and the test's event loop then never ends.
            allow_reconnect=False,
        )
        return self

    async def publish_frame(self, observatory: str, key: str = "frames/x.fits"):
        """A JetStream publish of ``frame.registered.<observatory>``; its ack or error."""
        body = msgspec.json.encode(
            events.FrameRegistered(
                event_id=uuid.uuid4().hex, observatory_id=observatory, storage_key=key
            )
        )
        return await self.connection.jetstream(timeout=2).publish(
            events.subject(events.FRAME_REGISTERED, observatory),
            body,
            headers={"Nats-Msg-Id": uuid.uuid4().hex},
        )


def test_an_anonymous_or_wrongly_credentialed_connection_is_refused(servers, admin):
    url = servers.endpoints.nats_url

    async def attempts() -> list[str]:
        user_token = admin.post(
            "/api/v1/admin/users", json={"name": "u", "server_admin": False}
        ).json()["token"]
        return [
            await refused(url),
            await refused(url, user="registry", password="guessed"),
            await refused(url, token="calib_not-a-token"),
            await refused(url, token=user_token),  # an API user's token is not a plugin's
        ]

    for reason in asyncio.run(attempts()):
        assert "authorization violation" in reason.lower(), reason


def test_a_plugin_may_publish_only_its_own_frames(servers, admin, observatory):
    other = unique("obs")
    assert admin.post("/api/v1/admin/observatories", json={"id": other, "name": "B"}).is_success
    token, _ = plugin_token(admin, observatory)
    url = servers.endpoints.nats_url

    async def attempts() -> PluginConnection:
        plugin = await PluginConnection().open(url, token, observatory)
        try:
            ack = await plugin.publish_frame(observatory, f"frames/{observatory}/a.fits")
            assert ack.stream == events.STREAM_NAME
            with pytest.raises(nats.errors.TimeoutError):  # no ack: the server dropped it
                await plugin.publish_frame(other)
            for subject in (
                events.subject(events.STACK_REQUESTED, observatory),
                events.subject(events.MASTER_CREATED, observatory),
                f"{events.LIFECYCLE_MAINTENANCE}.{observatory}",
                "$JS.API.STREAM.DELETE.CALIBRATION",
            ):
                await plugin.connection.publish(subject, b"{}")
            await plugin.connection.subscribe(">")
            await plugin.connection.subscribe(f"{events.FRAME_REGISTERED}.*")
            await plugin.connection.flush()
            await asyncio.sleep(0.3)
            return plugin
        finally:
            await plugin.connection.close()

    plugin = asyncio.run(attempts())
    denied = " ".join(plugin.errors)  # as nats-py reports them (in lower case)
    assert f'permissions violation for publish to "frame.registered.{other}"' in denied
    for subject in ("stack.requested", "master.created", "lifecycle.maintenance"):
        assert f'publish to "{subject}.' in denied, subject
    assert 'publish to "$js.api.stream.delete.calibration"' in denied
    assert 'subscription to ">"' in denied
    assert 'subscription to "frame.registered.*"' in denied
    # nothing of the denied publishes reached the stream
    held = asyncio.run(_stream_subjects(servers))
    assert events.subject(events.FRAME_REGISTERED, other) not in held
    assert events.subject(events.STACK_REQUESTED, observatory) not in held


async def _stream_subjects(servers) -> set[str]:
    config = _tool_config(servers)
    connection = await bus.connect(config)
    try:
        info = await connection.jetstream().stream_info(events.STREAM_NAME, subjects_filter=">")
        return set(info.state.subjects or {})
    finally:
        await connection.close()


def _tool_config(servers):
    from tests.support.system import service_config

    return service_config(servers.endpoints, "unused")


def test_a_plugin_token_registers_frames_over_the_bus(system, servers, admin, observatory):
    token, _ = plugin_token(admin, observatory)
    data = frame_bytes("dark", index=7)
    key = Plugin(system.config).upload(observatory, data)

    async def publish() -> None:
        plugin = await PluginConnection().open(servers.endpoints.nats_url, token, observatory)
        try:
            await plugin.publish_frame(observatory, key)
        finally:
            await plugin.connection.close()

    asyncio.run(publish())
    frames = wait_for(
        lambda: admin.get(f"/api/v1/calibration/library/{observatory}").json()["items"],
        timeout_s=30,
        what="the frame to register",
    )
    assert [f["storage_key"] for f in frames] == [key]


def test_a_service_cannot_read_the_authorization_requests(servers):
    """They carry plugin tokens: only the gateway, which answers them, may subscribe."""
    config = _tool_config(servers)

    async def attempt() -> list[str]:
        errors: list[str] = []

        async def error(problem: Exception) -> None:
            errors.append(str(problem))

        connection = await bus.connect(config, error_cb=error)
        try:
            await connection.subscribe("$SYS.REQ.USER.AUTH")
            await connection.subscribe("$SYS.>")
            await connection.flush()
            await asyncio.sleep(0.3)
        finally:
            await connection.close()
        return errors

    denied = " ".join(asyncio.run(attempt()))
    assert 'subscription to "$sys.req.user.auth"' in denied
    assert 'subscription to "$sys.>"' in denied


def test_a_revoked_token_is_cut_off_within_seconds(servers, admin, observatory):
    token, token_id = plugin_token(admin, observatory)
    url = servers.endpoints.nats_url

    async def revoke_while_connected() -> tuple[float, str]:
        plugin = await PluginConnection().open(url, token, observatory)
        try:
            await plugin.publish_frame(observatory, f"frames/{observatory}/b.fits")
            loop = asyncio.get_running_loop()
            revoked_at = loop.time()
            response = await asyncio.to_thread(admin.delete, f"/api/v1/admin/tokens/{token_id}")
            assert response.status_code == 204
            await asyncio.wait_for(plugin.disconnected.wait(), timeout=10)
            cut_after = loop.time() - revoked_at
            return cut_after, await refused(url, token=token)
        finally:
            await plugin.connection.close()

    cut_after, reason = asyncio.run(revoke_while_connected())
    assert cut_after < 10
    assert "authorization violation" in reason.lower()
