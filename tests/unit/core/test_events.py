"""SPEC §10: subjects end with a valid observatory id."""

from __future__ import annotations

import msgspec
import pytest

from calib_core import events


@pytest.mark.parametrize("observatory_id", ["obs", "obs-1", "obs_2", "0", "a" * 64, "9lives"])
def test_subject_for_valid_ids(observatory_id):
    assert (
        events.subject(events.FRAME_REGISTERED, observatory_id)
        == f"frame.registered.{observatory_id}"
    )
    name = events.subject(events.MASTER_CREATED, observatory_id)
    assert events.observatory_of(name) == observatory_id


@pytest.mark.parametrize(
    "observatory_id",
    [
        "",
        "Obs",
        "OBS",
        "obs.1",
        "obs.*",
        "*",
        ">",
        "obs>",
        "obs *",
        " obs",
        "obs ",
        "-obs",
        "_obs",
        "obs\n",
        "obs\t",
        "a" * 65,
        "obs/1",
        "öbs",
    ],
)
def test_subject_refuses_invalid_ids(observatory_id):
    with pytest.raises(ValueError, match="invalid observatory id"):
        events.subject(events.FRAME_REGISTERED, observatory_id)


@pytest.mark.parametrize("observatory_id", [None, 5])
def test_subject_refuses_non_text(observatory_id):
    with pytest.raises(ValueError):
        events.subject(events.FRAME_REGISTERED, observatory_id)


def test_pattern_refuses_trailing_newline_for_other_users_of_it():
    assert events.OBSERVATORY_ID_PATTERN.match("obs-1")
    assert not events.OBSERVATORY_ID_PATTERN.match("obs-1\n")


def test_stream_subjects_cover_persisted_kinds_but_not_progress():
    kinds = [
        events.FRAME_REGISTERED,
        events.FRAME_REJECTED,
        events.FRAME_DELETED,
        events.STACK_REQUESTED,
        events.STACK_DEFERRED,
        events.STACK_FAILED,
        events.MASTER_CREATED,
        events.MASTER_SUPERSEDED,
        events.MASTER_EXPIRED,
        events.CACHE_INVALIDATED,
    ]
    assert sorted(events.STREAM_SUBJECTS) == sorted(f"{k}.*" for k in kinds)
    assert f"{events.STACK_PROGRESS}.*" not in events.STREAM_SUBJECTS


def test_frame_registered_decodes_minimal_and_full_bodies():
    minimal = msgspec.json.decode(
        b'{"event_id": "e1", "observatory_id": "obs", "storage_key": "k"}',
        type=events.FrameRegistered,
    )
    assert minimal.sha256 is None and minimal.frame_type is None
    full = msgspec.json.decode(
        b'{"event_id": "e1", "observatory_id": "obs", "storage_key": "k", "exposure_s": 60,'
        b' "captured_at": "2024-05-01T22:00:00Z", "width": 10, "height": 5}',
        type=events.FrameRegistered,
    )
    assert full.exposure_s == 60.0 and full.width == 10
    assert full.captured_at is not None and full.captured_at.tzinfo is not None
