"""Registration rules (SPEC §2): which ``frame.registered`` events become frames, what
the frame records, and the reason recorded for each event that does not become one."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from calib_core import events
from calib_core.headers import MissingFieldsError, resolve_metadata
from calib_core.models import Frame, FrameMetadata, Rejection

#: Fields of the event that describe the event and its object, not the frame's metadata.
_EVENT_ONLY_FIELDS = ("event_id", "observatory_id", "storage_key", "sha256")


class Rejected(Exception):
    """The event cannot become a frame; the message says why."""


def missing_object(storage_key: str) -> Rejected:
    return Rejected(f"object '{storage_key}' is missing from the bucket")


def not_fits(storage_key: str, why: object) -> Rejected:
    return Rejected(f"object '{storage_key}' is not a valid FITS image: {why}")


def rejection(
    event_id: str, observatory_id: str, storage_key: str | None, reason: str, now: datetime
) -> Rejection:
    return Rejection(
        event_id=event_id,
        observatory_id=observatory_id,
        storage_key=storage_key,
        reason=reason,
        rejected_at=now,
    )


def decode_event(subject: str, body: bytes, now: datetime) -> events.FrameRegistered | Rejection:
    """The event a message on ``subject`` carries, or the rejection of an undecodable
    one or of one whose body names another observatory than its subject."""
    subject_observatory = events.observatory_of(subject)
    try:
        event = msgspec.json.decode(body, type=events.FrameRegistered)
    except msgspec.DecodeError as error:
        try:
            raw = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raw = None
        raw = raw if isinstance(raw, dict) else {}
        # a redelivery of the same bytes gets the same id, so it is recorded once
        event_id = raw.get("event_id")
        storage_key = raw.get("storage_key")
        return rejection(
            event_id
            if isinstance(event_id, str) and event_id
            else hashlib.sha256(body).hexdigest(),
            subject_observatory,
            storage_key if isinstance(storage_key, str) else None,
            f"invalid event: {error}",
            now,
        )
    if event.observatory_id != subject_observatory:
        return rejection(
            event.event_id,
            subject_observatory,
            event.storage_key,
            f"subject names observatory '{subject_observatory}' but the body names "
            f"'{event.observatory_id}'",
            now,
        )
    return event


def unknown_observatory(event: events.FrameRegistered, now: datetime) -> Rejection:
    return rejection(
        event.event_id,
        event.observatory_id,
        event.storage_key,
        f"unknown observatory '{event.observatory_id}'",
        now,
    )


def frame_metadata(
    event: events.FrameRegistered, header_fields: Mapping[str, Any]
) -> FrameMetadata:
    """The frame's metadata: the event's fields, the header's where the event has none.
    Raises :class:`Rejected` when a required field is missing or a value is invalid."""
    event_fields = {
        k: v for k, v in msgspec.structs.asdict(event).items() if k not in _EVENT_ONLY_FIELDS
    }
    try:
        return resolve_metadata(event_fields, header_fields)
    except MissingFieldsError as error:
        raise Rejected(str(error)) from error
    except msgspec.ValidationError as error:
        raise Rejected(f"invalid metadata: {error}") from error


def new_frame(
    event: events.FrameRegistered,
    metadata: FrameMetadata,
    *,
    needed: int,
    size: int,
    sha256: str,
    frame_id: str,
    now: datetime,
) -> Frame:
    """The frame an event announces, its object being ``size`` bytes with ``sha256``
    while its image needs ``needed``. Raises :class:`Rejected` for a truncated object
    or one whose sha256 is not the event's."""
    if size < needed:
        raise not_fits(
            event.storage_key,
            f"truncated, its image needs {needed} bytes, the object has {size}",
        )
    if event.sha256 and event.sha256.lower() != sha256:
        raise Rejected(f"sha256 mismatch: event says {event.sha256}, object is {sha256}")
    return Frame(
        **msgspec.structs.asdict(metadata),
        id=frame_id,
        observatory_id=event.observatory_id,
        storage_key=event.storage_key,
        size_bytes=size,
        sha256=sha256,
        registered_at=now,
    )


def announced(rejection: Rejection) -> events.FrameRejected | None:
    """The ``frame.rejected`` event of a rejection; None when its observatory id cannot
    name a subject (it is recorded all the same)."""
    if not events.OBSERVATORY_ID_PATTERN.match(rejection.observatory_id):
        return None
    return events.FrameRejected(
        event_id=rejection.event_id,
        observatory_id=rejection.observatory_id,
        reason=rejection.reason,
        storage_key=rejection.storage_key,
    )
