"""Poison messages (SPEC §12 "Messages"): how a consumer settles a message it could not
handle, and the record of one it gave up on (a dead letter).

- A *permanent* failure (a body no redelivery would make valid) is recorded once, as a
  dead letter marked ``permanent``, and terminated: never delivered again.
- A *transient* failure (an exception: a dependency away, a bug) is retried after a
  backoff that doubles with each failure of that message, up to ``max_deliveries``
  failures; the last one makes the message a dead letter and terminates it.
- A deliberate hand-back (``calib_app.ports.RetryLater``: not yet, not a failure) is
  not a failure: it is neither counted nor ever makes a dead letter.

Failures are counted per message and consumer in the dead-letter records themselves
(status ``retrying`` until the bound), not from JetStream's delivery count, which also
counts hand-backs and redeliveries after a lost acknowledgement.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

import msgspec

#: The delay before the second delivery after a failure; it doubles with each failure.
BACKOFF_BASE_S = 1.0
#: ... up to this.
BACKOFF_CAP_S = 60.0
#: The last error is kept to this many characters.
ERROR_CHARS = 2000


class DeadLetterStatus(StrEnum):
    #: failed, and still being retried (not yet a dead letter; not listed as one)
    RETRYING = "retrying"
    #: given up on: terminated on the stream, waiting for an administrator
    DEAD = "dead"
    #: republished by an administrator
    REPLAYED = "replayed"


#: The statuses of a dead letter proper (listed to administrators, replayable).
DEAD_STATUSES = (DeadLetterStatus.DEAD, DeadLetterStatus.REPLAYED)


class DeadLetter(msgspec.Struct, kw_only=True):
    """One message, as one durable consumer failed to handle it."""

    id: str
    consumer: str
    subject: str
    body: bytes
    #: the last token of the subject (every subject ends with the observatory id)
    observatory_id: str
    status: DeadLetterStatus
    #: failed deliveries counted (1 for a permanent failure)
    attempts: int
    error: str
    #: a permanent failure (a body no redelivery would make valid), never retried
    permanent: bool = False
    first_seen: datetime
    last_seen: datetime
    #: the message's sequence number in the stream, when it came from one
    stream_sequence: int | None = None
    replays: int = 0
    replayed_at: datetime | None = None
    #: the ``Nats-Msg-Id`` of the last replay
    replay_msg_id: str | None = None


def backoff_s(failures: int) -> float:
    """The delay before redelivering a message that has failed ``failures`` times:
    1 s, 2 s, 4 s ... up to a minute."""
    exponent = min(max(failures, 1) - 1, 16)
    return min(BACKOFF_BASE_S * 2.0**exponent, BACKOFF_CAP_S)


def exhausted(failures: int, max_deliveries: int) -> bool:
    """Whether a message that has failed ``failures`` times is given up on."""
    return failures >= max(max_deliveries, 1)


def letter_id(
    consumer: str,
    subject: str,
    body: bytes,
    stream_sequence: int | None,
    stored_at: datetime | None,
) -> str:
    """The id of a message's record for one consumer: the same on every redelivery of the
    message, another for a republished copy (a replay) or for a message of a recreated
    stream that reuses the sequence number. Without a stream sequence (a message that
    did not come from a stream), the digest of the subject and body."""
    if stream_sequence is not None:
        stamp = int(stored_at.timestamp() * 1_000_000) if stored_at is not None else 0
        return f"{consumer}-{stream_sequence}-{stamp}"
    digest = hashlib.sha256(subject.encode() + b"\0" + body).hexdigest()[:32]
    return f"{consumer}-{digest}"


def error_text(error: BaseException | str) -> str:
    """An error as a dead letter keeps it: type and message, bounded."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text[:ERROR_CHARS]


def observatory_of(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


def replay_msg_id(letter: DeadLetter) -> str:
    """The ``Nats-Msg-Id`` of the next replay of ``letter``: new for each replay (so the
    stream does not drop it as a repeat of the original), the same for two requests of
    the same replay at once (so only one copy is published)."""
    return f"replay-{letter.id}-{letter.replays + 1}"
