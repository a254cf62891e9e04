"""Frame ingestion: ``frame.registered`` → validated, de-duplicated frame record."""

from __future__ import annotations

import uuid

import msgspec

from calib_core import events
from calib_core.headers import MissingFieldsError, fields_from_header, resolve_metadata
from calib_core.models import Frame, FrameType, JobTrigger, Rejection
from calib_infra.bus import publish
from calib_infra.jobqueue import check_trigger
from calib_infra.runtime import Runtime
from calib_infra.store import ObjectMissingError
from calib_stack.fitsio import HeaderIncompleteError, InvalidFitsError, image_header

HEADER_BYTES = 64 * 2880


class Rejected(Exception):
    """The event cannot become a frame; the message says why."""


async def read_header_fields(runtime: Runtime, storage_key: str, head: bytes, size: int) -> dict:
    """Header fields from the object's first bytes, fetching more if the header is longer."""
    length = len(head)
    while True:
        try:
            return fields_from_header(image_header(head))
        except HeaderIncompleteError:
            if length >= size:
                raise
            length = min(size, length * 4)
            head = await runtime.store.read_range(storage_key, 0, length)


async def register(runtime: Runtime, event: events.FrameRegistered, subject_observatory: str) -> Frame:
    """Validate and store one frame (or find the stored copy of the same file)."""
    if event.observatory_id != subject_observatory:
        raise Rejected(
            f"subject names observatory '{subject_observatory}' but the body names '{event.observatory_id}'"
        )
    if await runtime.observatories.get(event.observatory_id) is None:
        raise Rejected(f"unknown observatory '{event.observatory_id}'")
    try:
        scanned = await runtime.store.scan(event.storage_key, HEADER_BYTES)
    except ObjectMissingError as error:
        raise Rejected(f"object '{event.storage_key}' is missing from the bucket") from error
    if event.sha256 and event.sha256.lower() != scanned.sha256:
        raise Rejected(f"sha256 mismatch: event says {event.sha256}, object is {scanned.sha256}")
    try:
        header_fields = await read_header_fields(runtime, event.storage_key, scanned.head, scanned.size)
    except InvalidFitsError as error:
        raise Rejected(f"object '{event.storage_key}' is not a valid FITS image: {error}") from error
    event_fields = {
        k: v for k, v in msgspec.structs.asdict(event).items()
        if k not in ("event_id", "observatory_id", "storage_key", "sha256")
    }
    try:
        metadata = resolve_metadata(event_fields, header_fields)
    except MissingFieldsError as error:
        raise Rejected(str(error)) from error
    except msgspec.ValidationError as error:
        raise Rejected(f"invalid metadata: {error}") from error

    frame = Frame(
        **msgspec.structs.asdict(metadata),
        id=uuid.uuid4().hex,
        observatory_id=event.observatory_id,
        storage_key=event.storage_key,
        size_bytes=scanned.size,
        sha256=scanned.sha256,
        registered_at=runtime.now(),
    )
    if await runtime.frames.insert(frame):
        runtime.log.info("frame registered", frame_id=frame.id, observatory_id=frame.observatory_id,
                         frame_type=frame.frame_type.value, event_id=event.event_id)
        return frame
    stored = await runtime.frames.by_file(frame.observatory_id, frame.sha256)
    assert stored is not None
    runtime.log.info("duplicate frame ignored", frame_id=stored.id, event_id=event.event_id)
    return stored


async def reject(runtime: Runtime, event_id: str, observatory_id: str, storage_key: str | None,
                 reason: str) -> None:
    runtime.log.warning("frame rejected", event_id=event_id, observatory_id=observatory_id,
                        storage_key=storage_key, reason=reason)
    await runtime.rejections.record(Rejection(
        event_id=event_id, observatory_id=observatory_id, storage_key=storage_key,
        reason=reason, rejected_at=runtime.now(),
    ))
    if events.OBSERVATORY_ID_PATTERN.match(observatory_id):
        await publish(
            runtime.broker, events.FRAME_REJECTED,
            events.FrameRejected(event_id=event_id, observatory_id=observatory_id, reason=reason,
                                 storage_key=storage_key),
            observatory_id=observatory_id, msg_id=f"rejected-{event_id}",
        )


async def handle_registration(runtime: Runtime, body: bytes, subject: str) -> None:
    """The whole handling of one message; safe to repeat (at-least-once delivery)."""
    subject_observatory = events.observatory_of(subject)
    try:
        event = msgspec.json.decode(body, type=events.FrameRegistered)
    except msgspec.DecodeError as error:
        raw = msgspec.json.decode(body) if body[:1] == b"{" else {}
        raw = raw if isinstance(raw, dict) else {}
        await reject(runtime, str(raw.get("event_id") or uuid.uuid4().hex), subject_observatory,
                     raw.get("storage_key") if isinstance(raw.get("storage_key"), str) else None,
                     f"invalid event: {error}")
        return
    try:
        frame = await register(runtime, event, subject_observatory)
    except Rejected as rejected:
        await reject(runtime, event.event_id, subject_observatory, event.storage_key, str(rejected))
        return
    if frame.frame_type != FrameType.LIGHT:
        await check_trigger(runtime, frame, JobTrigger.REGISTRATION)
