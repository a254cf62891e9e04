"""The Prometheus adapters: bounded labels, and calib run's restarts from its state file."""

from __future__ import annotations

import json
from types import SimpleNamespace

from prometheus_client import REGISTRY, CollectorRegistry

from calib_core import wiring
from calib_core.models import FrameType
from calib_infra import metrics


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


def test_a_rejection_is_counted_by_its_kind_never_its_text():
    counted = metrics.PrometheusWorkMetrics()
    before = sample("calib_frames_rejected_total", reason="unknown_observatory")
    counted.frame_rejected("unknown observatory 'north'")
    counted.frame_rejected("unknown observatory 'south'")
    assert sample("calib_frames_rejected_total", reason="unknown_observatory") == before + 2
    assert sample("calib_frames_rejected_total", reason="unknown observatory 'north'") == 0


def test_work_is_counted_by_observatory_type_and_outcome():
    counted = metrics.PrometheusWorkMetrics()
    counted.frame_registered("north", FrameType.FLAT)
    counted.stack_job_finished("failed", 12.5)
    assert sample("calib_frames_registered_total", observatory="north", frame_type="flat") >= 1
    assert sample("calib_stack_job_duration_seconds_bucket", outcome="failed", le="20.0") >= 1


def test_a_message_given_up_on_is_a_failure_and_a_dead_letter():
    labels = {"consumer": "stacker", "event": "stack.requested"}
    failed_before = sample("calib_messages_failed_total", **labels)
    dead_before = sample("calib_dead_letters_total", **labels, permanent="false")
    metrics.failed("stacker", "stack.requested.north", dead=False)
    metrics.failed("stacker", "stack.requested.north", dead=True)
    assert sample("calib_messages_failed_total", **labels) == failed_before + 2
    assert sample("calib_dead_letters_total", **labels, permanent="false") == dead_before + 1


def test_supervisor_restarts_come_from_its_state_file(tmp_path):
    state = tmp_path / "supervisor.json"
    registry = CollectorRegistry()
    registry.register(metrics.SupervisorRestarts(str(state)))
    assert registry.get_sample_value(metrics.SUPERVISOR_RESTARTS, {"process": "nats"}) is None

    state.write_text(json.dumps({"nats": {"restarts": 2}, "stacker-1": {"restarts": 0}}))
    assert registry.get_sample_value(metrics.SUPERVISOR_RESTARTS, {"process": "nats"}) == 2
    assert registry.get_sample_value(metrics.SUPERVISOR_RESTARTS, {"process": "stacker-1"}) == 0


class Consumers:
    """JetStream's consumer info, or NATS away."""

    def __init__(self) -> None:
        self.away = False

    async def consumer_info(self, stream: str, durable: str) -> SimpleNamespace:
        if self.away:
            raise ConnectionError("nats away")
        assert stream == wiring.STREAM.name
        return SimpleNamespace(num_pending=7, num_ack_pending=2)


async def test_a_consumers_lag_is_read_now_and_absent_when_it_cannot_be():
    js = Consumers()
    await metrics.observe_consumers(js, [wiring.STACKER])
    assert sample("calib_consumer_pending_messages", consumer="stacker") == 7
    assert sample("calib_consumer_ack_pending_messages", consumer="stacker") == 2

    js.away = True
    await metrics.observe_consumers(js, [wiring.STACKER])
    labels = {"consumer": "stacker"}
    assert REGISTRY.get_sample_value("calib_consumer_pending_messages", labels) is None
