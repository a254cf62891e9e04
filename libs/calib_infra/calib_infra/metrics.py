"""Prometheus metrics: every name Calib exposes is declared here, once (the Grafana
dashboard in ``deploy/grafana/`` is checked against this module), with the adapters that
count them.

Conventions: the ``calib_`` prefix, counters end in ``_total``, durations are histograms in
``_seconds``. Labels stay bounded: a consumer's durable name, an event's kind (its subject
without the observatory), a rejection's kind (never its text). Each process exposes its
own counts at ``GET /metrics`` (the gateway on its API port, the other services beside
``/healthz`` on ``CALIB_HEALTH_PORT``), with the client library's ``process_*`` figures
(CPU seconds, resident memory) that size a deployment (deploy/README.md).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import prometheus_client
from nats.js.client import JetStreamContext
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from calib_core import wiring
from calib_core.models import FrameType
from calib_core.registration import rejection_kind

#: the ``_created`` samples only double the exposition
prometheus_client.disable_created_metrics()

CONTENT_TYPE = CONTENT_TYPE_LATEST

MESSAGES_HANDLED = Counter(
    "calib_messages_handled_total",
    "Messages a durable consumer handled and acknowledged.",
    ["consumer", "event"],
)
MESSAGES_FAILED = Counter(
    "calib_messages_failed_total",
    "Deliveries that failed (handed back after a backoff, or given up on as a dead letter).",
    ["consumer", "event"],
)
REQUESTS_ANSWERED = Counter(
    "calib_requests_answered_total",
    "Requests (core NATS request/reply, the lifecycle's) answered, by subject and outcome "
    "(ok, or error: the caller got the reason).",
    ["subject", "outcome"],
)
DEAD_LETTERS = Counter(
    "calib_dead_letters_total",
    "Messages made dead letters: permanent (a body no redelivery makes valid) or after "
    "CALIB_MAX_DELIVERIES failures.",
    ["consumer", "event", "permanent"],
)
DEAD_LETTERS_WAITING = Gauge(
    "calib_dead_letters_waiting",
    "Dead letters waiting for an administrator (not replayed); the gateway's.",
)
CONSUMER_PENDING = Gauge(
    "calib_consumer_pending_messages",
    "A durable consumer's lag: messages on the stream not yet delivered to it (read from "
    "JetStream at scrape time by the service that binds it).",
    ["consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "calib_consumer_ack_pending_messages",
    "Messages delivered to a durable consumer and not yet acknowledged (in progress).",
    ["consumer"],
)
FRAMES_REGISTERED = Counter(
    "calib_frames_registered_total",
    "Frames the registry registered (new records, not duplicates).",
    ["observatory", "frame_type"],
)
FRAMES_REJECTED = Counter(
    "calib_frames_rejected_total",
    "frame.registered events the registry rejected, by the kind of reason.",
    ["reason"],
)
#: a job of a few small frames takes seconds; fifty 60 MP frames on one core, many minutes
STACK_JOB_BUCKETS_S = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
STACK_JOB_DURATION = Histogram(
    "calib_stack_job_duration_seconds",
    "Wall time of a stacking job from its claim to its end, by outcome.",
    ["outcome"],
    buckets=STACK_JOB_BUCKETS_S,
)
SUPERVISOR_RESTARTS = "calib_supervisor_restarts_total"

#: every collector declared above (the dashboard's test reads their names)
DECLARED: tuple[Collector, ...] = (
    MESSAGES_HANDLED,
    MESSAGES_FAILED,
    REQUESTS_ANSWERED,
    DEAD_LETTERS,
    DEAD_LETTERS_WAITING,
    CONSUMER_PENDING,
    CONSUMER_ACK_PENDING,
    FRAMES_REGISTERED,
    FRAMES_REJECTED,
    STACK_JOB_DURATION,
)


def event_of(subject: str) -> str:
    """The kind of event a subject carries: the subject without its observatory."""
    return subject.rsplit(".", 1)[0]


def handled(consumer: str, subject: str) -> None:
    MESSAGES_HANDLED.labels(consumer, event_of(subject)).inc()


def failed(consumer: str, subject: str, *, dead: bool) -> None:
    """A failed delivery; ``dead`` when it was the last (now a dead letter)."""
    MESSAGES_FAILED.labels(consumer, event_of(subject)).inc()
    if dead:
        dead_letter(consumer, subject, permanent=False)


def dead_letter(consumer: str, subject: str, *, permanent: bool) -> None:
    DEAD_LETTERS.labels(consumer, event_of(subject), str(permanent).lower()).inc()


class PrometheusWorkMetrics:
    """The use cases' :class:`calib_app.ports.WorkMetrics`, counted here."""

    def frame_registered(self, observatory_id: str, frame_type: FrameType) -> None:
        FRAMES_REGISTERED.labels(observatory_id, frame_type.value).inc()

    def frame_rejected(self, reason: str) -> None:
        FRAMES_REJECTED.labels(rejection_kind(reason)).inc()

    def stack_job_finished(self, outcome: str, seconds: float) -> None:
        STACK_JOB_DURATION.labels(outcome).observe(seconds)


async def observe_consumers(
    js: JetStreamContext, consumers: Sequence[wiring.Consumer], timeout_s: float = 2.0
) -> None:
    """Read each durable consumer's lag from JetStream now; one that cannot be read within
    ``timeout_s`` (not bound yet, NATS away) has no sample rather than a stale one."""
    for consumer in consumers:
        try:
            info = await asyncio.wait_for(
                js.consumer_info(wiring.STREAM.name, consumer.durable), timeout_s
            )
        except Exception:  # noqa: BLE001 - an absent sample is what an alert sees
            CONSUMER_PENDING.remove(consumer.durable)
            CONSUMER_ACK_PENDING.remove(consumer.durable)
            continue
        CONSUMER_PENDING.labels(consumer.durable).set(info.num_pending or 0)
        CONSUMER_ACK_PENDING.labels(consumer.durable).set(info.num_ack_pending or 0)


class SupervisorRestarts(Collector):
    """``calib run``'s restarts of each process it supervises, from its state file (the
    same the admin ``/health`` report shows); nothing without a supervisor."""

    def __init__(self, state_file: str):
        self.state_file = state_file

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(
            SUPERVISOR_RESTARTS,
            "Restarts of each process calib run supervises (exits and unanswered probes).",
            labels=["process"],
        )
        for name, report in self._processes().items():
            family.add_metric([name], float(report.get("restarts", 0)))
        yield family

    def _processes(self) -> dict[str, dict]:
        if not self.state_file:
            return {}
        try:
            return json.loads(Path(self.state_file).read_text())
        except (OSError, ValueError):
            return {}


def exposition() -> bytes:
    """This process's metrics in Prometheus' text format."""
    return prometheus_client.generate_latest()
