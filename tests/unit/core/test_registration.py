"""SPEC §2 registration rules: which events become frames, and why the others do not."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from calib_core import events
from calib_core.models import FrameType, Rejection
from calib_core.registration import (
    Rejected,
    announced,
    decode_event,
    frame_metadata,
    new_frame,
    rejection,
)
from tests.unit.core.factories import NOW, OBS

SUBJECT = f"frame.registered.{OBS}"
HEADER = {"frame_type": FrameType.DARK, "camera_name": "QHY268M", "exposure_s": 30.0}
HEADER |= {"width": 64, "height": 48}


def event(**fields) -> events.FrameRegistered:
    return events.FrameRegistered(event_id="e1", observatory_id=OBS, storage_key="k", **fields)


def test_a_well_formed_event_is_decoded():
    body = msgspec.json.encode(event(gain=100.0))
    assert decode_event(SUBJECT, body, NOW) == event(gain=100.0)


@pytest.mark.parametrize(
    ("body", "event_id", "storage_key"),
    [
        (b'{"event_id": "e7", "storage_key": "k7"}', "e7", "k7"),  # no observatory_id
        (b'{"event_id": 12, "storage_key": ["k"]}', None, None),
        (b"[1, 2]", None, None),
        (b"{not json", None, None),
    ],
)
def test_an_undecodable_event_is_rejected_under_the_id_it_names_or_its_digest(
    body, event_id, storage_key
):
    refused = decode_event(SUBJECT, body, NOW)
    assert isinstance(refused, Rejection) and refused.reason.startswith("invalid event: ")
    assert refused.event_id == (event_id or hashlib.sha256(body).hexdigest())
    assert (refused.observatory_id, refused.storage_key) == (OBS, storage_key)
    assert refused.rejected_at == NOW


def test_an_event_naming_another_observatory_than_its_subject_is_rejected():
    refused = decode_event("frame.registered.other", msgspec.json.encode(event()), NOW)
    assert refused == rejection(
        "e1", "other", "k", f"subject names observatory 'other' but the body names '{OBS}'", NOW
    )


def test_the_metadata_is_the_events_over_the_headers():
    metadata = frame_metadata(event(camera_name="Renamed", gain=0.0), {**HEADER, "gain": 100})
    assert (metadata.camera_name, metadata.gain, metadata.exposure_s) == ("Renamed", 0.0, 30.0)


@pytest.mark.parametrize(
    ("fields", "header", "reason"),
    [
        ({}, {}, "missing required fields: frame_type, camera_name, exposure_s, width, height"),
        ({"width": -3}, HEADER, "invalid metadata: width must be a positive integer (got -3)"),
    ],
)
def test_metadata_without_a_required_field_or_with_an_invalid_one_is_refused(
    fields, header, reason
):
    with pytest.raises(Rejected) as refused:
        frame_metadata(event(**fields), header)
    assert str(refused.value) == reason


def test_a_new_frame_records_the_object_and_the_time():
    metadata = frame_metadata(event(), HEADER)
    frame = new_frame(
        event(sha256="AB" * 32),
        metadata,
        needed=100,
        size=100,
        sha256="ab" * 32,
        frame_id="f1",
        now=NOW,
    )
    assert (frame.id, frame.observatory_id, frame.storage_key) == ("f1", OBS, "k")
    assert (frame.size_bytes, frame.sha256, frame.registered_at) == (100, "ab" * 32, NOW)


@pytest.mark.parametrize(
    ("size", "claimed", "reason"),
    [
        (99, None, "object 'k' is not a valid FITS image: truncated, its image needs 100 bytes"),
        (100, "cd" * 32, "sha256 mismatch: event says " + "cd" * 32 + ", object is " + "ab" * 32),
    ],
)
def test_a_truncated_object_or_one_of_another_digest_is_refused(size, claimed, reason):
    metadata = frame_metadata(event(), HEADER)
    with pytest.raises(Rejected) as refused:
        new_frame(
            event(sha256=claimed),
            metadata,
            needed=100,
            size=size,
            sha256="ab" * 32,
            frame_id="f1",
            now=NOW,
        )
    assert str(refused.value).startswith(reason)


def test_a_rejection_is_announced_only_under_an_observatory_id_a_subject_can_carry():
    assert announced(rejection("e1", OBS, "k", "why", NOW)) == events.FrameRejected(
        event_id="e1", observatory_id=OBS, reason="why", storage_key="k"
    )
    assert announced(rejection("e1", "Not An Id", None, "why", NOW)) is None
