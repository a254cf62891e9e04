"""Files uploaded through the API, over the fakes: a frame handed to the registry, and a
master made elsewhere recorded as current (or refused, leaving nothing behind)."""

from __future__ import annotations

import hashlib
import io

import msgspec
import pytest
from nats.errors import ConnectionClosedError

from calib_app.errors import ConflictError, RefusedError
from calib_app.uploads import Uploads, add_uploaded_master, register_upload
from calib_core import events
from calib_core.models import FrameMetadata, FrameType, MasterStatus
from tests.unit.app.fakes import FakeWorld
from tests.unit.core.factories import OBS

DARK = FrameMetadata(
    frame_type=FrameType.DARK, camera_name="cam", exposure_s=60.0, width=64, height=48
)
DATA = b"SIMPLE  = T" + b"\0" * 100


def uploads_of(world: FakeWorld) -> Uploads:
    return Uploads(
        frames=world.frames,
        settings=world.settings,
        store=world.store,
        events=world.events,
        clock=world.clock,
        log=world.log,
    )


async def add(world: FakeWorld, data: bytes = DATA, metadata: FrameMetadata = DARK):
    file = io.BytesIO(data)
    file.seek(10)  # where reading the header left it
    return await add_uploaded_master(
        uploads_of(world),
        OBS,
        metadata,
        {"NCOMBINE": 12},
        file,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


async def test_an_uploaded_frame_is_stored_then_registered(world):
    registered = await register_upload(
        uploads_of(world), OBS, {"gain": 120.0, "filter": "L"}, io.BytesIO(b"frame")
    )
    assert registered.storage_key == f"frames/{OBS}/{registered.event_id}.fits"
    assert world.store.data(registered.storage_key) == b"frame"
    [message] = world.events.published
    assert (message.kind, message.msg_id) == (events.FRAME_REGISTERED, registered.event_id)
    assert message.body == registered and (registered.gain, registered.filter) == (120.0, "L")


async def test_an_uploaded_xisf_frame_is_stored_whole_under_an_xisf_name(world):
    data = b"XISF0100" + bytes(100)
    registered = await register_upload(uploads_of(world), OBS, {}, io.BytesIO(data))
    assert registered.storage_key == f"frames/{OBS}/{registered.event_id}.xisf"
    assert world.store.data(registered.storage_key) == data


async def test_a_form_value_of_the_wrong_type_stores_nothing(world):
    with pytest.raises(msgspec.ValidationError):
        await register_upload(uploads_of(world), OBS, {"width": "wide"}, io.BytesIO(b"x"))
    assert world.store.objects == {} and world.events.published == []


async def test_an_uploaded_master_is_stored_whole_recorded_active_and_announced(world):
    master = await add(world)
    assert world.store.data(master.storage_key) == DATA
    stored = await world.frames.get(master.id)
    assert stored == master and stored.status == MasterStatus.ACTIVE and stored.n_frames == 12
    assert master.id.startswith("u") and master.created_at == world.now()
    [message] = world.events.published
    assert message.body == events.MasterCreated(master_id=master.id, observatory_id=OBS)
    assert message.msg_id == f"created-{master.id}"
    assert world.log.find("master uploaded")[0].fields["master_id"] == master.id


async def test_the_same_file_twice_is_a_conflict_naming_the_first(world):
    first = await add(world)
    with pytest.raises(ConflictError, match=f"already stored as '{first.id}'"):
        await add(world)
    assert list(world.store.objects) == [first.storage_key]
    assert len(world.events.published) == 1


async def test_a_light_is_not_a_master(world):
    light = msgspec.structs.replace(DARK, frame_type=FrameType.LIGHT)
    with pytest.raises(RefusedError, match="a master must be a dark, flat or bias frame"):
        await add(world, metadata=light)
    assert world.store.objects == {}


async def test_without_master_created_the_upload_is_taken_back(world, monkeypatch):
    async def bus_down(*args, **kwargs):
        raise ConnectionClosedError

    monkeypatch.setattr(world.events, "publish", bus_down)
    with pytest.raises(ConnectionClosedError):
        await add(world)
    assert world.store.objects == {}
    assert await world.frames.masters(OBS) == []
