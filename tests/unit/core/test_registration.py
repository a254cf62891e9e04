"""SPEC §2 registration rules: which events become frames, and why the others do not."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from calib_core import events
from calib_core.headers import InvalidCard
from calib_core.models import FrameType, Rejection
from calib_core.registration import (
    INVALID_METADATA,
    REJECTION_KINDS,
    Rejected,
    announced,
    beyond_limits,
    decode_event,
    frame_metadata,
    missing_object,
    new_frame,
    not_fits,
    refuse_a_master,
    rejection,
    rejection_kind,
    unknown_observatory,
)
from tests.unit.core.factories import NOW, OBS

SUBJECT = f"frame.registered.{OBS}"
HEADER = {"frame_type": FrameType.DARK, "camera_name": "QHY268M", "exposure_s": 30.0}
HEADER |= {"width": 64, "height": 48}
KEY = f"frames/{OBS}/k.fits"


def event(**fields) -> events.FrameRegistered:
    fields.setdefault("storage_key", KEY)
    return events.FrameRegistered(event_id="e1", observatory_id=OBS, **fields)


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
        "e1", "other", KEY, f"subject names observatory 'other' but the body names '{OBS}'", NOW
    )


@pytest.mark.parametrize(
    "storage_key",
    [
        "frames/other/k.fits",
        f"frames/{OBS}",
        f"frames/{OBS}/",
        f"masters/{OBS}/k.fits",
        f"/frames/{OBS}/k.fits",
        f"frames/{OBS}x/k.fits",
        f"frames/{OBS}/../other/k.fits",
        f"frames/{OBS}/a/../../other/k.fits",
        f"frames/{OBS}/./k.fits",
        f"frames/{OBS}//k.fits",
        f"frames/{OBS}/..",
        f"frames/{OBS}/a\\..\\..\\other\\k.fits",
        f"frames/{OBS}/k.fits\n",
        "k",
    ],
)
def test_an_event_naming_an_object_outside_its_observatorys_prefix_is_rejected(storage_key):
    body = msgspec.json.encode(event(storage_key=storage_key))
    refused = decode_event(SUBJECT, body, NOW)
    assert refused == rejection(
        "e1", OBS, storage_key, "storage key outside this observatory's prefix", NOW
    )


@pytest.mark.parametrize(
    "storage_key", [KEY, f"frames/{OBS}/2024/05/01/x.fits", f"frames/{OBS}/a..b.fits"]
)
def test_an_event_naming_an_object_under_its_observatorys_prefix_is_decoded(storage_key):
    assert decode_event(SUBJECT, msgspec.json.encode(event(storage_key=storage_key)), NOW) == event(
        storage_key=storage_key
    )


@pytest.mark.parametrize(
    ("field", "raw", "reason"),
    [
        ("width", "18446744073709551615", "width = 18446744073709551615 is out of range"),
        ("width", "-3", "width = -3 is out of range (1 to 100000)"),
        ("height", "100001", "height = 100001 is out of range (1 to 100000)"),
        ("height", "1" + "0" * 40, "height = 1" + "0" * 40 + " is out of range"),
        ("exposure_s", "86401", "exposure_s = 86401.0 is out of range (0 to 86400)"),
        ("exposure_s", "-0.5", "exposure_s = -0.5 is out of range (0 to 86400)"),
        ("temperature_c", "-274", "temperature_c = -274.0 is out of range (-273 to 100)"),
        ("set_temperature_c", "1e308", "set_temperature_c = 1e+308 is out of range"),
        ("gain", "1000001", "gain = 1000001.0 is out of range (0 to 1000000)"),
        ("offset", "-1", "offset = -1.0 is out of range (0 to 1000000)"),
    ],
)
def test_an_event_with_a_number_out_of_its_range_is_rejected_naming_the_field(field, raw, reason):
    refused = decode_event(SUBJECT, body_with(field, raw), NOW)
    assert isinstance(refused, Rejection), refused
    assert refused.reason.startswith(f"invalid event: {reason}")
    assert (refused.event_id, refused.observatory_id, refused.storage_key) == ("e1", OBS, KEY)


def body_with(field: str, raw: str) -> bytes:
    """An event's JSON body with ``"field": raw`` (raw JSON, however hostile)."""
    body = msgspec.json.encode({"event_id": "e1", "observatory_id": OBS, "storage_key": KEY})
    return body[:-1] + f',"{field}":{raw}}}'.encode()


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "1e999", "-1e999"])
def test_an_event_with_a_number_that_is_not_finite_is_rejected(raw):
    """Under its own id when the body is JSON (a number too large for any type), else
    under the body's digest (``NaN`` is not JSON)."""
    body = body_with("gain", raw)
    refused = decode_event(SUBJECT, body, NOW)
    assert isinstance(refused, Rejection) and refused.reason.startswith("invalid event: ")
    json = raw in ("1e999", "-1e999")
    assert refused.event_id == ("e1" if json else hashlib.sha256(body).hexdigest())
    assert refused.storage_key == (KEY if json else None)
    if json:
        assert "gain" in refused.reason


def test_the_metadata_is_the_events_over_the_headers():
    metadata = frame_metadata(event(camera_name="Renamed", gain=0.0), {**HEADER, "gain": 100})
    assert (metadata.camera_name, metadata.gain, metadata.exposure_s) == ("Renamed", 0.0, 30.0)


@pytest.mark.parametrize(
    ("fields", "header", "reason"),
    [
        (
            {},
            {},
            "missing required fields: frame_type (none of IMAGETYP, FRAME, OBSTYPE in the"
            " header), camera_name (no INSTRUME in the header), exposure_s (none of EXPTIME,"
            " EXPOSURE, EXP in the header), width (no NAXIS1 in the header), height (no NAXIS2"
            " in the header)",
        ),
        ({"width": -3}, HEADER, "width = -3 is out of range (1 to 100000)"),
        (
            {},
            {**HEADER, "exposure_s": InvalidCard("exposure_s", "EXPTIME", -5.0)},
            "header card EXPTIME = -5.0 is out of range for exposure_s (0 to 86400)",
        ),
        ({"binning": "0x1"}, HEADER, "invalid metadata: binning must look like '1x1' (got '0x1')"),
    ],
)
def test_metadata_without_a_required_field_or_with_an_invalid_one_is_refused(
    fields, header, reason
):
    with pytest.raises(Rejected) as refused:
        frame_metadata(event(**fields), header)
    assert str(refused.value) == reason


@pytest.mark.parametrize(
    ("header", "fields", "card"),
    [
        ({"IMAGETYP": "BIAS", "STACKCNT": 10}, {}, "STACKCNT = 10"),
        ({"IMAGETYP": "Dark", "NCOMBINE": 20}, {}, "NCOMBINE = 20"),
        ({"IMAGETYP": "Master Dark"}, {"frame_type": "dark"}, "IMAGETYP = 'Master Dark'"),
        (
            {"IMAGETYP": "FLAT"},
            {"frame_type": "Master Flat"},
            "the event's frame_type 'Master Flat'",
        ),
    ],
)
def test_a_master_made_elsewhere_is_refused_and_pointed_to_the_master_upload(header, fields, card):
    with pytest.raises(Rejected) as refused:
        refuse_a_master(event(**fields), header)
    assert str(refused.value) == (
        f"object '{KEY}' is already a master ({card}), not an individual frame to stack:"
        " upload it with POST /api/v1/calibration/masters/upload"
    )


@pytest.mark.parametrize("header", [{"IMAGETYP": "BIAS", "NCOMBINE": 1}, {"IMAGETYP": "DARKFLAT"}])
def test_an_individual_frame_is_not_refused_as_a_master(header):
    refuse_a_master(event(frame_type="dark"), header)


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
    assert (frame.id, frame.observatory_id, frame.storage_key) == ("f1", OBS, KEY)
    assert (frame.size_bytes, frame.sha256, frame.registered_at) == (100, "ab" * 32, NOW)


@pytest.mark.parametrize(
    ("size", "claimed", "reason"),
    [
        (99, None, f"object '{KEY}' is not a valid FITS image: truncated, its image needs 100"),
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


def _reason(refusal: Rejected | Rejection) -> str:
    return refusal.reason if isinstance(refusal, Rejection) else str(refusal)


@pytest.mark.parametrize(
    ("refusal", "kind"),
    [
        (decode_event(SUBJECT, b"{not json", NOW), "invalid_event"),
        (decode_event(SUBJECT, msgspec.json.encode(event(gain=-5.0)), NOW), "invalid_event"),
        (
            decode_event("frame.registered.other", msgspec.json.encode(event()), NOW),
            "observatory_mismatch",
        ),
        (
            decode_event(SUBJECT, msgspec.json.encode(event(storage_key="x/k.fits")), NOW),
            "outside_prefix",
        ),
        (unknown_observatory(event(), NOW), "unknown_observatory"),
        (missing_object(KEY), "missing_object"),
        (not_fits(KEY, "it is empty"), "not_fits"),
        (beyond_limits(KEY, "header too long"), "beyond_limits"),
        (
            Rejected(f"sha256 mismatch: event says {'0' * 64}, object is {'1' * 64}"),
            "sha256_mismatch",
        ),
    ],
)
def test_every_rejection_reason_has_a_kind_to_count(refusal, kind):
    assert rejection_kind(_reason(refusal)) == kind
    assert kind in REJECTION_KINDS


def test_a_master_a_missing_field_and_a_bad_value_have_their_kinds():
    with pytest.raises(Rejected) as master:
        refuse_a_master(event(), {"NCOMBINE": 20})
    with pytest.raises(Rejected) as missing:
        frame_metadata(event(), {})
    assert rejection_kind(str(master.value)) == "already_a_master"
    assert rejection_kind(str(missing.value)) == INVALID_METADATA
