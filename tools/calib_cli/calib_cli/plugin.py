"""A capture plugin's side of Calib, holding nothing but a plugin token (SPEC §8, §10,
§12): each frame goes to a presigned upload URL the gateway hands out, then is announced
on ``frame.registered.<observatory>`` over a NATS connection that logs in with the same
token. The simulator uses it; so can any tool that acts as a plugin."""

from __future__ import annotations

import hashlib
import uuid
from types import TracebackType

import httpx
import msgspec
import nats
from nats.aio.client import Client as NatsConnection

from calib_core import events
from calib_core.busaccess import inbox_prefix
from calib_infra.config import nats_servers

API = "/api/v1/calibration"


class PluginClient:
    def __init__(self, *, url: str, nats_url: str, token: str, observatory_id: str):
        self.url, self.nats_url = url.rstrip("/"), nats_url
        self.token, self.observatory_id = token, observatory_id
        self._api: httpx.AsyncClient | None = None
        self._storage: httpx.AsyncClient | None = None  # presigned URLs: no token sent there
        self._bus: NatsConnection | None = None

    async def __aenter__(self) -> PluginClient:
        timeout = httpx.Timeout(30, write=600)
        self._api = httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout
        )
        self._storage = httpx.AsyncClient(timeout=timeout)
        self._bus = await nats.connect(
            nats_servers(self.nats_url),
            token=self.token,
            inbox_prefix=inbox_prefix(self.observatory_id),
            connect_timeout=5,
        )
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bus is not None:
            await self._bus.close()
        for client in (self._api, self._storage):
            if client is not None:
                await client.aclose()

    async def upload(self, filename: str, data: bytes) -> str:
        """Put ``data`` in the bucket through a presigned URL; returns its storage key."""
        ticket = await self._api.post(
            f"{API}/uploads", json={"observatory_id": self.observatory_id, "filename": filename}
        )
        ticket.raise_for_status()
        placed = await self._storage.put(ticket.json()["upload_url"], content=data)
        placed.raise_for_status()
        return ticket.json()["storage_key"]

    async def announce(self, storage_key: str, data: bytes) -> str:
        """Publish ``frame.registered`` for an uploaded object; returns the event id (also
        its ``Nats-Msg-Id``, so a repeat publish is dropped by the stream)."""
        event = events.FrameRegistered(
            event_id=uuid.uuid4().hex,
            observatory_id=self.observatory_id,
            storage_key=storage_key,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        await self._bus.jetstream().publish(
            events.subject(events.FRAME_REGISTERED, self.observatory_id),
            msgspec.json.encode(event),
            headers={"Nats-Msg-Id": event.event_id},
        )
        return event.event_id

    async def register(self, filename: str, data: bytes) -> str:
        """Upload and announce one frame; returns the event id."""
        return await self.announce(await self.upload(filename, data), data)
