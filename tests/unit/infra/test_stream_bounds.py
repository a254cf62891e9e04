"""SPEC §12: the stream is bounded in age and size by ``CALIB_STREAM_MAX_AGE_DAYS`` (30)
and ``CALIB_STREAM_MAX_GB`` (10), as every subscriber declares it; a durable consumer
has no bound of its own on deliveries (the consumer counts failures itself)."""

from __future__ import annotations

from calib_infra.bus import MAX_DELIVER, calibration_stream, durable_consumer, stream_bounds
from calib_infra.config import load_config


def test_the_defaults_bound_the_stream_to_30_days_and_10_gb():
    config = load_config({})
    assert (config.max_deliveries, config.stream_max_age_days, config.stream_max_gb) == (10, 30, 10)
    assert stream_bounds(config) == {
        "max_age": 30 * 86400.0,
        "max_bytes": 10 * 1024**3,
        "duplicate_window": 86400.0,
    }


def test_the_bounds_follow_the_environment_and_zero_is_none():
    config = load_config(
        {
            "CALIB_STREAM_MAX_AGE_DAYS": "0.5",
            "CALIB_STREAM_MAX_GB": "0",
            "CALIB_MAX_DELIVERIES": "3",
        }
    )
    assert config.max_deliveries == 3
    # NATS wants the de-duplication window within the age
    assert stream_bounds(config) == {
        "max_age": 43200.0,
        "max_bytes": -1,
        "duplicate_window": 43200.0,
    }
    unbounded = stream_bounds(load_config({"CALIB_STREAM_MAX_AGE_DAYS": "0"}))
    assert (unbounded["max_age"], unbounded["duplicate_window"]) == (0.0, 86400.0)


def test_subscribers_declare_the_same_bounds_and_no_delivery_bound():
    config = load_config({"CALIB_STREAM_MAX_GB": "2"})
    declared = calibration_stream(config).config
    assert (declared.max_age, declared.max_bytes) == (30 * 86400.0, 2 * 1024**3)
    options = durable_consumer("stacker", config, ack_wait_s=12.0)
    assert options["stream"].config.max_bytes == 2 * 1024**3
    assert options["config"].max_deliver == MAX_DELIVER == -1
