"""SPEC §5: the record of a master made elsewhere and uploaded."""

from __future__ import annotations

import pytest

from calib_core.grouping import config_key, configuration
from calib_core.masters import master_storage_key, uploaded_master
from calib_core.models import FrameMetadata, FrameType, MasterStatus
from calib_core.settings import CalibrationSettings
from tests.unit.core.factories import NOW, OBS

METADATA = FrameMetadata(
    frame_type=FrameType.DARK,
    camera_name="ZWO ASI294MM Pro",
    exposure_s=60.0,
    width=64,
    height=48,
    gain=100.0,
    temperature_c=-10.0,
)


def upload(header: dict, settings: CalibrationSettings | None = None):
    return uploaded_master(
        METADATA,
        header,
        master_id="u1",
        observatory_id=OBS,
        size_bytes=12_345,
        sha256="ab" * 32,
        settings=settings or CalibrationSettings(),
        now=NOW,
    )


def test_an_uploaded_master_is_active_at_once_without_components():
    master = upload({})
    assert master.is_master and master.status == MasterStatus.ACTIVE
    assert master.components == [] and master.method_params == {}
    assert (master.id, master.observatory_id) == ("u1", OBS)
    assert master.storage_key == master_storage_key(OBS, "u1")
    assert master.registered_at == master.created_at == NOW
    assert (master.size_bytes, master.sha256) == (12_345, "ab" * 32)
    assert (master.camera_name, master.exposure_s, master.gain) == ("ZWO ASI294MM Pro", 60.0, 100)
    assert master.preview_key is None and master.stats is None  # described later


def test_its_configuration_follows_the_observatory_settings():
    ccd = CalibrationSettings(camera_type="CCD")
    assert upload({}).config_key == config_key(configuration(METADATA, CalibrationSettings()))
    assert upload({}, ccd).config_key == config_key(configuration(METADATA, ccd))


def test_how_it_was_made_comes_from_its_header():
    header = {"NCOMBINE": 20, "CALMETH": "median", "TEMPMIN": -10.5, "TEMPMAX": "-9.5"}
    master = upload(header)
    assert (master.n_frames, master.method) == (20, "median")
    assert (master.temperature_min_c, master.temperature_max_c) == (-10.5, -9.5)


@pytest.mark.parametrize("value", [None, "", "many", "2.5x"])
def test_a_missing_or_unreadable_card_is_unknown(value):
    master = upload({"NCOMBINE": value, "CALMETH": "", "TEMPMIN": value})
    assert master.n_frames is None and master.temperature_min_c is None
    assert master.method == "uploaded"
