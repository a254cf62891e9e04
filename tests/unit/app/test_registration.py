"""Frame ingestion (calib_app.registration) over the fakes, with real FITS bytes in the
fake bucket: what is stored, every rejection reason, duplicates, the registration
trigger, and per-message outcomes when a dependency fails."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import uuid
from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest

from calib_app.ports import Delivery
from calib_app.registration import HEAD_BYTES, Registration, read_frame, register_batch
from calib_core import events
from calib_core.fitsheader import image_layout
from calib_core.limits import ImageLimits
from calib_core.models import Frame, FrameType, JobTrigger
from calib_core.registration import Rejected, rejection_kind
from calib_stack import synthetic
from tests.integration.registry_helpers import CAMERA, frame_bytes
from tests.support.hostile import compressed_header, declared_image, endless_header, with_card
from tests.support.xisf import NINA_KEYWORDS, NINA_PROPERTIES, xisf_bytes
from tests.unit.app.fakes import FakeWorld
from tests.unit.app.library_world import observatory
from tests.unit.core.factories import OBS


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


@pytest.fixture
async def obs(world) -> str:
    return await observatory(world)


def registration_of(world: FakeWorld) -> Registration:
    return Registration(
        frames=world.frames,
        observatories=world.observatories,
        rejections=world.rejections,
        store=world.store,
        jobs=world.jobs,
        settings=world.settings,
        events=world.events,
        clock=world.clock,
        log=world.log,
        metrics=world.metrics,
    )


async def upload(world: FakeWorld, data: bytes, observatory_id: str = OBS) -> str:
    key = f"frames/{observatory_id}/{uuid.uuid4().hex}.fits"
    await world.store.put_bytes(key, data, "application/fits")
    return key


def event(storage_key: str, observatory_id: str = OBS, **fields) -> events.FrameRegistered:
    return events.FrameRegistered(
        event_id=uuid.uuid4().hex, observatory_id=observatory_id, storage_key=storage_key, **fields
    )


def delivery(announced: events.FrameRegistered, subject_observatory: str | None = None):
    observatory_id = subject_observatory or announced.observatory_id
    return Delivery(f"frame.registered.{observatory_id}", msgspec.json.encode(announced))


async def register(world: FakeWorld, *deliveries: Delivery) -> list[bool | BaseException]:
    return await register_batch(registration_of(world), deliveries)


async def announce(world: FakeWorld, files: list[bytes], observatory_id: str = OBS) -> list:
    """Upload every file and register them in one batch, each with its sha256."""
    announced = [
        event(await upload(world, data, observatory_id), observatory_id, sha256=sha(data))
        for data in files
    ]
    assert await register(world, *map(delivery, announced)) == [True] * len(files)
    return announced


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def stored(world: FakeWorld, observatory_id: str = OBS) -> list[Frame]:
    frames, _ = await world.frames.library_page(observatory_id, {}, skip=0, limit=500)
    return frames


def headerless_fits() -> bytes:
    """A valid FITS image whose header names none of the required fields."""
    return synthetic.fits_bytes(np.zeros((48, 64), dtype=np.uint16), {})


# ---- what is stored ------------------------------------------------------------------------


async def test_light_and_calibration_frames_are_stored_with_header_metadata(world, obs):
    light = frame_bytes("light", 1, exposure_s=120.0, filter_name="Ha", temperature_c=-9.5)
    dark = frame_bytes("dark", 2, exposure_s=60.0)
    await announce(world, [light, dark])

    found = {f.frame_type: f for f in await stored(world)}
    assert set(found) == {FrameType.LIGHT, FrameType.DARK}
    assert found[FrameType.LIGHT].filter == "Ha"
    assert found[FrameType.LIGHT].exposure_s == 120.0
    assert found[FrameType.LIGHT].temperature_c == -9.5
    assert found[FrameType.LIGHT].camera_name == CAMERA.name
    assert (found[FrameType.LIGHT].width, found[FrameType.LIGHT].height) == (64, 48)
    assert found[FrameType.LIGHT].sha256 == sha(light)
    assert found[FrameType.LIGHT].size_bytes == len(light)
    assert found[FrameType.LIGHT].registered_at == world.now()
    assert found[FrameType.DARK].filter is None
    assert found[FrameType.DARK].gain == CAMERA.gain
    assert found[FrameType.DARK].binning == "1x1"
    assert world.log.events("info").count("frame registered") == 2
    assert sorted(world.metrics.registered) == [(obs, FrameType.DARK), (obs, FrameType.LIGHT)]
    assert world.events.published == []  # nothing to announce, nothing to stack


async def test_a_header_longer_than_the_first_ranged_read_is_read_in_full(world, obs):
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
    header.append(("ROTATANG", 42.5), end=True)  # after the history: in the last blocks only
    data = synthetic.fits_bytes(np.ones((48, 64), dtype=np.uint16), header)
    assert data.index(b"ROTATANG") > HEAD_BYTES

    await announce(world, [data])
    [frame] = await stored(world)
    assert (frame.frame_type, frame.filter, frame.rotation_deg) == (FrameType.FLAT, "OIII", 42.5)
    assert frame.size_bytes == len(data) and frame.sha256 == sha(data)


async def test_event_fields_win_over_the_header(world, obs):
    key = await upload(world, frame_bytes("dark", 3, exposure_s=60.0))
    assert await register(world, delivery(event(key, camera_name="Renamed Cam", gain=0.0)))
    [frame] = await stored(world)
    assert frame.camera_name == "Renamed Cam"
    assert frame.gain == 0.0
    assert frame.exposure_s == 60.0  # from the header


# ---- rejections --------------------------------------------------------------------------


#: each case, and the kind of reason it is counted as (calib_core.registration.rejection_kind)
REJECTIONS = {
    "unknown observatory": "unknown_observatory",
    "subject and body differ": "observatory_mismatch",
    "missing object": "missing_object",
    "not FITS": "not_fits",
    "empty object": "not_fits",
    "truncated header": "not_fits",
    "truncated data": "not_fits",
    "missing required fields": "invalid_metadata",
    "sha256 mismatch": "sha256_mismatch",
    "number out of range": "invalid_event",
    "header card out of range": "invalid_metadata",
    "object of another observatory": "outside_prefix",
    "path outside the prefix": "outside_prefix",
    "too many pixels": "beyond_limits",
    "too many compressed pixels": "beyond_limits",
    "too many axes": "beyond_limits",
    "header too long": "beyond_limits",
    "undecodable event": "invalid_event",
}


@pytest.mark.parametrize("case", REJECTIONS)
async def test_each_rejection_is_recorded_announced_logged_and_stores_nothing(case, world, obs):
    valid = frame_bytes("dark", 7)
    listed_under = subject_observatory = obs
    if case == "unknown observatory":
        listed_under = subject_observatory = "ghost"
        announced = event(await upload(world, valid, "ghost"), "ghost")
        reason = "unknown observatory 'ghost'"
    elif case == "subject and body differ":
        other = await observatory(world, "other")
        announced = event(await upload(world, valid, other), other)
        reason = f"subject names observatory '{obs}' but the body names '{other}'"
    elif case == "missing object":
        announced = event(f"frames/{obs}/never-uploaded.fits")
        reason = f"object 'frames/{obs}/never-uploaded.fits' is missing from the bucket"
    elif case == "not FITS":
        announced = event(await upload(world, os.urandom(5000)))
        reason = "is not a valid FITS image: not a FITS file (does not start with SIMPLE)"
    elif case == "empty object":
        announced = event(await upload(world, b""))
        reason = "is not a valid FITS image: it is empty"
    elif case == "truncated header":
        announced = event(await upload(world, valid[:2000]))
        reason = "is not a valid FITS image: it ends inside its header"
    elif case == "truncated data":
        needed = image_layout(valid).needed  # header blocks and data, without the padding
        announced = event(await upload(world, valid[: needed - 100]))
        reason = (
            f"is not a valid FITS image: truncated, its image needs {needed} bytes,"
            f" the object has {needed - 100}"
        )
    elif case == "missing required fields":
        announced = event(await upload(world, headerless_fits()))
        reason = (
            "missing required fields: frame_type (none of IMAGETYP, FRAME, OBSTYPE in the"
            " header), camera_name (no INSTRUME in the header), exposure_s (none of EXPTIME,"
            " EXPOSURE, EXP in the header)"
        )
    elif case == "sha256 mismatch":
        announced = event(await upload(world, valid), sha256=sha(b"other bytes"))
        reason = f"sha256 mismatch: event says {sha(b'other bytes')}, object is {sha(valid)}"
    elif case == "number out of range":
        announced = event(await upload(world, valid), width=18446744073709551615)
        reason = "invalid event: width = 18446744073709551615 is out of range (1 to 100000)"
    elif case == "header card out of range":
        announced = event(await upload(world, with_card(valid, "EXPTIME", "-5.0")))
        reason = "header card EXPTIME = -5.0 is out of range for exposure_s (0 to 86400)"
    elif case == "object of another observatory":
        other = await observatory(world, "other")
        announced = event(await upload(world, valid, other))
        reason = "storage key outside this observatory's prefix"
    elif case == "path outside the prefix":
        other = await observatory(world, "other")
        key = await upload(world, valid, other)
        announced = event(key.replace(f"frames/{other}/", f"frames/{obs}/../{other}/"))
        reason = "storage key outside this observatory's prefix"
    elif case == "too many pixels":
        announced = event(await upload(world, declared_image(NAXIS1=20_000, NAXIS2=20_000)))
        reason = (
            "exceeds a limit: image too large: its header declares 20000 x 20000 = 400000000"
            " pixels (NAXIS1 x NAXIS2), more than the limit of 250000000 (CALIB_MAX_IMAGE_PIXELS)"
        )
    elif case == "too many compressed pixels":
        announced = event(await upload(world, compressed_header(60_000, 60_000)))
        reason = (
            "exceeds a limit: image too large: its header declares 60000 x 60000 = 3600000000"
            " pixels (ZNAXIS1 x ZNAXIS2), more than the limit of 250000000"
        )
    elif case == "too many axes":
        announced = event(await upload(world, declared_image(NAXIS=4, NAXIS3=1, NAXIS4=1)))
        reason = "exceeds a limit: image has 4 axes (NAXIS = 4), more than the limit of 3"
    elif case == "header too long":
        announced = event(await upload(world, endless_header(3 * 1024 * 1024)))
        reason = "exceeds a limit: header longer than 1048576 bytes (CALIB_MAX_HEADER_BYTES)"
    else:
        announced = None
        reason = "invalid event"
    if announced is None:
        body = b'{"event_id": 12, "storage_key": "frames/x.fits"'
        message = Delivery(f"frame.registered.{obs}", body)
        event_id, key = sha(body), None  # a redelivery of these bytes has the same id
    else:
        message = delivery(announced, subject_observatory)
        event_id, key = announced.event_id, announced.storage_key

    assert await register(world, message) == [True]  # done: acknowledged, never retried

    [rejection] = await world.rejections.list(listed_under)
    assert reason in rejection.reason
    assert (rejection.event_id, rejection.storage_key) == (event_id, key)
    assert rejection.rejected_at == world.now()
    [published] = world.events.published
    assert (published.subject, published.msg_id) == (
        f"frame.rejected.{listed_under}",
        f"rejected-{event_id}",
    )
    assert msgspec.json.decode(published.data) == {
        "event_id": event_id,
        "observatory_id": listed_under,
        "reason": rejection.reason,
        "storage_key": key,
    }
    assert await stored(world) == [] and await stored(world, listed_under) == []
    [logged] = world.log.find("frame rejected", "warning")
    assert logged.fields["reason"] == rejection.reason
    assert [rejection_kind(r) for r in world.metrics.rejected] == [REJECTIONS[case]]


async def test_a_rejection_is_recorded_and_announced_once_however_often_it_comes(world, obs):
    message = delivery(event(f"frames/{obs}/never-uploaded.fits"))
    undecodable = Delivery(f"frame.registered.{obs}", b"[1, 2")
    assert await register(world, message, undecodable) == [True, True]
    assert await register(world, message, undecodable) == [True, True]

    assert len(await world.rejections.list(obs)) == 2
    assert len(world.events.published) == 2 and len(world.events.duplicates) == 2


async def test_a_rejection_whose_subject_names_no_valid_observatory_is_only_recorded(world, obs):
    body = msgspec.json.encode(event("frames/Not An Id/k.fits", "Not An Id"))
    assert await register(world, Delivery("frame.registered.Not An Id", body)) == [True]
    [rejection] = await world.rejections.list("Not An Id")
    assert rejection.reason == "unknown observatory 'Not An Id'"
    assert world.events.published == []


def stacked_bias(index: int, **cards: object) -> bytes:
    """A bias file with the cards of a master made elsewhere (N.I.N.A.'s header otherwise)."""
    header = synthetic.nina_header(
        frame_type="bias",
        camera=CAMERA,
        exposure_s=0.0,
        temperature_c=-10.0,
        captured_at=datetime.now(UTC),
    )
    header.update(cards)
    return synthetic.fits_bytes(np.full((48, 64), 500 + index, dtype=np.uint16), header)


@pytest.mark.parametrize(
    ("cards", "card"),
    [
        ({"STACKCNT": 10}, "STACKCNT = 10"),
        ({"NCOMBINE": 20}, "NCOMBINE = 20"),
        ({"IMAGETYP": "Master Dark"}, "IMAGETYP = 'Master Dark'"),
        ({"IMAGETYP": "MASTER BIAS"}, "IMAGETYP = 'MASTER BIAS'"),
    ],
)
async def test_a_master_made_elsewhere_is_rejected_pointing_to_the_master_upload(
    cards, card, world, obs
):
    announced = event(await upload(world, stacked_bias(1, **cards)))
    assert await register(world, delivery(announced)) == [True]

    [rejection] = await world.rejections.list(obs)
    assert rejection.reason == (
        f"object '{announced.storage_key}' is already a master ({card}), not an individual"
        " frame to stack: upload it with POST /api/v1/calibration/masters/upload"
    )
    [published] = world.events.published
    assert published.subject == f"frame.rejected.{obs}"
    assert await stored(world) == []


async def test_masters_made_elsewhere_are_never_stacked_again(world, obs):
    """Ten stacked biases (the issue's ``STACKCNT = 10``, ``IMAGETYP = 'BIAS'``) are as
    many rejections, not a group to stack; a bias that names one combined frame is one."""
    masters = [stacked_bias(i, STACKCNT=10) for i in range(10)]
    announced = [
        event(await upload(world, data)) for data in [*masters, stacked_bias(99, NCOMBINE=1)]
    ]
    assert await register(world, *map(delivery, announced)) == [True] * 11

    assert len(await world.rejections.list(obs)) == 10
    [frame] = await stored(world)
    assert frame.storage_key == announced[-1].storage_key
    assert await world.jobs.list(obs) == []


async def test_a_large_object_is_judged_from_its_first_bytes(world, obs):
    """Not-FITS and incomplete frames are refused after one ranged read; only a frame
    worth keeping is streamed in full (for its sha256)."""
    big = 4 * 1024 * 1024
    header = synthetic.nina_header(
        frame_type="dark",
        camera=CAMERA,
        exposure_s=30.0,
        temperature_c=-10.0,
        captured_at=datetime.now(UTC),
    )
    good = synthetic.fits_bytes(np.full((1024, 2048), 7, dtype=np.uint16), header)
    calls: list[tuple] = []
    read_range, scan = world.store.read_range, world.store.scan

    async def spy_range(key, offset, length):
        calls.append(("range", offset, length))
        return await read_range(key, offset, length)

    async def spy_scan(key, head):
        calls.append(("scan",))
        return await scan(key, head)

    world.store.read_range, world.store.scan = spy_range, spy_scan

    async def reads_of(data: bytes) -> tuple[list[tuple], str]:
        calls.clear()
        try:
            frame = await read_frame(registration_of(world), event(await upload(world, data)))
        except Rejected as refused:
            return list(calls), str(refused)
        return list(calls), frame.sha256

    calls_made, outcome = await reads_of(os.urandom(big))
    assert calls_made == [("range", 0, HEAD_BYTES)] and "not a valid FITS image" in outcome
    headerless = synthetic.fits_bytes(np.zeros((1024, 2048), dtype=np.uint16), {})
    calls_made, outcome = await reads_of(headerless)
    assert calls_made == [("range", 0, HEAD_BYTES)] and "missing required fields" in outcome
    calls_made, outcome = await reads_of(good)
    assert calls_made == [("range", 0, HEAD_BYTES), ("scan",)] and outcome == sha(good)
    calls_made, outcome = await reads_of(good[: len(good) // 2])  # a broken transfer
    assert calls_made == [("range", 0, HEAD_BYTES), ("scan",)]
    needed = image_layout(good).needed
    assert f"truncated, its image needs {needed} bytes, the object has {len(good) // 2}" in outcome


async def test_xisf_frames_register_by_their_signature_and_bad_ones_are_named(world, obs):
    """N.I.N.A.'s XISF dark registers with its header's fields (the object's name says
    .fits: the signature decides); an XISF file with a large header is read from a longer
    range, and one whose header goes past the limit or is damaged is refused as XISF."""
    dark = xisf_bytes(
        np.zeros((48, 64), dtype=np.uint16), keywords=NINA_KEYWORDS, properties=NINA_PROPERTIES
    )
    many = [(f"NOTE{index}", f"'{'x' * 60}'", "") for index in range(HEAD_BYTES // 60)]
    long_header = xisf_bytes(np.ones((48, 64), np.uint16), keywords=NINA_KEYWORDS + many)
    assert len(long_header) > HEAD_BYTES
    too_long = b"XISF0100" + (4 * 1024 * 1024).to_bytes(4, "little") + bytes(HEAD_BYTES)
    rgb = xisf_bytes(np.zeros((4, 4), np.uint16), image_attributes={"geometry": "2:4:2"})
    await announce(world, [dark, long_header, too_long, rgb[:-1]])

    frames = await stored(world)
    assert [(f.frame_type, f.exposure_s, f.camera_name) for f in frames] == [
        (FrameType.DARK, 60.0, "ZWO ASI2600MM Pro")
    ] * 2
    reasons = sorted(r.reason.split("' ", 1)[1] for r in await world.rejections.list(obs))
    assert reasons[0].startswith("exceeds a limit: header longer than 1048576 bytes")
    assert reasons[1].startswith("is not a valid XISF image: the XISF image has 2 channels")


async def test_a_header_is_never_read_past_the_header_limit(world, obs):
    """A header that never ends is read in growing ranges up to the limit, then refused:
    the object (10 MiB here, any size in the bucket) is never fetched whole."""
    lengths: list[int] = []
    read_range = world.store.read_range

    async def spy_range(key, offset, length):
        lengths.append(length)
        return await read_range(key, offset, length)

    world.store.read_range = spy_range
    key = await upload(world, endless_header(10 * 1024 * 1024))
    assert await register(world, delivery(event(key))) == [True]

    [rejection] = await world.rejections.list(obs)
    assert "header longer than 1048576 bytes" in rejection.reason
    assert lengths[0] == HEAD_BYTES and lengths[-1] == 1024 * 1024
    assert lengths == sorted(lengths) and len(lengths) <= 4


async def test_the_limits_are_the_registrations_own(world, obs):
    """``CALIB_MAX_IMAGE_PIXELS`` and ``CALIB_MAX_HEADER_BYTES`` reach the registry as its
    :class:`ImageLimits`."""
    valid = frame_bytes("dark", 11)  # 64 x 48
    header_end = image_layout(valid).data_offset
    strict = [
        (ImageLimits(max_pixels=64 * 48 - 1), "more than the limit of 3071"),
        (ImageLimits(max_header_bytes=header_end - 80), f"header longer than {header_end - 80}"),
    ]
    for limits, words in strict:
        registration = dataclasses.replace(registration_of(world), limits=limits)
        announced = event(await upload(world, valid))
        assert await register_batch(registration, [delivery(announced)]) == [True]
        [rejection] = [
            r for r in await world.rejections.list(obs) if r.event_id == announced.event_id
        ]
        assert words in rejection.reason
    exact = ImageLimits(max_pixels=64 * 48, max_header_bytes=header_end)
    registration = dataclasses.replace(registration_of(world), limits=exact)
    assert await register_batch(registration, [delivery(event(await upload(world, valid)))])
    assert len(await stored(world)) == 1


async def test_hostile_events_do_not_hold_up_a_good_frame_of_their_batch(world, obs):
    good = frame_bytes("light", 3, filter_name="L")
    hostile = [
        event(await upload(world, compressed_header(60_000, 60_000))),
        event(await upload(world, endless_header(2 * 1024 * 1024))),
        event(await upload(world, declared_image(NAXIS=4, NAXIS3=1, NAXIS4=1))),
        event(f"frames/{obs}/../elsewhere/{uuid.uuid4().hex}.fits"),
    ]
    huge_gain = msgspec.json.encode(event(await upload(world, good)))[:-1] + b',"gain":1e999}'
    batch = [
        *map(delivery, hostile),
        Delivery(f"frame.registered.{obs}", huge_gain),
        delivery(event(await upload(world, good))),
    ]

    assert await register(world, *batch) == [True] * len(batch)

    [frame] = await stored(world)
    assert frame.sha256 == sha(good)
    assert len(await world.rejections.list(obs)) == len(hostile) + 1


# ---- duplicates, the trigger, failures ----------------------------------------------------


async def test_a_file_announced_many_times_is_stored_once(world, obs):
    """Within one batch and across batches, under new event ids and repeated ones."""
    data = frame_bytes("light", 1, filter_name="L")
    key = await upload(world, data)
    first = event(key)
    batch = [delivery(first), delivery(first), *(delivery(event(key)) for _ in range(5))]
    assert await register(world, *batch) == [True] * 7
    assert await register(world, delivery(first), delivery(event(key))) == [True, True]

    [frame] = await stored(world)
    assert frame.sha256 == sha(data)
    assert world.log.events("info").count("frame registered") == 1
    assert world.metrics.registered == [(obs, FrameType.LIGHT)]  # counted once, as stored
    duplicates = world.log.find("duplicate frame ignored")
    assert len(duplicates) == 8 and {d.fields["frame_id"] for d in duplicates} == {frame.id}


async def test_enough_frames_in_a_batch_queue_a_registration_job(world, obs):
    await announce(world, [frame_bytes("dark", i) for i in range(9)])
    assert await world.jobs.list(obs) == []

    await announce(world, [frame_bytes("dark", 9)])
    [job] = await world.jobs.list(obs)
    assert job.trigger == JobTrigger.REGISTRATION and len(job.frame_ids) == 10
    assert job.configuration["exposure_s"] == 30.0
    assert world.events.bodies(events.STACK_REQUESTED)[0].job_id == job.id


async def test_a_duplicate_of_a_stored_frame_triggers_like_the_frame(world, obs):
    """A redelivered batch whose frames were stored before its trigger ran (the process
    died in between) still queues their job."""
    files = [frame_bytes("dark", i) for i in range(10)]
    announced = await announce(world, files)
    await world.jobs.delete((await world.jobs.list(obs))[0].id)  # as if never queued

    assert await register(world, *map(delivery, announced)) == [True] * 10
    [job] = await world.jobs.list(obs)
    assert len(job.frame_ids) == 10


async def test_a_failing_dependency_hands_back_only_its_messages(world, obs):
    good = [frame_bytes("light", i, filter_name="L") for i in range(3)]
    keys = [await upload(world, data) for data in good]
    broken_key = await upload(world, frame_bytes("light", 99, filter_name="L"))
    read_range = world.store.read_range

    async def flaky(key, offset, length):
        if key == broken_key:
            raise ConnectionError("S3 is away")
        return await read_range(key, offset, length)

    world.store.read_range = flaky
    rejected = event(f"frames/{obs}/never-uploaded.fits")
    batch = [delivery(event(keys[0])), delivery(event(broken_key)), delivery(rejected)]
    batch += [delivery(event(key)) for key in keys[1:]]

    outcomes = await register(world, *batch)
    assert [o is True for o in outcomes] == [True, False, True, True, True]
    assert isinstance(outcomes[1], ConnectionError)  # why, for the dead letter

    assert sorted(f.storage_key for f in await stored(world)) == sorted(keys)
    assert len(await world.rejections.list(obs)) == 1
    [failure] = world.log.find("frame registration failed, will retry", "error")
    assert "S3 is away" in failure.fields["error"]

    world.store.read_range = read_range  # S3 is back: the redelivery succeeds
    assert await register(world, batch[1]) == [True]
    assert broken_key in {f.storage_key for f in await stored(world)}


async def test_a_failure_storing_the_batch_hands_back_the_whole_batch(world, obs):
    keys = [await upload(world, frame_bytes("dark", i)) for i in range(2)]

    async def database_away(frames):
        raise ConnectionError("MongoDB is away")

    world.frames.insert_many = database_away
    with pytest.raises(ConnectionError):
        await register(world, *(delivery(event(key)) for key in keys))
    assert await world.rejections.list(obs) == [] and world.events.published == []
