"""Registration rules (SPEC §2): which ``frame.registered`` events become frames, what
the frame records, and the reason recorded for each event that does not become one."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from calib_core import events
from calib_core.headers import MissingFieldsError, master_card, names_a_master, resolve_metadata
from calib_core.limits import OutOfRangeError, check_fields
from calib_core.models import Frame, FrameMetadata, Rejection

#: Fields of the event that describe the event and its object, not the frame's metadata.
_EVENT_ONLY_FIELDS = ("event_id", "observatory_id", "storage_key", "sha256")

#: Why an event naming an object outside ``frames/<observatory of the subject>/`` is refused.
OUTSIDE_PREFIX = "storage key outside this observatory's prefix"

#: Where a master made elsewhere goes (SPEC §5, "Upload").
MASTER_UPLOAD = "POST /api/v1/calibration/masters/upload"


def frames_prefix(observatory_id: str) -> str:
    """Where an observatory's frames are uploaded (SPEC §12): ``frames/<observatory_id>/``."""
    return f"frames/{observatory_id}/"


def within_frames_prefix(observatory_id: str, storage_key: str) -> bool:
    """Whether ``storage_key`` names an object under the observatory's frames prefix, with
    no path tricks a store might resolve elsewhere (``..``, ``.``, empty segments,
    backslashes, control characters)."""
    prefix = frames_prefix(observatory_id)
    if not storage_key.startswith(prefix) or len(storage_key) == len(prefix):
        return False
    if "\\" in storage_key or any(ord(c) < 0x20 or ord(c) == 0x7F for c in storage_key):
        return False
    return all(part not in ("", ".", "..") for part in storage_key.split("/"))


class Rejected(Exception):
    """The event cannot become a frame; the message says why."""


def missing_object(storage_key: str) -> Rejected:
    return Rejected(f"object '{storage_key}' is missing from the bucket")


def not_fits(storage_key: str, why: object, kind: str = "FITS") -> Rejected:
    """The object is not a readable image of its ``kind`` (``'FITS'`` or ``'XISF'``)."""
    return Rejected(f"object '{storage_key}' is not a valid {kind} image: {why}")


def beyond_limits(storage_key: str, why: object) -> Rejected:
    """The object's header declares more than the image limits allow (SPEC §12)."""
    return Rejected(f"object '{storage_key}' exceeds a limit: {why}")


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
    one, of one whose body names another observatory than its subject, of one naming an
    object outside that observatory's prefix, and of one with a number out of range."""
    subject_observatory = events.observatory_of(subject)
    try:
        event = msgspec.json.decode(body, type=events.FrameRegistered)
    except msgspec.DecodeError as error:
        raw = _named_fields(body)
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
    if not within_frames_prefix(subject_observatory, event.storage_key):
        return rejection(
            event.event_id, subject_observatory, event.storage_key, OUTSIDE_PREFIX, now
        )
    try:
        check_fields(msgspec.structs.asdict(event))
    except OutOfRangeError as error:
        return rejection(
            event.event_id, subject_observatory, event.storage_key, f"invalid event: {error}", now
        )
    return event


def _named_fields(body: bytes) -> dict[str, object]:
    """The ``event_id`` and ``storage_key`` of an undecodable body, as far as it is a JSON
    object: found even beside values no type takes (a number too large for any)."""
    try:
        raw = msgspec.json.decode(body, type=dict[str, msgspec.Raw])
    except msgspec.DecodeError:
        return {}
    found: dict[str, object] = {}
    for name in ("event_id", "storage_key"):
        if name in raw:
            with contextlib.suppress(msgspec.DecodeError):
                found[name] = msgspec.json.decode(raw[name])
    return found


def unknown_observatory(event: events.FrameRegistered, now: datetime) -> Rejection:
    return rejection(
        event.event_id,
        event.observatory_id,
        event.storage_key,
        f"unknown observatory '{event.observatory_id}'",
        now,
    )


def refuse_a_master(event: events.FrameRegistered, header: Mapping[str, Any]) -> None:
    """Raises :class:`Rejected` for a file that is itself a master (``NCOMBINE = 20``,
    ``IMAGETYP = 'Master Dark'``, or an event whose frame type names one): registered as an
    individual frame it would be stacked again into a master of masters."""
    card = master_card(header)
    if card is None and names_a_master(event.frame_type):
        card = f"the event's frame_type {event.frame_type!r}"
    if card is not None:
        raise Rejected(
            f"object '{event.storage_key}' is already a master ({card}), not an individual "
            f"frame to stack: upload it with {MASTER_UPLOAD}"
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
    except (MissingFieldsError, OutOfRangeError) as error:
        raise Rejected(str(error)) from error
    except msgspec.ValidationError as error:
        raise Rejected(f"invalid metadata: {error}") from error


def new_frame(
    event: events.FrameRegistered,
    metadata: FrameMetadata,
    *,
    needed: int,
    kind: str = "FITS",
    size: int,
    sha256: str,
    frame_id: str,
    now: datetime,
) -> Frame:
    """The frame an event announces, its object being ``size`` bytes with ``sha256``
    while its image (of ``kind``, FITS or XISF) needs ``needed``. Raises
    :class:`Rejected` for a truncated object or one whose sha256 is not the event's."""
    if size < needed:
        raise not_fits(
            event.storage_key,
            f"truncated, its image needs {needed} bytes, the object has {size}",
            kind,
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


#: What each kind of rejection's reason looks like, in the order they are tried: the
#: reasons are texts for people, the kinds a bounded set to count (the metrics'
#: ``reason`` label). A reason none of these describes is a metadata problem (a required
#: field missing, a value out of range or of the wrong type).
_REJECTION_KINDS = (
    ("invalid_event", re.compile(r"^invalid event: ")),
    ("observatory_mismatch", re.compile(r"^subject names observatory ")),
    ("outside_prefix", re.compile("^" + re.escape(OUTSIDE_PREFIX) + "$")),
    ("unknown_observatory", re.compile(r"^unknown observatory ")),
    ("missing_object", re.compile(r" is missing from the bucket$")),
    ("not_fits", re.compile(r" is not a valid FITS image: ")),
    ("beyond_limits", re.compile(r" exceeds a limit: ")),
    ("already_a_master", re.compile(r" is already a master ")),
    ("sha256_mismatch", re.compile(r"^sha256 mismatch: ")),
)
INVALID_METADATA = "invalid_metadata"
REJECTION_KINDS = (*(kind for kind, _ in _REJECTION_KINDS), INVALID_METADATA)


def rejection_kind(reason: str) -> str:
    """The kind of a rejection's reason, one of :data:`REJECTION_KINDS`."""
    for kind, pattern in _REJECTION_KINDS:
        if pattern.search(reason):
            return kind
    return INVALID_METADATA


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
