"""A JetStream message as a consumer received it, for the settling of the ones it could
not handle (:mod:`calib_app.dead_letters`)."""

from __future__ import annotations

from nats.aio.msg import Msg

from calib_app.dead_letters import Received


def received(consumer: str, message: Msg) -> Received:
    """``message`` as the durable ``consumer`` received it: its delivery count, stream
    sequence and time of storing from the JetStream metadata (none for a message that
    did not come from a stream, such as a test broker's)."""
    try:
        metadata = message.metadata
    except Exception:  # noqa: BLE001 - no JetStream reply subject: a first delivery
        return Received(consumer, message.subject, message.data)
    return Received(
        consumer,
        message.subject,
        message.data,
        delivered=metadata.num_delivered,
        stream_sequence=metadata.sequence.stream,
        stored_at=metadata.timestamp,
    )
