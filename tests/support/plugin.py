"""A capture plugin for tests: puts FITS bytes in the bucket and publishes
``frame.registered`` through the real NATS server, like N.I.N.A.'s plugin does."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

from calib_core import events
from calib_infra.bus import ensure_stream, make_broker, publish
from calib_infra.config import Config
from calib_infra.store import ObjectStore


class Plugin:
    def __init__(self, config: Config):
        self.config = config
        self.store = ObjectStore(config)
        self.store.ensure_bucket_sync()

    def upload(self, observatory_id: str, data: bytes) -> str:
        key = f"frames/{observatory_id}/{uuid.uuid4().hex}.fits"
        self.store.put_bytes_sync(key, data, "application/fits")
        return key

    def announce(self, messages: list[tuple[events.FrameRegistered, str]]) -> None:
        """Publish (event, Nats-Msg-Id) pairs."""

        async def send() -> None:
            broker = make_broker(self.config)
            await broker.connect()
            await ensure_stream(broker)
            try:
                for event, msg_id in messages:
                    await publish(
                        broker,
                        events.FRAME_REGISTERED,
                        event,
                        observatory_id=event.observatory_id,
                        msg_id=msg_id,
                    )
            finally:
                await broker.stop()

        asyncio.run(send())

    def uploaded(self, observatory_id: str, data: bytes, **fields) -> events.FrameRegistered:
        """Upload one frame; returns the event that would announce it (not yet published)."""
        return events.FrameRegistered(
            event_id=uuid.uuid4().hex,
            observatory_id=observatory_id,
            storage_key=self.upload(observatory_id, data),
            sha256=hashlib.sha256(data).hexdigest(),
            **fields,
        )

    def register(self, observatory_id: str, data: bytes, **fields) -> events.FrameRegistered:
        """Upload and announce one frame; returns the event."""
        event = self.uploaded(observatory_id, data, **fields)
        self.announce([(event, event.event_id)])
        return event
