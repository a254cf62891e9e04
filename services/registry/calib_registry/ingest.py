"""Frame ingestion: ``frame.registered`` → validated, de-duplicated frame records.

Events come in batches (see ``calib_infra.batches``): the objects of a batch are read
concurrently, its frames stored in one round trip, and the registration trigger looks
once at each configuration the batch touched. Every step is safe to repeat: a frame is
unique per observatory and file (a unique index, not check-then-insert), a rejection
per event id, a stacking job per configuration.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Sequence

import msgspec
from minio.error import S3Error

from calib_app.ports import ObjectMissingError
from calib_core import events
from calib_core.headers import (
    MissingFieldsError,
    fields_from_header,
    plain_image_layout,
    resolve_metadata,
)
from calib_core.models import Frame, JobTrigger, Rejection
from calib_infra.batches import Delivery
from calib_infra.bus import publish
from calib_infra.jobqueue import check_triggers
from calib_infra.runtime import Runtime
from calib_stack.fitsio import HeaderIncompleteError, InvalidFitsError, image_layout

#: First ranged read: enough for any usual header, and the whole of a small frame.
HEAD_BYTES = 16 * 2880
#: Objects read at once (the S3 client's connection pool holds 16).
READ_CONCURRENCY = 16
_EVENT_ONLY_FIELDS = ("event_id", "observatory_id", "storage_key", "sha256")


class Rejected(Exception):
    """The event cannot become a frame; the message says why."""


async def read_header(runtime: Runtime, storage_key: str) -> tuple[dict, int, bytes | None]:
    """The §2 fields of the object's FITS header and the bytes its image needs, from
    ranged reads of its first bytes (a large object is not fetched to be judged); also
    the whole object when it was that small."""
    length = HEAD_BYTES
    while True:
        try:
            head = await runtime.store.read_range(storage_key, 0, length)
        except ObjectMissingError as error:
            raise Rejected(f"object '{storage_key}' is missing from the bucket") from error
        except S3Error as error:
            if error.code != "InvalidRange":
                raise
            raise Rejected(
                f"object '{storage_key}' is not a valid FITS image: it is empty"
            ) from error
        whole = len(head) < length
        try:
            header, needed = plain_image_layout(head) or image_layout(head)
            return fields_from_header(header), needed, head if whole else None
        except HeaderIncompleteError as error:
            if whole:
                raise Rejected(
                    f"object '{storage_key}' is not a valid FITS image: it ends inside its header"
                ) from error
            length = max(error.needed, length * 4)
        except InvalidFitsError as error:
            raise Rejected(f"object '{storage_key}' is not a valid FITS image: {error}") from error


async def read_frame(runtime: Runtime, event: events.FrameRegistered) -> Frame:
    """The frame an event announces: metadata from the event and the header, size and
    sha256 from the object (streamed, for objects larger than the first read)."""
    header_fields, needed, whole = await read_header(runtime, event.storage_key)
    event_fields = {
        k: v for k, v in msgspec.structs.asdict(event).items() if k not in _EVENT_ONLY_FIELDS
    }
    try:
        metadata = resolve_metadata(event_fields, header_fields)
    except MissingFieldsError as error:
        raise Rejected(str(error)) from error
    except msgspec.ValidationError as error:
        raise Rejected(f"invalid metadata: {error}") from error
    if whole is not None:
        size, sha256 = len(whole), hashlib.sha256(whole).hexdigest()
    else:
        try:
            scanned = await runtime.store.scan(event.storage_key, 0)
        except ObjectMissingError as error:
            raise Rejected(f"object '{event.storage_key}' is missing from the bucket") from error
        size, sha256 = scanned.size, scanned.sha256
    if size < needed:
        raise Rejected(
            f"object '{event.storage_key}' is not a valid FITS image: truncated,"
            f" its image needs {needed} bytes, the object has {size}"
        )
    if event.sha256 and event.sha256.lower() != sha256:
        raise Rejected(f"sha256 mismatch: event says {event.sha256}, object is {sha256}")
    return Frame(
        **msgspec.structs.asdict(metadata),
        id=uuid.uuid4().hex,
        observatory_id=event.observatory_id,
        storage_key=event.storage_key,
        size_bytes=size,
        sha256=sha256,
        registered_at=runtime.now(),
    )


def decode(runtime: Runtime, delivery: Delivery) -> events.FrameRegistered | Rejection:
    """The event of a delivery, or the rejection of an undecodable one."""
    try:
        event = msgspec.json.decode(delivery.body, type=events.FrameRegistered)
    except msgspec.DecodeError as error:
        try:
            raw = msgspec.json.decode(delivery.body)
        except msgspec.DecodeError:
            raw = None
        raw = raw if isinstance(raw, dict) else {}
        # a redelivery of the same bytes gets the same id, so it is recorded once
        event_id = raw.get("event_id")
        storage_key = raw.get("storage_key")
        return rejection(
            runtime,
            event_id
            if isinstance(event_id, str) and event_id
            else hashlib.sha256(delivery.body).hexdigest(),
            events.observatory_of(delivery.subject),
            storage_key if isinstance(storage_key, str) else None,
            f"invalid event: {error}",
        )
    subject_observatory = events.observatory_of(delivery.subject)
    if event.observatory_id != subject_observatory:
        return rejection(
            runtime,
            event.event_id,
            subject_observatory,
            event.storage_key,
            f"subject names observatory '{subject_observatory}' but the body names "
            f"'{event.observatory_id}'",
        )
    return event


def rejection(
    runtime: Runtime, event_id: str, observatory_id: str, storage_key: str | None, reason: str
) -> Rejection:
    return Rejection(
        event_id=event_id,
        observatory_id=observatory_id,
        storage_key=storage_key,
        reason=reason,
        rejected_at=runtime.now(),
    )


async def reject(runtime: Runtime, refused: Rejection) -> None:
    """Log, record (once per event) and announce a rejection."""
    runtime.log.warning(
        "frame rejected",
        event_id=refused.event_id,
        observatory_id=refused.observatory_id,
        storage_key=refused.storage_key,
        reason=refused.reason,
    )
    await runtime.rejections.record(refused)
    if events.OBSERVATORY_ID_PATTERN.match(refused.observatory_id):
        await publish(
            runtime.broker,
            events.FRAME_REJECTED,
            events.FrameRejected(
                event_id=refused.event_id,
                observatory_id=refused.observatory_id,
                reason=refused.reason,
                storage_key=refused.storage_key,
            ),
            observatory_id=refused.observatory_id,
            msg_id=f"rejected-{refused.event_id}",
        )


async def store_frames(
    runtime: Runtime, candidates: Sequence[Frame], event_ids: Sequence[str]
) -> list[Frame]:
    """Insert the batch's frames; a file already stored (same observatory and sha256,
    maybe in this very batch) resolves to the stored copy."""
    inserted = await runtime.frames.insert_many(candidates)
    stored: list[Frame] = []
    for frame, event_id, new in zip(candidates, event_ids, inserted, strict=True):
        if new:
            runtime.log.info(
                "frame registered",
                frame_id=frame.id,
                observatory_id=frame.observatory_id,
                frame_type=frame.frame_type.value,
                event_id=event_id,
            )
            stored.append(frame)
            continue
        existing = await runtime.frames.by_file(frame.observatory_id, frame.sha256)
        if existing is None:  # deleted in between: nothing left to trigger on
            continue
        runtime.log.info(
            "duplicate frame ignored",
            frame_id=existing.id,
            observatory_id=frame.observatory_id,
            event_id=event_id,
        )
        stored.append(existing)
    return stored


async def handle_batch(runtime: Runtime, deliveries: Sequence[Delivery]) -> list[bool]:
    """Ingest a batch of ``frame.registered`` messages; per message, whether it is done
    (False: a dependency failed, hand it back). Safe to repeat (at-least-once delivery)."""
    decoded = [decode(runtime, d) for d in deliveries]
    announced = [e for e in decoded if isinstance(e, events.FrameRegistered)]
    known = await runtime.observatories.existing([e.observatory_id for e in announced])
    limit = asyncio.Semaphore(READ_CONCURRENCY)

    async def inspect(event: events.FrameRegistered | Rejection) -> Frame | Rejection:
        if isinstance(event, Rejection):
            return event
        if event.observatory_id not in known:
            return rejection(
                runtime,
                event.event_id,
                event.observatory_id,
                event.storage_key,
                f"unknown observatory '{event.observatory_id}'",
            )
        async with limit:
            try:
                return await read_frame(runtime, event)
            except Rejected as refused:
                return rejection(
                    runtime, event.event_id, event.observatory_id, event.storage_key, str(refused)
                )

    outcomes = await asyncio.gather(*(inspect(e) for e in decoded), return_exceptions=True)
    for outcome, event in zip(outcomes, decoded, strict=True):
        if isinstance(outcome, BaseException):
            runtime.log.error(
                "frame registration failed, will retry",
                event_id=event.event_id,
                error=repr(outcome),
            )
    candidates = [(o, e) for o, e in zip(outcomes, decoded, strict=True) if isinstance(o, Frame)]
    stored = await store_frames(
        runtime, [frame for frame, _ in candidates], [event.event_id for _, event in candidates]
    )
    for outcome in outcomes:
        if isinstance(outcome, Rejection):
            await reject(runtime, outcome)
    await check_triggers(runtime, stored, JobTrigger.REGISTRATION)
    return [not isinstance(o, BaseException) for o in outcomes]
