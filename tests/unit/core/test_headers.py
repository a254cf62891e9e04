"""SPEC §2: frame metadata from the registration event and the FITS header."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from calib_core.headers import (
    REQUIRED_FIELDS,
    MissingFieldsError,
    fields_from_header,
    parse_frame_type,
    resolve_metadata,
)
from calib_core.limits import OutOfRangeError
from calib_core.models import FrameType


def nina_header(**cards):
    header = {
        "IMAGETYP": "DARK",
        "INSTRUME": "ZWO ASI2600MM Pro",
        "GAIN": 100,
        "OFFSET": 50,
        "XBINNING": 1,
        "YBINNING": 1,
        "EXPTIME": 60.0,
        "CCD-TEMP": -9.8,
        "SET-TEMP": -10.0,
        "DATE-OBS": "2024-05-01T22:15:30.123",
        "NAXIS1": 6248,
        "NAXIS2": 4176,
    }
    header.update(cards)
    return {k: v for k, v in header.items() if v is not None}


@pytest.mark.parametrize(
    ("imagetyp", "expected"),
    [
        ("DARK", FrameType.DARK),
        ("Dark", FrameType.DARK),
        ("dark", FrameType.DARK),
        ("Dark Frame", FrameType.DARK),
        ("DARK FRAME", FrameType.DARK),
        ("  dark  ", FrameType.DARK),
        ("FLAT", FrameType.FLAT),
        ("Flat Field", FrameType.FLAT),
        ("flat frame", FrameType.FLAT),
        ("BIAS", FrameType.BIAS),
        ("Bias Frame", FrameType.BIAS),
        ("OFFSET", FrameType.BIAS),
        ("offset", FrameType.BIAS),
        ("LIGHT", FrameType.LIGHT),
        ("'LIGHT'", FrameType.LIGHT),
        ("DARKFLAT", FrameType.DARK),
        ("Light Frame", FrameType.LIGHT),
        ("light", FrameType.LIGHT),
        ("MASTER DARK", FrameType.DARK),
        (FrameType.FLAT, FrameType.FLAT),
    ],
)
def test_imagetyp_variants(imagetyp, expected):
    assert parse_frame_type(imagetyp) == expected


@pytest.mark.parametrize("value", [None, "", "SNAPSHOT", "unknown frame", 42])
def test_unrecognised_imagetyp_is_none(value):
    assert parse_frame_type(value) is None


def test_full_nina_header():
    fields = fields_from_header(nina_header(READOUTM="High Gain", ROTATANG=12.5, FILTER="Ha"))
    assert fields == {
        "frame_type": FrameType.DARK,
        "camera_name": "ZWO ASI2600MM Pro",
        "gain": 100.0,
        "offset": 50.0,
        "binning": "1x1",
        "readout_mode": "High Gain",
        "filter": "Ha",
        "exposure_s": 60.0,
        "temperature_c": -9.8,
        "set_temperature_c": -10.0,
        "rotation_deg": 12.5,
        "captured_at": datetime(2024, 5, 1, 22, 15, 30, 123000, tzinfo=UTC),
        "width": 6248,
        "height": 4176,
    }


def test_exptime_is_preferred_over_exposure():
    assert fields_from_header(nina_header(EXPTIME=30.0, EXPOSURE=45.0))["exposure_s"] == 30.0


def test_exposure_used_when_exptime_absent():
    assert fields_from_header(nina_header(EXPTIME=None, EXPOSURE=45.0))["exposure_s"] == 45.0


def test_empty_exptime_falls_back_to_exposure():
    assert fields_from_header(nina_header(EXPTIME="", EXPOSURE=5))["exposure_s"] == 5.0


def test_rotatang_is_preferred_over_rotator():
    assert fields_from_header(nina_header(ROTATANG=10.0, ROTATOR=200.0))["rotation_deg"] == 10.0
    assert fields_from_header(nina_header(ROTATOR=200.0))["rotation_deg"] == 200.0


def test_date_obs_is_preferred_over_date_utc():
    fields = fields_from_header(
        nina_header(**{"DATE-OBS": "2024-05-01T01:00:00", "DATE-UTC": "2024-05-02T02:00:00"})
    )
    assert fields["captured_at"] == datetime(2024, 5, 1, 1, 0, tzinfo=UTC)
    fields = fields_from_header(
        nina_header(**{"DATE-OBS": None, "DATE-UTC": "2024-05-02T02:00:00"})
    )
    assert fields["captured_at"] == datetime(2024, 5, 2, 2, 0, tzinfo=UTC)


def test_captured_at_is_utc_aware():
    fields = fields_from_header(nina_header(**{"DATE-OBS": "2024-05-01T01:00:00Z"}))
    assert fields["captured_at"].utcoffset() == timedelta(0)
    fields = fields_from_header(nina_header(**{"DATE-OBS": "not a date"}))
    assert "captured_at" not in fields


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [(1, 1, "1x1"), (2, 2, "2x2"), (2, 1, "2x1"), (3, None, "3x3"), (2.0, 2.0, "2x2")],
)
def test_binning_string(x, y, expected):
    assert fields_from_header(nina_header(XBINNING=x, YBINNING=y))["binning"] == expected


def test_absent_keywords_are_left_out():
    fields = fields_from_header({"IMAGETYP": "BIAS", "NAXIS1": 10, "NAXIS2": 20})
    assert fields == {"frame_type": FrameType.BIAS, "width": 10, "height": 20}


def test_non_numeric_values_are_left_out():
    fields = fields_from_header(nina_header(GAIN="high", **{"CCD-TEMP": "n/a"}))
    assert "gain" not in fields
    assert "temperature_c" not in fields


def test_header_only_metadata():
    metadata = resolve_metadata({}, fields_from_header(nina_header()))
    assert metadata.frame_type == FrameType.DARK
    assert metadata.camera_name == "ZWO ASI2600MM Pro"
    assert metadata.exposure_s == 60.0
    assert (metadata.width, metadata.height) == (6248, 4176)
    assert metadata.temperature_c == -9.8
    assert metadata.binning == "1x1"


def test_event_fields_win_over_header():
    header = fields_from_header(nina_header(FILTER="Ha", IMAGETYP="FLAT"))
    event = {
        "camera_name": "Other Cam",
        "exposure_s": 2.5,
        "temperature_c": -20.0,
        "filter": "OIII",
        "frame_type": "flat",
        "gain": None,
    }
    metadata = resolve_metadata(event, header)
    assert metadata.camera_name == "Other Cam"
    assert metadata.exposure_s == 2.5
    assert metadata.temperature_c == -20.0
    assert metadata.filter == "OIII"
    assert metadata.gain == 100.0  # None in the event = left out -> header value


def test_event_frame_type_spelling_is_parsed():
    metadata = resolve_metadata(
        {"frame_type": "Dark Frame"}, fields_from_header(nina_header(IMAGETYP="LIGHT"))
    )
    assert metadata.frame_type == FrameType.DARK


def test_event_alone_is_enough():
    event = {
        "frame_type": "bias",
        "camera_name": "cam",
        "exposure_s": 0.001,
        "width": 8,
        "height": 4,
    }
    metadata = resolve_metadata(event, {})
    assert metadata.frame_type == FrameType.BIAS
    assert metadata.exposure_s == 0.001


def test_missing_required_fields_are_all_listed():
    with pytest.raises(MissingFieldsError) as caught:
        resolve_metadata({"camera_name": "cam"}, {"NAXIS1": 5})
    assert caught.value.fields == ["frame_type", "exposure_s", "width", "height"]
    for name in caught.value.fields:
        assert name in str(caught.value)


@pytest.mark.parametrize("absent", REQUIRED_FIELDS)
def test_each_required_field_is_required(absent):
    header = fields_from_header(nina_header())
    header.pop(absent)
    with pytest.raises(MissingFieldsError) as caught:
        resolve_metadata({}, header)
    assert caught.value.fields == [absent]


def test_unrecognised_frame_type_counts_as_missing():
    with pytest.raises(MissingFieldsError) as caught:
        resolve_metadata({}, fields_from_header(nina_header(IMAGETYP="SNAPSHOT")))
    assert caught.value.fields == ["frame_type"]


@pytest.mark.parametrize("imagetyp", ["DARK", "BIAS", "OFFSET"])
def test_filter_dropped_for_darks_and_bias(imagetyp):
    metadata = resolve_metadata(
        {"filter": "Ha"}, fields_from_header(nina_header(IMAGETYP=imagetyp, FILTER="L"))
    )
    assert metadata.filter is None


@pytest.mark.parametrize(
    ("imagetyp", "kind"), [("FLAT", FrameType.FLAT), ("LIGHT", FrameType.LIGHT)]
)
def test_filter_kept_for_flats_and_lights(imagetyp, kind):
    metadata = resolve_metadata({}, fields_from_header(nina_header(IMAGETYP=imagetyp, FILTER="Ha")))
    assert metadata.frame_type == kind
    assert metadata.filter == "Ha"


def test_naive_event_time_is_taken_as_utc():
    metadata = resolve_metadata(
        {"captured_at": datetime(2024, 5, 1, 22, 0)}, fields_from_header(nina_header())
    )
    assert metadata.captured_at == datetime(2024, 5, 1, 22, 0, tzinfo=UTC)
    metadata = resolve_metadata(
        {"captured_at": "2024-05-01T23:00:00"}, fields_from_header(nina_header())
    )
    assert metadata.captured_at == datetime(2024, 5, 1, 23, 0, tzinfo=UTC)


def test_aware_event_time_is_kept():
    tz = timezone(timedelta(hours=2))
    metadata = resolve_metadata(
        {"captured_at": datetime(2024, 5, 2, 0, 30, tzinfo=tz)}, fields_from_header(nina_header())
    )
    assert metadata.captured_at == datetime(2024, 5, 1, 22, 30, tzinfo=UTC)


def test_header_time_used_when_event_has_none():
    metadata = resolve_metadata({"captured_at": None}, fields_from_header(nina_header()))
    assert metadata.captured_at == datetime(2024, 5, 1, 22, 15, 30, 123000, tzinfo=UTC)


def test_unknown_event_keys_are_ignored():
    metadata = resolve_metadata({"something_else": 1}, fields_from_header(nina_header()))
    assert not hasattr(metadata, "something_else")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("width", 0, "width = 0 is out of range (1 to 100000)"),
        ("height", -3, "height = -3 is out of range (1 to 100000)"),
        ("width", 2**64 - 1, f"width = {2**64 - 1} is out of range (1 to 100000)"),
        ("exposure_s", -1.0, "exposure_s = -1.0 is out of range (0 to 86400)"),
        ("exposure_s", 86_400.5, "exposure_s = 86400.5 is out of range (0 to 86400)"),
        ("temperature_c", -300.0, "temperature_c = -300.0 is out of range (-273 to 100)"),
        ("set_temperature_c", 101.0, "set_temperature_c = 101.0 is out of range"),
        ("gain", 1e7, "gain = 10000000.0 is out of range (0 to 1000000)"),
        ("offset", -1.0, "offset = -1.0 is out of range (0 to 1000000)"),
        ("gain", float("nan"), "gain = nan is not a finite number"),
        ("rotation_deg", float("inf"), "rotation_deg = inf is not a finite number"),
    ],
)
def test_numbers_out_of_their_range_are_refused_naming_the_field(field, value, message):
    with pytest.raises(OutOfRangeError) as refused:
        resolve_metadata({field: value}, fields_from_header(nina_header()))
    assert str(refused.value) == message or str(refused.value).startswith(message)
    assert refused.value.field == field


@pytest.mark.parametrize("binning", ["2", "0x1"])
def test_a_binning_no_camera_produces_is_refused(binning):
    with pytest.raises(msgspec.ValidationError, match="binning must look like '1x1'"):
        resolve_metadata({"binning": binning}, fields_from_header(nina_header()))


@pytest.mark.parametrize(
    ("cards", "field"),
    [
        ({"GAIN": -5}, "gain"),
        ({"GAIN": 10**30}, "gain"),
        ({"OFFSET": 2_000_000}, "offset"),
        ({"CCD-TEMP": -500.0}, "temperature_c"),
        ({"CCD-TEMP": 1e999}, "temperature_c"),
        ({"SET-TEMP": 150}, "set_temperature_c"),
        ({"ROTATANG": float("inf")}, "rotation_deg"),
    ],
)
def test_an_optional_card_out_of_range_is_read_as_absent(cards, field):
    fields = fields_from_header(nina_header(**cards))
    assert field not in fields
    assert getattr(resolve_metadata({}, fields), field) is None


@pytest.mark.parametrize(
    ("cards", "message"),
    [
        (
            {"EXPTIME": -5.0},
            "header card EXPTIME = -5.0 is out of range for exposure_s (0 to 86400)",
        ),
        ({"EXPTIME": None, "EXPOSURE": 1e6}, "header card EXPOSURE = 1000000.0 is out of range"),
        ({"EXPTIME": 1e999}, "header card EXPTIME = inf is not a finite number"),
        (
            {"NAXIS1": 150_000},
            "header card NAXIS1 = 150000 is out of range for width (1 to 100000)",
        ),
        ({"NAXIS2": 2**64 - 1}, f"header card NAXIS2 = {2**64 - 1} is out of range for height"),
    ],
)
def test_a_required_card_out_of_range_rejects_the_frame_naming_the_card(cards, message):
    with pytest.raises(OutOfRangeError) as refused:
        resolve_metadata({}, fields_from_header(nina_header(**cards)))
    assert str(refused.value).startswith(message)


def test_a_required_card_out_of_range_is_not_needed_when_the_event_gives_the_field():
    header = fields_from_header(nina_header(EXPTIME=-5.0))
    assert resolve_metadata({"exposure_s": 30.0}, header).exposure_s == 30.0


def test_zero_exposure_bias_and_wide_binning_are_accepted():
    metadata = resolve_metadata(
        {"exposure_s": 0.0, "binning": "12x12"}, fields_from_header(nina_header(IMAGETYP="BIAS"))
    )
    assert metadata.exposure_s == 0.0 and metadata.binning == "12x12"
