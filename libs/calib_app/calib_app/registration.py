"""Frame ingestion: ``frame.registered`` → validated, de-duplicated frame records.

Events come in batches: the objects of a batch are read concurrently, its frames stored
in one round trip, and the registration trigger looks once at each configuration the
batch touched. Every step is safe to repeat: a frame is unique per observatory and file
(a unique index, not check-then-insert), a rejection per event id, a stacking job per
configuration.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from calib_app.ports import (
    Clock,
    Delivery,
    EventPublisher,
    FrameRepository,
    JobRepository,
    Log,
    NoMetrics,
    ObjectMissingError,
    ObjectStore,
    ObservatoryRepository,
    RejectionRepository,
    SettingsRepository,
    WorkMetrics,
)
from calib_app.queueing import JobQueue, check_triggers
from calib_core import events
from calib_core.fitsheader import HeaderIncompleteError, ImageLimitError, InvalidFitsError
from calib_core.headers import fields_from_header
from calib_core.imagefile import image_layout, kind_of
from calib_core.limits import ImageLimits
from calib_core.models import Frame, JobTrigger, Rejection
from calib_core.registration import (
    Rejected,
    announced,
    beyond_limits,
    decode_event,
    frame_metadata,
    missing_object,
    new_frame,
    not_fits,
    refuse_a_master,
    rejection,
    unknown_observatory,
)

#: First ranged read: enough for any usual header, and the whole of a small frame.
HEAD_BYTES = 16 * 2880
#: Objects read at once (the S3 client's connection pool holds 16).
READ_CONCURRENCY = 16
#: SPEC §12's defaults (``CALIB_MAX_IMAGE_PIXELS``, ``CALIB_MAX_HEADER_BYTES``).
DEFAULT_LIMITS = ImageLimits()


@dataclass(frozen=True)
class Registration:
    frames: FrameRepository
    observatories: ObservatoryRepository
    rejections: RejectionRepository
    store: ObjectStore
    jobs: JobRepository
    """With ``settings``: for the registration trigger (:attr:`queue`)."""
    settings: SettingsRepository
    events: EventPublisher
    clock: Clock
    log: Log
    limits: ImageLimits = DEFAULT_LIMITS
    """What an object's header may declare (SPEC §12): judged from its first bytes."""
    metrics: WorkMetrics = NoMetrics()

    @property
    def queue(self) -> JobQueue:
        return JobQueue(
            frames=self.frames,
            jobs=self.jobs,
            settings=self.settings,
            events=self.events,
            clock=self.clock,
            log=self.log,
        )


async def read_header(
    store: ObjectStore, storage_key: str, limits: ImageLimits = DEFAULT_LIMITS
) -> tuple[Mapping[str, Any], int, bytes | None, str]:
    """The object's header (its image's: a FITS file's, or an XISF file's cards, told
    by its signature) and the bytes its image needs, from ranged reads of its first bytes
    (a large object is not fetched to be judged, and no more than
    ``limits.max_header_bytes`` of it is read to find a header); also the whole object
    when it was that small, and its kind (``'FITS'`` or ``'XISF'``). Raises
    :class:`Rejected`."""
    length = HEAD_BYTES
    longest = max(HEAD_BYTES, limits.max_header_bytes)
    while True:
        try:
            head = await store.read_range(storage_key, 0, length)
        except ObjectMissingError as error:
            raise missing_object(storage_key) from error
        if not head:
            raise not_fits(storage_key, "it is empty")
        whole, kind = len(head) < length, kind_of(head)
        try:
            layout = image_layout(head, limits)
        except HeaderIncompleteError as error:
            if whole:
                raise not_fits(storage_key, "it ends inside its header", kind) from error
            if length >= longest:  # image_layout refuses that first; never read more
                raise beyond_limits(storage_key, "header too long") from error
            length = min(max(error.needed, length * 4), longest)
            continue
        except ImageLimitError as error:
            raise beyond_limits(storage_key, error) from error
        except InvalidFitsError as error:
            raise not_fits(storage_key, error, kind) from error
        return layout.header, layout.needed, head if whole else None, kind


async def read_frame(registration: Registration, event: events.FrameRegistered) -> Frame:
    """The frame an event announces: metadata from the event and the header, size and
    sha256 from the object (streamed, for objects larger than the first read). Raises
    :class:`Rejected`, also for a master made elsewhere."""
    header, needed, whole, kind = await read_header(
        registration.store, event.storage_key, registration.limits
    )
    refuse_a_master(event, header)
    metadata = frame_metadata(event, fields_from_header(header))
    if whole is not None:
        size, sha256 = len(whole), hashlib.sha256(whole).hexdigest()
    else:
        try:
            scanned = await registration.store.scan(event.storage_key, 0)
        except ObjectMissingError as error:
            raise missing_object(event.storage_key) from error
        size, sha256 = scanned.size, scanned.sha256
    return new_frame(
        event,
        metadata,
        needed=needed,
        kind=kind,
        size=size,
        sha256=sha256,
        frame_id=uuid.uuid4().hex,
        now=registration.clock.now(),
    )


async def reject(registration: Registration, refused: Rejection) -> None:
    """Log, record (once per event) and announce a rejection."""
    registration.log.warning(
        "frame rejected",
        event_id=refused.event_id,
        observatory_id=refused.observatory_id,
        storage_key=refused.storage_key,
        reason=refused.reason,
    )
    await registration.rejections.record(refused)
    registration.metrics.frame_rejected(refused.reason)
    announcement = announced(refused)
    if announcement is not None:
        await registration.events.publish(
            events.FRAME_REJECTED,
            announcement,
            observatory_id=refused.observatory_id,
            msg_id=f"rejected-{refused.event_id}",
        )


async def store_frames(
    registration: Registration, candidates: Sequence[Frame], event_ids: Sequence[str]
) -> list[Frame]:
    """Insert the batch's frames; a file already stored (same observatory and sha256,
    maybe in this very batch) resolves to the stored copy."""
    inserted = await registration.frames.insert_many(candidates)
    stored: list[Frame] = []
    for frame, event_id, new in zip(candidates, event_ids, inserted, strict=True):
        if new:
            registration.log.info(
                "frame registered",
                frame_id=frame.id,
                observatory_id=frame.observatory_id,
                frame_type=frame.frame_type.value,
                event_id=event_id,
            )
            registration.metrics.frame_registered(frame.observatory_id, frame.frame_type)
            stored.append(frame)
            continue
        existing = await registration.frames.by_file(frame.observatory_id, frame.sha256)
        if existing is None:  # deleted in between: nothing left to trigger on
            continue
        registration.log.info(
            "duplicate frame ignored",
            frame_id=existing.id,
            observatory_id=frame.observatory_id,
            event_id=event_id,
        )
        stored.append(existing)
    return stored


async def register_batch(
    registration: Registration, deliveries: Sequence[Delivery]
) -> list[bool | BaseException]:
    """Ingest a batch of ``frame.registered`` messages; per message, True when it is done,
    else the error that stopped it (a dependency failed: hand it back). Safe to repeat
    (at-least-once delivery)."""
    now = registration.clock.now()
    decoded = [decode_event(d.subject, d.body, now) for d in deliveries]
    announced_events = [e for e in decoded if isinstance(e, events.FrameRegistered)]
    known = await registration.observatories.existing([e.observatory_id for e in announced_events])
    limit = asyncio.Semaphore(READ_CONCURRENCY)

    async def inspect(event: events.FrameRegistered | Rejection) -> Frame | Rejection:
        if isinstance(event, Rejection):
            return event
        if event.observatory_id not in known:
            return unknown_observatory(event, registration.clock.now())
        async with limit:
            try:
                return await read_frame(registration, event)
            except Rejected as refused:
                return rejection(
                    event.event_id,
                    event.observatory_id,
                    event.storage_key,
                    str(refused),
                    registration.clock.now(),
                )

    outcomes = await asyncio.gather(*(inspect(e) for e in decoded), return_exceptions=True)
    for outcome, event in zip(outcomes, decoded, strict=True):
        if isinstance(outcome, BaseException):
            registration.log.error(
                "frame registration failed, will retry",
                event_id=event.event_id,
                error=repr(outcome),
            )
    candidates = [(o, e) for o, e in zip(outcomes, decoded, strict=True) if isinstance(o, Frame)]
    stored = await store_frames(
        registration,
        [frame for frame, _ in candidates],
        [event.event_id for _, event in candidates],
    )
    for outcome in outcomes:
        if isinstance(outcome, Rejection):
            await reject(registration, outcome)
    await check_triggers(registration.queue, stored, JobTrigger.REGISTRATION)
    return [o if isinstance(o, BaseException) else True for o in outcomes]
