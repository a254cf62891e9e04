"""SPEC §5: the master record and its FITS provenance."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from calib_core import __version__
from calib_core.masters import (
    build_master,
    components_digest,
    master_id_for_job,
    master_storage_key,
    preview_storage_key,
    provenance_cards,
)
from calib_core.models import FrameType, MasterStatus
from calib_core.settings import CalibrationSettings
from tests.unit.core.factories import NOW, OBS, frame, job

STATS = {"median": 100.0}


def build(job_, components, **overrides):
    values = {
        "width": 64,
        "height": 48,
        "size_bytes": 12345,
        "sha256": "ab" * 32,
        "stats": STATS,
        "now": NOW,
    }
    values.update(overrides)
    return build_master(job_, components, **values)


def cards_dict(cards):
    return {key: value for key, value, _ in cards}


def dark_job(settings=None, **overrides):
    settings = settings or CalibrationSettings()
    overrides.setdefault("configuration", {"frame_type": "dark", "exposure_s": 60.0})
    return job("dark", settings_obj=settings, **overrides)


def test_master_ids_derive_from_the_job():
    assert master_id_for_job("abc") == master_id_for_job("abc")
    assert master_id_for_job("abc") != master_id_for_job("abd")
    assert master_storage_key(OBS, "mx") == f"masters/{OBS}/mx.fits"
    assert preview_storage_key(OBS, "mx") == f"previews/{OBS}/mx.png"


def test_build_master_fields():
    components = [
        frame(
            "dark",
            temperature_c=t,
            exposure_s=e,
            captured_at=NOW - timedelta(hours=h),
            set_temperature_c=-10.0,
        )
        for t, e, h in ((-10.0, 59.6, 3), (-9.0, 60.4, 1), (-11.0, 60.0, 2))
    ]
    j = dark_job(id="job42", config_key="cfg-key")
    m = build(j, components)
    assert m.id == master_id_for_job("job42")
    assert build(j, list(reversed(components))).id == m.id
    assert m.is_master is True
    assert m.status == MasterStatus.ACTIVE
    assert m.observatory_id == OBS
    assert m.frame_type == FrameType.DARK
    assert m.n_frames == 3
    assert m.components == [f.id for f in components]
    assert m.temperature_c == pytest.approx(-10.0)
    assert (m.temperature_min_c, m.temperature_max_c) == (-11.0, -9.0)
    assert m.set_temperature_c == pytest.approx(-10.0)
    assert m.exposure_s == 60.0
    assert m.captured_at == NOW - timedelta(hours=1)
    assert m.config_key == "cfg-key"
    assert m.job_id == "job42"
    assert m.method == "sigma_clip"
    assert m.method_params == {"sigma": 3.0, "iterations": 5}
    assert m.storage_key == master_storage_key(OBS, m.id)
    assert m.preview_key == preview_storage_key(OBS, m.id)
    assert (m.width, m.height, m.size_bytes, m.sha256) == (64, 48, 12345, "ab" * 32)
    assert m.created_at == m.registered_at == NOW
    assert m.stats == STATS
    assert m.camera_name == components[0].camera_name
    assert (m.gain, m.offset, m.binning) == (100.0, 50.0, "1x1")
    assert m.filter is None
    assert m.superseded_by is None and m.superseded_at is None


def test_mean_temperature_ignores_frames_without_one():
    components = [
        frame("dark", temperature_c=-10.0),
        frame("dark", temperature_c=None),
        frame("dark", temperature_c=-8.0),
    ]
    m = build(dark_job(), components)
    assert m.temperature_c == pytest.approx(-9.0)
    assert m.n_frames == 3


def test_no_temperatures_gives_none():
    m = build(dark_job(), [frame("dark", temperature_c=None)])
    assert m.temperature_c is None and m.temperature_min_c is None and m.temperature_max_c is None


@pytest.mark.parametrize(("method", "params"), [("mean", {}), ("median", {})])
def test_method_params_for_plain_methods(method, params):
    m = build(dark_job(CalibrationSettings(stacking_method=method)), [frame("dark")])
    assert m.method == method
    assert m.method_params == params


def test_ccd_dark_is_a_rate():
    s = CalibrationSettings(camera_type="CCD")
    j = job("dark", settings_obj=s, configuration={"frame_type": "dark"})
    m = build(j, [frame("dark", exposure_s=100.0), frame("dark", exposure_s=300.0)])
    assert m.method_params["unit"] == "adu/s"
    assert m.exposure_s == pytest.approx(200.0)
    assert cards_dict(provenance_cards(j, [frame("dark")], NOW))["BUNIT"] == "adu/s"


def test_flat_keeps_filter_and_mean_rotation():
    j = job("flat", configuration={"frame_type": "flat", "filter": "Ha"})
    components = [
        frame("flat", filter="Ha", rotation_deg=359.8, exposure_s=2.0),
        frame("flat", filter="Ha", rotation_deg=0.2, exposure_s=4.0),
    ]
    m = build(j, components)
    assert m.filter == "Ha"
    assert m.exposure_s == pytest.approx(3.0)
    assert m.rotation_deg == pytest.approx(0.0, abs=1e-9)
    assert m.method_params == CalibrationSettings().method_params()


def test_dark_master_has_no_filter():
    m = build(dark_job(), [frame("dark", filter="Ha")])
    assert m.filter is None


# ---- provenance ----------------------------------------------------------------------------------


def test_provenance_cards_content():
    components = [
        frame("dark", temperature_c=t, readout_mode="HDR", binning="2x2")
        for t in (-10.0, -9.0, -11.0)
    ]
    j = dark_job(id="job7", observatory_id="obs-9")
    cards = provenance_cards(j, components, NOW)
    values = cards_dict(cards)
    assert values["NCOMBINE"] == 3
    assert values["CALMETH"] == "sigma_clip"
    assert values["CLIPSIG"] == 3.0
    assert values["CLIPITER"] == 5
    assert values["IMAGETYP"] == "MASTER DARK"
    assert values["INSTRUME"] == components[0].camera_name
    assert values["XBINNING"] == 2 and values["YBINNING"] == 2
    assert values["GAIN"] == 100.0 and values["OFFSET"] == 50.0
    assert values["READOUTM"] == "HDR"
    assert values["EXPTIME"] == 60.0
    assert values["CCD-TEMP"] == pytest.approx(-10.0)
    assert (values["TEMPMIN"], values["TEMPMAX"]) == (-11.0, -9.0)
    assert values["CALOBS"] == "obs-9"
    assert values["CALJOB"] == "job7"
    assert values["CALMSTR"] == master_id_for_job("job7")
    assert values["SRCDIGST"] == components_digest([f.id for f in components])
    assert values["DATE"] == NOW.strftime("%Y-%m-%dT%H:%M:%S")
    assert values["SWCREATE"] == f"calib {__version__}"
    assert [values[f"SRC{i:04d}"] for i in (1, 2, 3)] == [f.id for f in components]
    assert "FILTER" not in values
    assert "BUNIT" not in values
    for key, _, comment in cards:
        assert len(key) <= 8
        assert isinstance(comment, str)
    assert len(values) == len(cards)  # no keyword twice


@pytest.mark.parametrize("method", ["mean", "median"])
def test_provenance_without_clipping_parameters(method):
    values = cards_dict(
        provenance_cards(
            dark_job(CalibrationSettings(stacking_method=method)), [frame("dark")], NOW
        )
    )
    assert values["CALMETH"] == method
    assert "CLIPSIG" not in values and "CLIPITER" not in values


def test_provenance_flat_filter_and_optional_cards():
    j = job("flat", configuration={"frame_type": "flat", "filter": "OIII"})
    values = cards_dict(
        provenance_cards(
            j, [frame("flat", filter="OIII", gain=None, offset=None, temperature_c=None)], NOW
        )
    )
    assert values["FILTER"] == "OIII"
    assert values["IMAGETYP"] == "MASTER FLAT"
    for absent in ("GAIN", "OFFSET", "READOUTM", "CCD-TEMP", "TEMPMIN", "TEMPMAX"):
        assert absent not in values


def test_source_digest_is_stable_under_reordering():
    components = [frame("dark") for _ in range(20)]
    shuffled = list(components)
    random.Random(3).shuffle(shuffled)
    a = cards_dict(provenance_cards(dark_job(), components, NOW))["SRCDIGST"]
    b = cards_dict(provenance_cards(dark_job(), shuffled, NOW))["SRCDIGST"]
    assert a == b
    c = cards_dict(provenance_cards(dark_job(), components[:-1], NOW))["SRCDIGST"]
    assert c != a
    assert len(a) == 64 and int(a, 16) >= 0


def test_source_id_cards_are_capped():
    components = [frame("dark") for _ in range(1005)]
    values = cards_dict(provenance_cards(dark_job(), components, NOW))
    assert values["NCOMBINE"] == 1005
    assert "SRC0999" in values and "SRC1000" not in values
