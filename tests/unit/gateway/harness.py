"""The gateway over the in-memory fakes, for route tests with Litestar's test client: a
:class:`FakeWorld` behind every use case, the lifecycle service answered in-process by
its use cases, fakes of the gateway's own ports, and a token for every role of SPEC §8."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import httpx
import msgspec
from litestar.testing import AsyncTestClient

from calib_app import access as admin
from calib_app.access import Access
from calib_app.calibration import calibrate
from calib_app.lifecycle import frame_preview
from calib_app.maintenance import run_maintenance
from calib_app.needs import Inventory
from calib_app.presigned import PresignedUploads
from calib_app.uploads import Uploads
from calib_core import events
from calib_core.access import Membership
from calib_gateway.app import create_app
from calib_gateway.dependencies import Gateway
from calib_gateway.errors import DependencyUnavailableError
from calib_gateway.ports import Backlog, ProcessHealth
from tests.unit.app.fakes import (
    FakeEventPublisher,
    FakeLifecycleService,
    FakeLightCalibrator,
    FakeMasterDescriber,
    FakeWorld,
)
from tests.unit.app.library_world import (
    calibration_of,
    dead_letter_office_of,
    job_queue_of,
    library_of,
    maintenance_of,
    observatory,
    uploaded_masters_of,
)

API = "/api/v1/calibration"
ADMIN = "/api/v1/admin"
OWN, OTHER = "obs-own", "obs-other"
UPLOAD_LIMIT_BYTES = 1024 * 1024
#: what the fake metrics port answers ``/metrics`` with
METRICS_BODY = b"calib_dead_letters_waiting 0.0\n"


class FakeFeedSubscription:
    def __init__(self, messages: list[tuple[str, bytes]]):
        self.messages = messages
        self.closed = False

    async def next(self) -> tuple[str, bytes] | None:
        return self.messages.pop(0) if self.messages else None

    async def close(self) -> None:
        self.closed = True


class FakeJobFeed:
    """Hands a follower every job message the world's publisher has carried for its
    observatory (persisted and transient, by time), then ends; the real feed relays
    what is published after it subscribed and never ends. ``extra`` messages (subject,
    body) follow them; ``connected`` False is a bus that is down."""

    def __init__(self, publisher: FakeEventPublisher):
        self.publisher = publisher
        self.extra: list[tuple[str, bytes]] = []
        self.connected = True
        self.subscriptions: list[FakeFeedSubscription] = []

    async def follow(self, observatory_id: str) -> FakeFeedSubscription:
        if not self.connected:
            raise DependencyUnavailableError("nats")
        patterns = (f"stack.*.{observatory_id}", f"{events.MASTER_CREATED}.{observatory_id}")
        carried = sorted(self.publisher.published + self.publisher.transient, key=lambda m: m.at)
        messages = [
            (m.subject, m.data)
            for m in carried
            if any(fnmatchcase(m.subject, pattern) for pattern in patterns)
        ]
        subscription = FakeFeedSubscription(messages + self.extra)
        self.subscriptions.append(subscription)
        return subscription


@dataclass
class FakeSystemProbes:
    """Dependencies answer unless named in ``down``; consumers have ``backlogs``."""

    heartbeat_interval_s: float = 5.0
    down: set[str] = field(default_factory=set)
    backlogs: dict[str, Backlog] = field(default_factory=dict)
    supervised: dict[str, ProcessHealth] = field(default_factory=dict)

    async def ping(self, dependency: str) -> None:
        if dependency in self.down:
            raise ConnectionError(f"{dependency} is down")

    async def backlog(self, durable: str) -> Backlog:
        if "nats" in self.down:
            raise ConnectionError("not connected")
        return self.backlogs.get(durable, Backlog(pending=0, ack_pending=0, redelivered=0))

    def processes(self) -> dict[str, ProcessHealth]:
        return dict(self.supervised)


def gateway_over(
    world: FakeWorld, lifecycle: FakeLifecycleService, feed: FakeJobFeed, probes: FakeSystemProbes
) -> Gateway:
    async def liveness(path: str) -> tuple[int, bytes]:
        ready = not probes.down
        return (200 if ready or path == "/livez" else 503), msgspec.json.encode({"path": path})

    async def metrics() -> tuple[bytes, str]:
        return METRICS_BODY, "text/plain; version=0.0.4; charset=utf-8"

    return Gateway(
        library=library_of(world),
        queue=job_queue_of(world),
        inventory=Inventory(
            frames=world.frames, jobs=world.jobs, settings=world.settings, clock=world.clock
        ),
        uploads=Uploads(
            frames=world.frames,
            settings=world.settings,
            store=world.store,
            events=world.events,
            clock=world.clock,
            log=world.log,
        ),
        presigned=PresignedUploads(
            observatories=world.observatories,
            pending=world.pending_uploads,
            store=world.store,
            clock=world.clock,
            log=world.log,
        ),
        access=Access(
            accounts=world.accounts, observatories=world.observatories, clock=world.clock
        ),
        rejections=world.rejections,
        heartbeats=world.heartbeats,
        dead_letters=dead_letter_office_of(world),
        lifecycle=lifecycle,
        feed=feed,
        probes=probes,
        liveness=liveness,
        metrics=metrics,
        upload_limit_bytes=UPLOAD_LIMIT_BYTES,
    )


@dataclass
class Api:
    """The gateway's routes over ``world``, called as any role (default: server admin)."""

    world: FakeWorld
    gateway: Gateway
    lifecycle: FakeLifecycleService
    calibrator: FakeLightCalibrator
    feed: FakeJobFeed
    probes: FakeSystemProbes
    client: AsyncTestClient
    tokens: dict[str, str | None]
    observatories: int = 0

    @property
    def access(self) -> Access:
        return self.gateway.access

    async def observatory(self, **settings: Any) -> str:
        """A new observatory of this test's own, with these settings."""
        self.observatories += 1
        return await observatory(self.world, f"obs-{self.observatories}", **settings)

    async def call(
        self, method: str, path: str, *, role: str = "server_admin", **kwargs: Any
    ) -> httpx.Response:
        token = self.tokens[role]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.request(
            method, path, headers={**headers, **kwargs.pop("headers", {})}, **kwargs
        )

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("PUT", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.call("DELETE", path, **kwargs)

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of a call that must succeed."""
        response = await self.call(method, path, **kwargs)
        assert response.is_success, response.text
        return response.json()


async def role_tokens(access: Access) -> dict[str, str | None]:
    """A token per role, for the observatory ``OWN`` (and ``OTHER``)."""

    async def user(name: str, server_admin: bool = False, *memberships: Membership) -> str:
        _, issued = await admin.create_user(
            access, name=name, server_admin=server_admin, memberships=memberships
        )
        return issued.token

    return {
        "no_token": None,
        "forged": "calib_" + "x" * 43,
        "plugin": (await admin.plugin_token(access, OWN)).token,
        "viewer": await user("viewer", False, Membership(observatory_id=OWN)),
        "other_admin": await user(
            "other admin", False, Membership(observatory_id=OTHER, can_admin=True)
        ),
        "obs_admin": await user(
            "observatory admin", False, Membership(observatory_id=OWN, can_admin=True)
        ),
        "server_admin": await user("server admin", True),
    }


async def running_api() -> AsyncIterator[Api]:
    """The gateway over a new world with the observatories ``OWN`` and ``OTHER``."""
    world = FakeWorld()
    calibrator = FakeLightCalibrator()

    async def calibrate_light(frame_id: str) -> events.CalibrateReply:
        return await calibrate(calibration_of(world, calibrator), frame_id)

    async def maintain(task, observatory_id):
        return await run_maintenance(maintenance_of(world), task, observatory_id)

    async def preview(frame_id: str) -> events.PreviewReply:
        return await frame_preview(uploaded_masters_of(world, FakeMasterDescriber()), frame_id)

    lifecycle = FakeLifecycleService(calibrate_light, maintain, preview)
    feed, probes = FakeJobFeed(world.events), FakeSystemProbes()
    gateway = gateway_over(world, lifecycle, feed, probes)
    for observatory_id in (OWN, OTHER):
        await observatory(world, observatory_id)
    tokens = await role_tokens(gateway.access)
    async with AsyncTestClient(create_app(gateway)) as client:
        yield Api(world, gateway, lifecycle, calibrator, feed, probes, client, tokens)
