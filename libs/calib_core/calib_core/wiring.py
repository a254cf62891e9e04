"""How the services are wired on the bus: the stream, the durable consumers and the
request subjects, declared once. Services bind their handlers from this table, the
health report lists its consumers, and deployment manifests are checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass

from calib_core import events

#: Every service Calib runs, in start-up order (the stacker scales out).
SERVICES = ("gateway", "registry", "scheduler", "lifecycle", "stacker")


@dataclass(frozen=True)
class Stream:
    name: str
    subjects: tuple[str, ...]
    #: a repeat publish with the same ``Nats-Msg-Id`` within this window is dropped
    duplicate_window_s: float
    #: bounds (SPEC §12): older messages, and the oldest beyond the size, are removed;
    #: the defaults of ``CALIB_STREAM_MAX_AGE_DAYS`` and ``CALIB_STREAM_MAX_GB``
    max_age_days: float = 30.0
    max_gb: float = 10.0


@dataclass(frozen=True)
class Consumer:
    """A durable pull consumer, shared by every replica of the service that binds it."""

    durable: str
    subject: str
    service: str
    #: how long a delivered message stays with one replica without an ack or a keep-alive
    ack_wait_s: float = 30.0


STREAM = Stream(
    name=events.STREAM_NAME,
    subjects=tuple(events.STREAM_SUBJECTS),
    duplicate_window_s=24 * 3600.0,
)

REGISTRY = Consumer("registry", f"{events.FRAME_REGISTERED}.*", "registry", ack_wait_s=10.0)
#: the stacker's ack wait comes from ``CALIB_STACKER_ACK_WAIT_S`` (how soon another
#: replica takes over a dead one's job); this is its default
STACKER = Consumer("stacker", f"{events.STACK_REQUESTED}.*", "stacker")
LIFECYCLE_SUPERSEDE = Consumer(
    "lifecycle-master-created", f"{events.MASTER_CREATED}.*", "lifecycle"
)
LIFECYCLE_DESCRIBE = Consumer(
    "lifecycle-master-describe", f"{events.MASTER_CREATED}.*", "lifecycle"
)
SCHEDULER_RESUME = Consumer("scheduler-master-created", f"{events.MASTER_CREATED}.*", "scheduler")

CONSUMERS = (REGISTRY, STACKER, LIFECYCLE_SUPERSEDE, LIFECYCLE_DESCRIBE, SCHEDULER_RESUME)

#: Request/reply subjects (core NATS) answered by the lifecycle service.
REQUESTS = {
    events.LIFECYCLE_CALIBRATE: "lifecycle",
    events.LIFECYCLE_MAINTENANCE: "lifecycle",
}
