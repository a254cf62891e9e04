"""The shared records: the status vocabularies of SPEC §5/§7 and JSON round trips."""

from __future__ import annotations

import msgspec

from calib_core.models import (
    CALIBRATION_TYPES,
    CURRENT_MASTER_STATUSES,
    OPEN_JOB_STATUSES,
    CalibrationStatus,
    Frame,
    FrameType,
    JobStatus,
    JobTrigger,
    MasterStatus,
    StackJob,
)
from tests.unit.core.factories import frame, job, master


def test_vocabularies_are_the_spec_words():
    assert {t.value for t in FrameType} == {"dark", "flat", "bias", "light"}
    assert {s.value for s in MasterStatus} == {"active", "expired", "superseded"}
    assert {s.value for s in JobStatus} == {"queued", "running", "succeeded", "failed", "deferred"}
    assert {t.value for t in JobTrigger} == {"registration", "sweep", "manual", "retry"}
    assert {s.value for s in CalibrationStatus} == {"calibrated", "cal_failed", "no_masters"}


def test_groupings_of_statuses():
    assert set(CALIBRATION_TYPES) == {FrameType.DARK, FrameType.FLAT, FrameType.BIAS}
    assert set(CURRENT_MASTER_STATUSES) == {MasterStatus.ACTIVE, MasterStatus.EXPIRED}
    assert set(OPEN_JOB_STATUSES) == {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DEFERRED}


def test_frame_json_round_trip():
    for record in (frame("light", rotation_deg=12.5), master("flat", method_params={"sigma": 3.0})):
        encoded = msgspec.json.encode(record)
        assert msgspec.json.decode(encoded, type=Frame) == record


def test_individual_frame_defaults():
    f = frame("dark")
    assert f.is_master is False
    assert f.master_id is None and f.status is None and f.components is None


def test_job_json_round_trip():
    j = job("dark", frame_ids=["a", "b"])
    assert msgspec.json.decode(msgspec.json.encode(j), type=StackJob) == j
    assert msgspec.to_builtins(j)["status"] == "running"
