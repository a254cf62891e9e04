"""Poison messages (SPEC §12): what a consumer does with a message it could not handle,
and the administrators' dead letters (list, replay).

The consumers (``calib_infra.runtime.Runtime.consume``, ``calib_infra.batches``) call
:func:`rejected` for a permanent failure and :func:`failed` for a transient one, and
settle the message as told: terminated, or handed back after the returned delay. The
rules are those of :mod:`calib_core.deadletters`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from calib_app.errors import NotFoundError
from calib_app.ports import Clock, DeadLetterRepository, Log, MessageReplayer
from calib_core.deadletters import (
    DEAD_STATUSES,
    DeadLetter,
    DeadLetterStatus,
    backoff_s,
    error_text,
    exhausted,
    letter_id,
    observatory_of,
    replay_msg_id,
)

#: Failures of one batch counted at once.
COUNT_CONCURRENCY = 32


@dataclass(frozen=True)
class DeadLetterOffice:
    letters: DeadLetterRepository
    bus: MessageReplayer
    clock: Clock
    log: Log
    #: ``CALIB_MAX_DELIVERIES``: failed deliveries of a message before it is given up on
    max_deliveries: int = 10


@dataclass(frozen=True)
class Received:
    """A message as one durable consumer received it."""

    consumer: str
    subject: str
    body: bytes
    #: JetStream's delivery count (hand-backs and lost acknowledgements included)
    delivered: int = 1
    stream_sequence: int | None = None
    #: when the stream stored it
    stored_at: datetime | None = None

    @property
    def letter_id(self) -> str:
        return letter_id(
            self.consumer, self.subject, self.body, self.stream_sequence, self.stored_at
        )


def _letter(
    message: Received, error: BaseException | str, now: datetime, *, permanent: bool
) -> DeadLetter:
    return DeadLetter(
        id=message.letter_id,
        consumer=message.consumer,
        subject=message.subject,
        body=message.body,
        observatory_id=observatory_of(message.subject),
        status=DeadLetterStatus.DEAD if permanent else DeadLetterStatus.RETRYING,
        attempts=1,
        error=error_text(error),
        permanent=permanent,
        first_seen=now,
        last_seen=now,
        stream_sequence=message.stream_sequence,
    )


async def rejected(office: DeadLetterOffice, message: Received, reason: str) -> None:
    """A permanent failure (a body no redelivery would make valid): recorded once, as a
    dead letter marked permanent; the consumer then terminates the message. Raises when
    it cannot be recorded: the consumer hands the message back, to be recorded later."""
    letter = _letter(message, reason, office.clock.now(), permanent=True)
    await office.letters.record(letter)
    office.log.error(
        "message rejected as a dead letter",
        consumer=message.consumer,
        subject=message.subject,
        dead_letter_id=letter.id,
        reason=letter.error,
    )


async def failed(
    office: DeadLetterOffice, message: Received, error: BaseException | str
) -> float | None:
    """A transient failure: counted. Returns the delay before the message's next
    delivery, or None once it has failed ``max_deliveries`` times: it is now a dead
    letter, and the consumer terminates it. A failure that cannot be counted (the
    database is away too) is retried after a delay that follows JetStream's delivery
    count, and never makes a dead letter blind."""
    try:
        return await _count(office, message, error)
    except Exception as not_counted:  # noqa: BLE001 - retried later, never lost
        return _not_counted(office, message, error, not_counted)


async def failed_many(
    office: DeadLetterOffice, failures: Sequence[tuple[Received, BaseException | str]]
) -> list[float | None]:
    """:func:`failed` for each of a batch's failures, a few at a time; when the first
    cannot be counted (the database is away), none is tried."""
    if not failures:
        return []
    (message, error), rest = failures[0], failures[1:]
    try:
        first = await _count(office, message, error)
    except Exception as not_counted:  # noqa: BLE001 - retried later, never lost
        return [_not_counted(office, m, e, not_counted) for m, e in failures]
    slots = asyncio.Semaphore(COUNT_CONCURRENCY)

    async def one(message: Received, error: BaseException | str) -> float | None:
        async with slots:
            return await failed(office, message, error)

    return [first, *await asyncio.gather(*(one(m, e) for m, e in rest))]


async def _count(
    office: DeadLetterOffice, message: Received, error: BaseException | str
) -> float | None:
    letter = _letter(message, error, office.clock.now(), permanent=False)
    fields = {"consumer": message.consumer, "subject": message.subject, "error": letter.error}
    attempts = await office.letters.count_failure(letter)
    if exhausted(attempts, office.max_deliveries):
        await office.letters.bury(letter.id, office.clock.now())
        office.log.error(
            "message given up on: dead letter",
            **fields,
            dead_letter_id=letter.id,
            attempts=attempts,
        )
        return None
    delay = backoff_s(attempts)
    office.log.warning(
        "message handling failed, will retry",
        **fields,
        attempt=attempts,
        max_deliveries=office.max_deliveries,
        retry_in_s=delay,
    )
    return delay


def _not_counted(
    office: DeadLetterOffice,
    message: Received,
    error: BaseException | str,
    not_counted: BaseException,
) -> float:
    delay = backoff_s(message.delivered)
    office.log.warning(
        "message handling failed, will retry (failure not counted)",
        consumer=message.consumer,
        subject=message.subject,
        error=error_text(error),
        delivered=message.delivered,
        retry_in_s=delay,
        not_counted=error_text(not_counted),
    )
    return delay


async def got_through(office: DeadLetterOffice, messages: Sequence[Received]) -> None:
    """Messages handled at last: the failure counts of those that had been delivered
    before go (best effort: a count left behind is harmless)."""
    redelivered = [m.letter_id for m in messages if m.delivered > 1]
    if not redelivered:
        return
    try:
        await office.letters.forget(redelivered)
    except Exception as error:  # noqa: BLE001 - a stale count only wastes a document
        office.log.warning("failure counts not cleared", error=error_text(error))


async def dead_letters(
    office: DeadLetterOffice, status: DeadLetterStatus | None = None, limit: int = 200
) -> list[DeadLetter]:
    """Dead letters (dead and replayed; or those of one status, ``retrying`` included),
    the most recently failed first."""
    return await office.letters.list([status] if status else list(DEAD_STATUSES), limit)


async def waiting(office: DeadLetterOffice) -> int:
    """How many dead letters wait for an administrator (dead, not replayed)."""
    return await office.letters.count([DeadLetterStatus.DEAD])


async def replay(office: DeadLetterOffice, dead_letter_id: str) -> DeadLetter:
    """Give a dead letter's message back to the stream: its subject and body as they
    were, under a new ``Nats-Msg-Id``, so every consumer of the subject takes it again
    (each is idempotent). The letter is then marked replayed."""
    letter = await office.letters.get(dead_letter_id)
    if letter is None or letter.status not in DEAD_STATUSES:
        raise NotFoundError(f"dead letter '{dead_letter_id}' not found")
    msg_id = replay_msg_id(letter)
    await office.bus.republish(letter.subject, letter.body, msg_id=msg_id)
    replayed = await office.letters.replayed(letter.id, msg_id, office.clock.now())
    if replayed is None:
        raise NotFoundError(f"dead letter '{dead_letter_id}' not found")
    office.log.info(
        "dead letter replayed",
        dead_letter_id=letter.id,
        subject=letter.subject,
        consumer=letter.consumer,
        msg_id=msg_id,
    )
    return replayed
