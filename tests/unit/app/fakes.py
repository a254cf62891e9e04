"""In-memory fakes of every port in :mod:`calib_app.ports`, for fast tests of use cases.

Each fake answers exactly as its adapter in ``calib_infra`` does; the repositories are
checked against the MongoDB ones by ``tests/integration/test_repository_contract.py``.
The repositories keep documents as the adapters store them (``id`` as ``_id``, enums as
their values, datetimes in UTC to the millisecond as BSON keeps them, extra fields such
as ``deleting`` and ``open_key``) and run each adapter's query over them with a small
matcher of the few MongoDB operators the adapters use. Records handed out are built
afresh from the stored documents, so a test cannot change stored state by mutating one.

Where an adapter lets a driver's exception through (a duplicate key on an update), the
fake raises the same exception type.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import operator
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import IO, Any, TypeVar

import msgspec
from bson.errors import InvalidDocument
from nats.errors import ConnectionClosedError
from pymongo.errors import DuplicateKeyError

from calib_app.ports import (
    InvalidImageError,
    MasterDescription,
    ObjectInfo,
    ObjectMissingError,
    ScannedObject,
)
from calib_core import events, wiring
from calib_core.access import ApiToken, User
from calib_core.calibration import CacheEntry
from calib_core.deadletters import DEAD_STATUSES, DeadLetter, DeadLetterStatus
from calib_core.lifecycle import MaintenanceTask
from calib_core.models import (
    CURRENT_MASTER_STATUSES,
    OPEN_JOB_STATUSES,
    Frame,
    FrameType,
    JobStatus,
    MasterStatus,
    Observatory,
    Rejection,
    StackJob,
)
from calib_core.presigned import PendingUpload
from calib_core.settings import CalibrationSettings, settings_from_document
from calib_infra.filecache import ChangedInStorageError, UnusableFileError
from calib_infra.rpc import ServiceUnavailableError

S = TypeVar("S", bound=msgspec.Struct)
R = TypeVar("R")

#: The fake clock's default time (the same instant as ``tests.unit.core.factories.NOW``).
DEFAULT_NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

CALIBRATION_TYPE_VALUES = [FrameType.DARK.value, FrameType.FLAT.value, FrameType.BIAS.value]


# -- documents: what MongoDB would store and give back ---------------------------------
_MISSING: Any = object()


def _bson(value: Any) -> Any:
    """``value`` as BSON round-trips it: a deep copy with datetimes made UTC-aware and cut
    to the millisecond, str/int subclasses (enums) made plain, tuples made lists."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise InvalidDocument(f"documents must have only string keys, key was {value!r}")
        return {str(k): _bson(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_bson(v) for v in value]
    if isinstance(value, bytes):
        return bytes(value)
    raise InvalidDocument(f"cannot encode object: {value!r}, of type: {type(value)!r}")


def _document(record: msgspec.Struct) -> dict[str, Any]:
    """``calib_infra.mongo.to_document`` followed by a BSON round trip."""
    document = msgspec.to_builtins(record, builtin_types=(datetime,))
    if "id" in document:
        document["_id"] = document.pop("id")
    return _bson(document)


def _record(document: dict[str, Any], kind: type[S]) -> S:
    """``calib_infra.mongo.from_document`` on a private copy of a stored document."""
    values = copy.deepcopy(document)
    if "_id" in values:
        values["id"] = values.pop("_id")
    values.pop("open_key", None)
    return msgspec.convert(values, kind, strict=False)


def _without_id(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` projected with ``{"_id": 0}``."""
    return {k: copy.deepcopy(v) for k, v in document.items() if k != "_id"}


def _get(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _set(document: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        document = document.setdefault(part, {})
    document[last] = value


def _unset(document: dict[str, Any], path: str) -> None:
    *parents, last = path.split(".")
    for part in parents:
        document = document.get(part)
        if not isinstance(document, dict):
            return
    document.pop(last, None)


def _bracket(value: Any) -> int:
    """MongoDB's canonical type order: null, numbers, strings, objects, arrays, bools, dates."""
    if value is _MISSING or value is None:
        return 1
    if isinstance(value, bool):
        return 8
    if isinstance(value, int | float):
        return 2
    if isinstance(value, str):
        return 3
    if isinstance(value, dict):
        return 4
    if isinstance(value, list):
        return 5
    if isinstance(value, bytes):
        return 6
    if isinstance(value, datetime):
        return 9
    return 20


def _sort_key(value: Any) -> tuple[int, Any]:
    bracket = _bracket(value)
    if bracket == 1:
        return (1, 0)
    if bracket in (4, 5):
        return (bracket, repr(value))
    return (bracket, value)


def _same(value: Any, target: Any) -> bool:
    """Equality of two BSON values (``1 == 1.0``, but ``1 != True``)."""
    if value is _MISSING:
        return False
    return _bracket(value) == _bracket(target) and value == target


def _equals(value: Any, target: Any) -> bool:
    """``{field: target}``: null also matches a missing field; an array matches when it
    equals ``target`` or holds it."""
    if target is None and value is _MISSING:
        return True
    if isinstance(value, list) and not isinstance(target, list):
        return any(_same(v, target) for v in value)
    return _same(value, target)


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$lt": operator.lt,
    "$lte": operator.le,
    "$gt": operator.gt,
    "$gte": operator.ge,
}


def _operator(value: Any, name: str, argument: Any) -> bool:
    if name == "$in":
        return any(_equals(value, a) for a in argument)
    if name == "$nin":
        return not any(_equals(value, a) for a in argument)
    if name == "$ne":
        return not _equals(value, argument)
    if name == "$eq":
        return _equals(value, argument)
    if name == "$exists":
        return (value is not _MISSING) == bool(argument)
    if name in _ORDER:
        candidates = value if isinstance(value, list) else [value]
        return any(
            _bracket(c) == _bracket(argument) and _ORDER[name](_sort_key(c), _sort_key(argument))
            for c in candidates
        )
    raise NotImplementedError(f"the fakes do not know the operator {name}")


def _matches(document: dict[str, Any], query: dict[str, Any]) -> bool:
    for key, condition in query.items():
        if key == "$or":
            if not any(_matches(document, q) for q in condition):
                return False
        elif key == "$and":
            if not all(_matches(document, q) for q in condition):
                return False
        elif isinstance(condition, dict) and condition and all(k[0] == "$" for k in condition):
            value = _get(document, key)
            if not all(_operator(value, name, arg) for name, arg in condition.items()):
                return False
        elif not _equals(_get(document, key), condition):
            return False
    return True


def _sorted(documents: list[dict[str, Any]], spec: Sequence[tuple[str, int]]) -> list:
    """Sorted on ``spec`` (field, 1 or -1); ties keep insertion (natural) order."""
    result = list(documents)
    for path, direction in reversed(spec):
        result.sort(key=lambda d, p=path: _sort_key(_get(d, p)), reverse=direction < 0)
    return result


def _window(documents: list, skip: int = 0, limit: int = 0) -> list:
    """A cursor's ``skip`` and ``limit`` (0 = no limit, a negative one counts as positive)."""
    documents = documents[skip:]
    return documents[: abs(limit)] if limit else documents


@dataclass(frozen=True)
class _Unique:
    fields: tuple[str, ...]
    sparse: bool = False
    name: str = ""


class _Collection:
    """Documents by ``_id`` in insertion order, with unique indexes and the update
    operators the adapters use ($set, $unset, $inc, $pull)."""

    def __init__(self, name: str, *unique: _Unique):
        self.name = name
        self.unique = (_Unique(("_id",), name="_id_"), *unique)
        self.documents: dict[Any, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def _check_unique(self, document: dict[str, Any], replacing: Any = _MISSING) -> None:
        for index in self.unique:
            values = [_get(document, f) for f in index.fields]
            if index.sparse and all(v is _MISSING for v in values):
                continue
            key = [_sort_key(v) for v in values]
            for other_id, other in self.documents.items():
                if other_id is replacing or other_id == replacing:
                    continue
                others = [_get(other, f) for f in index.fields]
                if index.sparse and all(v is _MISSING for v in others):
                    continue
                if [_sort_key(v) for v in others] == key:
                    duplicate = dict(zip(index.fields, values, strict=True))
                    raise DuplicateKeyError(
                        f"E11000 duplicate key error collection: {self.name}"
                        f" index: {index.name} dup key: {duplicate}",
                        11000,
                    )

    def insert(self, document: dict[str, Any]) -> None:
        document = _bson(document)
        if "_id" not in document:
            document = {"_id": f"fake-oid-{next(self._ids):08d}", **document}
        self._check_unique(document)
        self.documents[document["_id"]] = document

    def find(
        self,
        query: dict[str, Any] | None = None,
        sort: Sequence[tuple[str, int]] = (),
        skip: int = 0,
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        """Stored documents themselves (not copies): callers convert them to records."""
        found = [d for d in self.documents.values() if _matches(d, query or {})]
        return _window(_sorted(found, sort), skip, limit)

    def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        found = self.find(query, limit=1)
        return found[0] if found else None

    def update(
        self,
        query: dict[str, Any],
        update: dict[str, dict[str, Any]],
        *,
        many: bool = False,
        upsert: bool = False,
    ) -> tuple[int, int]:
        """(matched, modified), as ``update_one``/``update_many`` report them."""
        targets = self.find(query, limit=0 if many else 1)
        if not targets and upsert:
            created = {k: v for k, v in query.items() if not k.startswith("$")}
            created = _bson(created)
            self._apply(created, update)
            self.insert(created)
            return 0, 0
        modified = 0
        for document in targets:
            changed = copy.deepcopy(document)
            self._apply(changed, update)
            if changed != document:
                self._check_unique(changed, replacing=document["_id"])
                self.documents[document["_id"]] = changed
                modified += 1
        return len(targets), modified

    @staticmethod
    def _apply(document: dict[str, Any], update: dict[str, dict[str, Any]]) -> None:
        for name, fields in update.items():
            for path, value in fields.items():
                if name == "$set":
                    _set(document, path, _bson(value))
                elif name == "$unset":
                    _unset(document, path)
                elif name == "$inc":
                    current = _get(document, path)
                    _set(document, path, (0 if current is _MISSING else current) + value)
                elif name == "$pull":
                    current = _get(document, path)
                    if isinstance(current, list):
                        _set(document, path, [v for v in current if not _same(v, _bson(value))])
                else:
                    raise NotImplementedError(f"the fakes do not know the update {name}")

    def find_one_and_update(
        self, query: dict[str, Any], update: dict[str, dict[str, Any]]
    ) -> dict[str, Any] | None:
        """The document after the update (``ReturnDocument.AFTER``), or None."""
        document = self.find_one(query)
        if document is None:
            return None
        self.update({"_id": document["_id"]}, update)
        return self.documents[document["_id"]]

    def replace(self, query: dict[str, Any], replacement: dict[str, Any]) -> None:
        """``replace_one(query, replacement, upsert=True)`` on an ``_id`` query."""
        document = self.find_one(query)
        if document is None:
            self.insert({"_id": query["_id"], **replacement})
            return
        replaced = _bson({"_id": document["_id"], **replacement})
        self._check_unique(replaced, replacing=document["_id"])
        self.documents[document["_id"]] = replaced

    def delete(self, query: dict[str, Any]) -> None:
        """``delete_one``."""
        document = self.find_one(query)
        if document is not None:
            del self.documents[document["_id"]]


# -- repositories -----------------------------------------------------------------------
class FakeFrameRepository:
    """``calib_infra.repositories.FrameRepository`` in memory (the ``frames`` collection)."""

    def __init__(self) -> None:
        self.collection = _Collection(
            "frames", _Unique(("observatory_id", "sha256"), name="unique_file")
        )

    def _frames(self, query: dict[str, Any], sort: Sequence[tuple[str, int]] = ()) -> list:
        return [_record(d, Frame) for d in self.collection.find(query, sort)]

    async def insert(self, frame: Frame) -> bool:
        try:
            self.collection.insert(_document(frame))
        except DuplicateKeyError:
            return False
        return True

    async def insert_many(self, frames: Sequence[Frame]) -> list[bool]:
        return [await self.insert(f) for f in frames]

    async def get(self, frame_id: str) -> Frame | None:
        document = self.collection.find_one({"_id": frame_id})
        return _record(document, Frame) if document else None

    async def by_file(self, observatory_id: str, sha256: str) -> Frame | None:
        document = self.collection.find_one({"observatory_id": observatory_id, "sha256": sha256})
        return _record(document, Frame) if document else None

    async def many(self, frame_ids: Sequence[str]) -> list[Frame]:
        found = {d["_id"]: d for d in self.collection.find({"_id": {"$in": list(frame_ids)}})}
        return [_record(found[i], Frame) for i in frame_ids if i in found]

    async def same_hardware(self, frame: Frame) -> list[Frame]:
        query: dict[str, Any] = {
            "observatory_id": frame.observatory_id,
            "is_master": False,
            "frame_type": frame.frame_type.value,
            "camera_name": frame.camera_name,
            "gain": frame.gain,
            "offset": frame.offset,
            "binning": frame.binning,
            "readout_mode": frame.readout_mode,
        }
        if frame.frame_type == FrameType.FLAT:
            query["filter"] = frame.filter
        return self._frames(_bson(query))

    async def unclaimed_calibration_frames(self, observatory_id: str) -> list[Frame]:
        return self._frames(
            {
                "observatory_id": observatory_id,
                "is_master": False,
                "master_id": None,
                "frame_type": {"$in": CALIBRATION_TYPE_VALUES},
            }
        )

    async def calibration_frames(self, observatory_id: str, **filters: Any) -> list[Frame]:
        query = {
            "observatory_id": observatory_id,
            "is_master": False,
            "frame_type": {"$in": CALIBRATION_TYPE_VALUES},
            **filters,
        }
        return self._frames(_bson(query))

    async def current_masters(
        self, observatory_id: str, frame_type: FrameType | None = None
    ) -> list[Frame]:
        query: dict[str, Any] = {
            "observatory_id": observatory_id,
            "is_master": True,
            "status": {"$in": [s.value for s in CURRENT_MASTER_STATUSES]},
        }
        if frame_type is not None:
            query["frame_type"] = frame_type.value
        found = self.collection.find(query, [("created_at", -1)])
        return [_record(d, Frame) for d in found if not d.get("deleting")]

    async def claim(self, frame_ids: Sequence[str], master_id: str) -> None:
        self.collection.update(
            {"_id": {"$in": list(frame_ids)}, "is_master": False},
            {"$set": {"master_id": master_id}},
            many=True,
        )

    async def release(self, master_id: str) -> None:
        self.collection.update(
            _bson({"master_id": master_id}), {"$set": {"master_id": None}}, many=True
        )

    async def hold(self, reasons: dict[str, str]) -> None:
        for frame_id, reason in reasons.items():
            self.collection.update(
                {"_id": frame_id, "is_master": False},
                {"$set": {"held": True, "held_reason": reason}},
            )

    async def hold_claimed(self, master_id: str, reason: str) -> None:
        self.collection.update(
            {"master_id": master_id, "is_master": False},
            {"$set": {"master_id": None, "held": True, "held_reason": reason}},
            many=True,
        )

    async def unhold(self, frame_ids: Sequence[str]) -> None:
        self.collection.update(
            {"_id": {"$in": list(frame_ids)}, "is_master": False},
            {"$set": {"held": False, "held_reason": None}},
            many=True,
        )

    async def update(self, frame_id: str, changes: dict[str, Any]) -> None:
        self.collection.update({"_id": frame_id}, {"$set": changes})

    async def components(self, master: Frame) -> list[Frame]:
        return await self.many(master.components or [])

    async def library_page(
        self,
        observatory_id: str,
        filters: dict[str, Any],
        *,
        contains: dict[str, str] | None = None,
        skip: int,
        limit: int,
    ) -> tuple[list[Frame], int]:
        query = _bson({"observatory_id": observatory_id, **filters})
        if query.get("held") is False:
            query["held"] = {"$in": [False, None]}
        found = [
            d
            for d in self.collection.find(query, [("registered_at", -1), ("_id", -1)])
            if all(
                isinstance(d.get(field), str) and text.casefold() in d[field].casefold()
                for field, text in (contains or {}).items()
            )
        ]
        return [_record(d, Frame) for d in _window(found, skip, limit)], len(found)

    async def recent_lights(self, observatory_id: str, since: datetime) -> list[Frame]:
        since = _bson(since)
        return self._frames(
            {
                "observatory_id": observatory_id,
                "frame_type": FrameType.LIGHT.value,
                "is_master": False,
                "$or": [
                    {"captured_at": {"$gte": since}},
                    {"captured_at": None, "registered_at": {"$gte": since}},
                ],
            }
        )

    async def tally(self, observatory_id: str) -> list[dict[str, Any]]:
        counts: dict[tuple, int] = {}
        groups: dict[tuple, dict[str, Any]] = {}
        for d in self.collection.find({"observatory_id": observatory_id}):
            master_id = d.get("master_id")
            group = {
                "camera_name": d.get("camera_name"),
                "frame_type": d.get("frame_type"),
                "is_master": d.get("is_master"),
                "status": d.get("status"),
                # {"$cond": [{"$ifNull": ["$master_id", False]}, True, False]}: aggregation
                # truth, where only null, false and 0 are false ("" is true)
                "claimed": master_id not in (None, False, 0),
            }
            key = tuple(_sort_key(v) for v in group.values())
            groups.setdefault(key, group)
            counts[key] = counts.get(key, 0) + 1
        return [{**copy.deepcopy(groups[k]), "count": n} for k, n in counts.items()]

    async def delete(self, frame_id: str) -> None:
        self.collection.delete({"_id": frame_id})

    async def masters(self, observatory_id: str) -> list[Frame]:
        return self._frames({"observatory_id": observatory_id, "is_master": True})

    async def supersede(self, master_id: str, by: str, at: datetime) -> bool:
        _, modified = self.collection.update(
            {"_id": master_id, "status": {"$in": [s.value for s in CURRENT_MASTER_STATUSES]}},
            {
                "$set": {
                    "status": MasterStatus.SUPERSEDED.value,
                    "superseded_by": by,
                    "superseded_at": at,
                }
            },
        )
        return modified == 1

    async def superseded_by(self, master_id: str) -> list[Frame]:
        return self._frames({"superseded_by": master_id, "is_master": True})

    async def expire(self, master_id: str) -> bool:
        _, modified = self.collection.update(
            {"_id": master_id, "status": MasterStatus.ACTIVE.value},
            {"$set": {"status": MasterStatus.EXPIRED.value}},
        )
        return modified == 1

    async def mark_deleting(self, frame_id: str) -> None:
        self.collection.update({"_id": frame_id}, {"$set": {"deleting": True}})

    async def pending_deletions(self, observatory_id: str | None = None) -> list[Frame]:
        query: dict[str, Any] = {"deleting": True}
        if observatory_id is not None:
            query["observatory_id"] = observatory_id
        return self._frames(query)

    async def remove_component(self, frame_id: str) -> None:
        self.collection.update(
            {"components": frame_id}, {"$pull": {"components": frame_id}}, many=True
        )

    async def referenced_keys(
        self, keys: Sequence[str], *, except_id: str | None = None
    ) -> set[str]:
        query: dict[str, Any] = {
            "$or": [{"storage_key": {"$in": list(keys)}}, {"preview_key": {"$in": list(keys)}}]
        }
        if except_id is not None:
            query["_id"] = {"$ne": except_id}
        wanted = set(keys)
        found: set[str] = set()
        for d in self.collection.find(query):
            found |= {d.get("storage_key"), d.get("preview_key")} & wanted
        return found


def _open_key(job: StackJob) -> str:
    key = f"{job.observatory_id}:{job.config_key}"
    return f"{key}#{job.cluster_slot}" if job.cluster_slot else key


class FakeJobRepository:
    """``calib_infra.repositories.JobRepository`` in memory: at most one open job per
    configuration (a unique, sparse ``open_key`` that closing a job removes)."""

    def __init__(self) -> None:
        self.collection = _Collection(
            "jobs", _Unique(("open_key",), sparse=True, name="one_open_job_per_group")
        )

    def _job(self, document: dict[str, Any] | None) -> StackJob | None:
        return _record(document, StackJob) if document else None

    async def create(self, job: StackJob) -> StackJob | None:
        document = _document(job)
        document["open_key"] = _open_key(job)
        try:
            self.collection.insert(document)
        except DuplicateKeyError:
            return None
        return job  # as the adapter does: the very struct it was given

    async def get(self, job_id: str) -> StackJob | None:
        return self._job(self.collection.find_one({"_id": job_id}))

    async def open_job_for(self, observatory_id: str, config_key: str) -> StackJob | None:
        return self._job(self.collection.find_one({"open_key": f"{observatory_id}:{config_key}"}))

    async def last_failed(self, observatory_id: str, config_key: str) -> StackJob | None:
        latest = self.collection.find(
            {"observatory_id": observatory_id, "config_key": config_key},
            [("created_at", -1)],
            limit=1,
        )
        job = self._job(latest[0]) if latest else None
        return job if job is not None and job.status == JobStatus.FAILED else None

    async def configurations_with_open_jobs(
        self, observatory_id: str, config_keys: Sequence[str]
    ) -> set[str]:
        wanted = {f"{observatory_id}:{key}": key for key in config_keys}
        found = self.collection.find({"open_key": {"$in": list(wanted)}})
        return {wanted[d["open_key"]] for d in found}

    async def claim(
        self, job_id: str, worker: str, now: datetime, *, stale_before: datetime | None = None
    ) -> StackJob | None:
        running: dict[str, Any] = {"status": JobStatus.RUNNING.value}
        if stale_before is not None:
            running["updated_at"] = {"$lt": _bson(stale_before)}
        document = self.collection.find_one_and_update(
            {"_id": job_id, "$or": [{"status": JobStatus.QUEUED.value}, running]},
            {
                "$set": {
                    "status": JobStatus.RUNNING.value,
                    "worker": worker,
                    "started_at": now,
                    "updated_at": now,
                    "progress": 0.0,
                },
                "$inc": {"attempts": 1},
            },
        )
        return self._job(document)

    async def touch(self, job_id: str, worker: str, now: datetime) -> bool:
        matched, _ = self.collection.update(
            {"_id": job_id, "status": JobStatus.RUNNING.value, "worker": worker},
            {"$set": {"updated_at": now}},
        )
        return matched == 1

    async def give_back(self, job_id: str, worker: str, now: datetime) -> bool:
        matched, _ = self.collection.update(
            {"_id": job_id, "status": JobStatus.RUNNING.value, "worker": worker},
            {
                "$set": {
                    "status": JobStatus.QUEUED.value,
                    "worker": None,
                    "progress": 0.0,
                    "updated_at": now,
                }
            },
        )
        return matched == 1

    async def set_progress(self, job_id: str, progress: float, now: datetime) -> None:
        self.collection.update(
            {"_id": job_id, "status": JobStatus.RUNNING.value},
            {"$set": {"progress": progress, "updated_at": now}},
        )

    async def finish(
        self,
        job_id: str,
        status: JobStatus,
        now: datetime,
        *,
        master_id: str | None = None,
        error: str | None = None,
    ) -> None:
        changes: dict[str, Any] = {"status": status.value, "updated_at": now, "finished_at": now}
        if status == JobStatus.SUCCEEDED:
            changes["progress"] = 1.0
        if master_id is not None:
            changes["master_id"] = master_id
        if error is not None:
            changes["error"] = error
        self.collection.update({"_id": job_id}, {"$set": changes, "$unset": {"open_key": ""}})

    async def defer(self, job_id: str, reason: str, now: datetime) -> None:
        self.collection.update(
            {"_id": job_id},
            {
                "$set": {
                    "status": JobStatus.DEFERRED.value,
                    "deferred_reason": reason,
                    "updated_at": now,
                }
            },
        )

    async def requeue(
        self,
        job_id: str,
        now: datetime,
        *,
        from_statuses: Sequence[JobStatus],
        frame_ids: Sequence[str] | None = None,
        trigger: str | None = None,
    ) -> StackJob | None:
        job = await self.get(job_id)
        if job is None or job.status not in from_statuses:
            return None
        changes: dict[str, Any] = {
            "status": JobStatus.QUEUED.value,
            "updated_at": now,
            "error": None,
            "deferred_reason": None,
            "progress": 0.0,
            "open_key": _open_key(job),
        }
        if frame_ids is not None:
            changes["frame_ids"] = list(frame_ids)
        if trigger is not None:
            changes["trigger"] = trigger
        try:
            document = self.collection.find_one_and_update(
                {"_id": job_id, "status": {"$in": [s.value for s in from_statuses]}},
                {"$set": changes},
            )
        except DuplicateKeyError:
            return None
        return self._job(document)

    async def list(
        self, observatory_id: str, status: str | None = None, limit: int = 200
    ) -> list[StackJob]:
        query: dict[str, Any] = {"observatory_id": observatory_id}
        if status is not None:
            query["status"] = status
        found = self.collection.find(_bson(query), [("created_at", -1)], limit=limit)
        return [_record(d, StackJob) for d in found]

    async def deferred(self, observatory_id: str | None = None) -> list[StackJob]:
        query: dict[str, Any] = {"status": JobStatus.DEFERRED.value}
        if observatory_id is not None:
            query["observatory_id"] = observatory_id
        return [_record(d, StackJob) for d in self.collection.find(query)]

    async def open_jobs(self, observatory_id: str) -> list[StackJob]:
        query = {
            "observatory_id": observatory_id,
            "status": {"$in": [s.value for s in OPEN_JOB_STATUSES]},
        }
        return [_record(d, StackJob) for d in self.collection.find(query)]

    async def delete(self, job_id: str) -> None:
        self.collection.delete({"_id": job_id})


class FakeSettingsRepository:
    """Settings by observatory; stored values over the defaults, as ``settings_from_document``
    reads them (unknown fields ignored, a stored value out of range refused)."""

    def __init__(self) -> None:
        self.collection = _Collection("settings")

    async def get(self, observatory_id: str) -> CalibrationSettings:
        document = self.collection.find_one({"_id": observatory_id})
        return settings_from_document(_without_id(document) if document else None)

    async def put(self, observatory_id: str, settings: CalibrationSettings) -> None:
        self.collection.replace({"_id": observatory_id}, _document(settings))


class FakeObservatoryRepository:
    def __init__(self) -> None:
        self.collection = _Collection("observatories")

    async def create(self, observatory: Observatory) -> bool:
        try:
            self.collection.insert(_document(observatory))
        except DuplicateKeyError:
            return False
        return True

    async def get(self, observatory_id: str) -> Observatory | None:
        document = self.collection.find_one({"_id": observatory_id})
        return _record(document, Observatory) if document else None

    async def existing(self, observatory_ids: Sequence[str]) -> set[str]:
        found = self.collection.find({"_id": {"$in": list(set(observatory_ids))}})
        return {d["_id"] for d in found}

    async def all(self) -> list[Observatory]:
        return [_record(d, Observatory) for d in self.collection.find({}, [("_id", 1)])]


class FakeRejectionRepository:
    """Rejections, unique by ``event_id``."""

    def __init__(self) -> None:
        self.collection = _Collection("rejections", _Unique(("event_id",), name="unique_event"))

    async def record(self, rejection: Rejection) -> bool:
        try:
            self.collection.insert(_document(rejection))
        except DuplicateKeyError:
            return False
        return True

    async def list(self, observatory_id: str, limit: int = 200) -> list[Rejection]:
        found = self.collection.find(
            {"observatory_id": observatory_id}, [("rejected_at", -1)], limit=limit
        )
        return [_record(_without_id(d), Rejection) for d in found]


class FakeDeadLetterRepository:
    """Messages a consumer failed to handle, by their id (``dead_letters``)."""

    def __init__(self) -> None:
        self.collection = _Collection("dead_letters")

    async def count_failure(self, letter: DeadLetter) -> int:
        if self.collection.find_one({"_id": letter.id}) is None:
            self.collection.insert(_document(letter))
        else:
            self.collection.update(
                {"_id": letter.id},
                {
                    "$inc": {"attempts": 1},
                    "$set": {"error": letter.error, "last_seen": letter.last_seen},
                },
            )
        return self.collection.find_one({"_id": letter.id})["attempts"]

    async def bury(self, letter_id: str, now: datetime) -> None:
        self.collection.update({"_id": letter_id}, {"$set": {"status": DeadLetterStatus.DEAD}})

    async def record(self, letter: DeadLetter) -> None:
        document = _document(letter)
        self.collection.replace({"_id": letter.id}, _without_id(document))

    async def forget(self, letter_ids: Sequence[str]) -> None:
        query = {"_id": {"$in": list(letter_ids)}, "status": DeadLetterStatus.RETRYING.value}
        for document in list(self.collection.find(query)):
            self.collection.delete({"_id": document["_id"]})

    async def get(self, letter_id: str) -> DeadLetter | None:
        document = self.collection.find_one({"_id": letter_id})
        return _record(document, DeadLetter) if document else None

    async def list(
        self, statuses: Sequence[DeadLetterStatus], limit: int = 200
    ) -> list[DeadLetter]:
        query = {"status": {"$in": [s.value for s in statuses]}}
        found = self.collection.find(query, [("last_seen", -1)], limit=limit)
        return [_record(d, DeadLetter) for d in found]

    async def count(self, statuses: Sequence[DeadLetterStatus]) -> int:
        return len(self.collection.find({"status": {"$in": [s.value for s in statuses]}}))

    async def replayed(self, letter_id: str, msg_id: str, now: datetime) -> DeadLetter | None:
        document = self.collection.find_one_and_update(
            {"_id": letter_id, "status": {"$in": [s.value for s in DEAD_STATUSES]}},
            {
                "$set": {
                    "status": DeadLetterStatus.REPLAYED,
                    "replayed_at": now,
                    "replay_msg_id": msg_id,
                },
                "$inc": {"replays": 1},
            },
        )
        return _record(document, DeadLetter) if document else None


class FakeAccountRepository:
    """Users and tokens (the ``users`` and ``tokens`` collections), a token's hash unique."""

    def __init__(self) -> None:
        self.user_documents = _Collection("users")
        self.token_documents = _Collection("tokens", _Unique(("hash",), name="unique_hash"))

    async def save_user(self, user: User) -> None:
        document = _document(user)
        if self.user_documents.find_one({"_id": user.id}) is None:
            self.user_documents.insert(document)
            return
        changes = {k: v for k, v in document.items() if k not in ("_id", "created_at")}
        self.user_documents.update({"_id": user.id}, {"$set": changes})

    async def user(self, user_id: str) -> User | None:
        document = self.user_documents.find_one({"_id": user_id})
        return _record(document, User) if document else None

    async def users(self) -> list[User]:
        return [_record(d, User) for d in self.user_documents.find({}, [("_id", 1)])]

    async def add_token(self, token: ApiToken) -> str:
        if self.token_documents.find_one({"hash": token.hash}) is None:
            self.token_documents.insert(_document(token))
        return self.token_documents.find_one({"hash": token.hash})["_id"]

    async def live_token(self, token_hash: str) -> ApiToken | None:
        document = self.token_documents.find_one({"hash": token_hash, "revoked": False})
        return _record(document, ApiToken) if document else None

    async def live_token_ids(self) -> dict[str, list[str]]:
        live: dict[str, list[str]] = {}
        for token in self.token_documents.find({"revoked": False, "user_id": {"$ne": None}}):
            live.setdefault(token["user_id"], []).append(token["_id"])
        return live

    async def live_among(self, token_ids: Sequence[str]) -> set[str]:
        query = {"_id": {"$in": list(token_ids)}, "revoked": False}
        return {d["_id"] for d in self.token_documents.find(query)}

    async def revoke(self, token_id: str) -> bool:
        matched, _ = self.token_documents.update({"_id": token_id}, {"$set": {"revoked": True}})
        return matched == 1

    async def reinstate(self, token_hash: str) -> None:
        self.token_documents.update({"hash": token_hash}, {"$set": {"revoked": False}})


class FakeHeartbeatRepository:
    def __init__(self) -> None:
        self.collection = _Collection("heartbeats")

    async def beat(self, service: str, instance: str, now: datetime) -> None:
        self.collection.update(
            {"_id": f"{service}:{instance}"},
            {"$set": {"service": service, "instance": instance, "at": now}},
            upsert=True,
        )

    async def all(self) -> list[dict[str, Any]]:
        return [_without_id(d) for d in self.collection.find({}, [("service", 1)])]


class FakeCalibrationCacheRepository:
    """Calibrated-light cache entries by light id. ``put`` replaces the whole entry (a
    ``deleting`` mark included); ``delete`` removes it only while it names that key."""

    def __init__(self) -> None:
        self.collection = _Collection("calibrated")

    async def get(self, light_id: str) -> CacheEntry | None:
        document = self.collection.find_one({"_id": light_id})
        return _record(document, CacheEntry) if document else None

    async def many(self, light_ids: Sequence[str]) -> dict[str, CacheEntry]:
        found = self.collection.find({"_id": {"$in": list(light_ids)}})
        return {d["_id"]: _record(d, CacheEntry) for d in found}

    async def put(self, entry: CacheEntry) -> None:
        self.collection.replace({"_id": entry.id}, _document(entry))

    async def entries(self, observatory_id: str | None = None) -> list[CacheEntry]:
        query = {} if observatory_id is None else {"observatory_id": observatory_id}
        return [_record(d, CacheEntry) for d in self.collection.find(query)]

    async def mark_deleting(self, light_id: str) -> None:
        self.collection.update({"_id": light_id}, {"$set": {"deleting": True}})

    async def pending_deletions(self, observatory_id: str | None = None) -> list[CacheEntry]:
        query: dict[str, Any] = {"deleting": True}
        if observatory_id is not None:
            query["observatory_id"] = observatory_id
        return [_record(d, CacheEntry) for d in self.collection.find(query)]

    async def delete(self, light_id: str, storage_key: str | None) -> None:
        self.collection.delete({"_id": light_id, "storage_key": storage_key})

    async def referenced_keys(self, keys: Sequence[str]) -> set[str]:
        found = self.collection.find({"storage_key": {"$in": list(keys)}})
        return {d["storage_key"] for d in found}


class FakeMaintenanceRunRepository:
    def __init__(self) -> None:
        self.collection = _Collection("maintenance_runs")

    async def last_run(self, task: str) -> datetime | None:
        document = self.collection.find_one({"_id": task})
        return document["finished_at"] if document else None

    async def record(self, task: str, finished_at: datetime, report: dict[str, Any]) -> None:
        self.collection.replace({"_id": task}, {"finished_at": finished_at, "report": report})


class FakePendingUploadRepository:
    """Presigned uploads handed out, by storage key (``_id``)."""

    def __init__(self) -> None:
        self.collection = _Collection("pending_uploads")

    async def add(self, upload: PendingUpload) -> None:
        self.collection.insert({"_id": upload.storage_key, **_document(upload)})

    async def get(self, storage_key: str) -> PendingUpload | None:
        document = self.collection.find_one({"_id": storage_key})
        return _record(document, PendingUpload) if document else None

    async def referenced_keys(self, keys: Sequence[str], *, expiring_from: datetime) -> set[str]:
        # the time as MongoDB compares it: cut to the millisecond, as BSON encodes it
        query = {"_id": {"$in": list(keys)}, "expires_at": {"$gte": _bson(expiring_from)}}
        return {d["_id"] for d in self.collection.find(query)}

    async def remove_expired(self, before: datetime, observatory_id: str | None = None) -> int:
        query: dict[str, Any] = {"expires_at": {"$lt": _bson(before)}}
        if observatory_id is not None:
            query["observatory_id"] = observatory_id
        expired = [d["_id"] for d in self.collection.find(query)]
        for storage_key in expired:
            self.collection.delete({"_id": storage_key})
        return len(expired)


class FakeEventBacklog:
    """The ``frame.registered`` events the registry has not handled: ``unhandled`` (subject,
    body) as the stream holds them; ``readable`` False is a bus that cannot be read."""

    def __init__(self) -> None:
        self.unhandled: list[tuple[str, bytes]] = []
        self.readable = True

    def announce(self, observatory_id: str, storage_key: str) -> None:
        """A plugin's ``frame.registered`` for ``storage_key``, not handled yet."""
        body = {"event_id": storage_key, "observatory_id": observatory_id}
        self.unhandled.append(
            (
                events.subject(events.FRAME_REGISTERED, observatory_id),
                msgspec.json.encode({**body, "storage_key": storage_key}),
            )
        )

    async def unhandled_storage_keys(self, observatory_id: str | None) -> set[str] | None:
        if not self.readable:
            return None
        pattern = f"{events.FRAME_REGISTERED}.{observatory_id or '*'}"
        keys = set()
        for subject, body in self.unhandled:
            if fnmatchcase(subject, pattern):
                with contextlib.suppress(msgspec.DecodeError, AttributeError):
                    keys.add(msgspec.json.decode(body).get("storage_key"))
        return {key for key in keys if isinstance(key, str) and key}


# -- the clock and the log ----------------------------------------------------------------
class FakeClock:
    """UTC now, where a test says it is."""

    def __init__(self, now: datetime = DEFAULT_NOW):
        self._now = self._checked(now)

    @staticmethod
    def _checked(at: datetime) -> datetime:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"the clock keeps UTC-aware times, not {at!r}")
        return at.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, at: datetime) -> datetime:
        self._now = self._checked(at)
        return self._now

    def advance(self, by: timedelta | float = 0.0, **units: float) -> datetime:
        """Move forward ``by`` (a timedelta or seconds) plus ``timedelta(**units)``."""
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        self._now += step + timedelta(**units)
        return self._now


@dataclass(frozen=True)
class LogRecord:
    level: str  # "debug", "info", "warning", "error" or "exception"
    event: str
    fields: dict[str, Any]
    exception: BaseException | None = None


class FakeLog:
    """A structlog-like logger that keeps what it is told; ``bind`` shares the records."""

    def __init__(
        self, records: list[LogRecord] | None = None, context: dict[str, Any] | None = None
    ):
        self.records: list[LogRecord] = [] if records is None else records
        self.context: dict[str, Any] = dict(context or {})

    def bind(self, **fields: Any) -> FakeLog:
        return FakeLog(self.records, {**self.context, **fields})

    def _log(self, level: str, event: str, fields: dict[str, Any], error=None) -> None:
        self.records.append(LogRecord(level, event, {**self.context, **fields}, error))

    def debug(self, event: str, **fields: Any) -> None:
        self._log("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._log("exception", event, fields, sys.exc_info()[1])

    def events(self, level: str | None = None) -> list[str]:
        return [r.event for r in self.records if level is None or r.level == level]

    def find(self, event: str, level: str | None = None) -> list[LogRecord]:
        return [r for r in self.records if r.event == event and (level is None or r.level == level)]


# -- the bucket, the file cache, the bus ----------------------------------------------------
@dataclass(frozen=True)
class StoredObject:
    data: bytes
    content_type: str
    modified: datetime


class FakeObjectStore:
    """The S3 bucket: bytes by key, each with its content type and time of writing (the
    clock's now), listed in key order as S3 lists them."""

    CHUNK = 1024 * 1024

    def __init__(self, clock: FakeClock | None = None):
        self.clock = clock or FakeClock()
        self.objects: dict[str, StoredObject] = {}
        self.signed: list[tuple[str, timedelta]] = []

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = StoredObject(bytes(data), content_type, self.clock.now())

    def data(self, key: str) -> bytes:
        """An object's bytes; raises :class:`ObjectMissingError`."""
        stored = self.objects.get(key)
        if stored is None:
            raise ObjectMissingError(key)
        return stored.data

    def __contains__(self, key: object) -> bool:
        return key in self.objects

    async def put_file(
        self, key: str, path: str | Path, content_type: str = "application/fits"
    ) -> None:
        self._put(key, Path(path).read_bytes(), content_type)  # noqa: ASYNC240 - test files

    async def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        self._put(key, data, content_type)

    async def put_stream(
        self, key: str, stream: IO[bytes], content_type: str = "application/fits"
    ) -> None:
        self._put(key, stream.read(), content_type)

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)  # S3 deletes of a missing key succeed

    async def read_chunks(self, key: str) -> AsyncIterator[bytes]:
        data = self.data(key)
        for start in range(0, len(data), self.CHUNK):
            yield data[start : start + self.CHUNK]

    async def read_range(self, key: str, offset: int, length: int) -> bytes:
        """``length`` 0 means to the end; a range starting at or past the end (of an empty
        object, say) holds nothing."""
        data = self.data(key)
        return data[offset : offset + length] if length else data[offset:]

    async def scan(self, key: str, head_bytes: int) -> ScannedObject:
        data = self.data(key)
        return ScannedObject(
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            head=data[: max(head_bytes, 0)],
        )

    async def stat(self, key: str) -> ObjectInfo | None:
        stored = self.objects.get(key)
        return None if stored is None else ObjectInfo(key, len(stored.data), stored.modified)

    async def list_batches(self, prefix: str, size: int) -> AsyncIterator[list[ObjectInfo]]:
        listing = (
            ObjectInfo(key, len(stored.data), stored.modified)
            for key, stored in sorted(self.objects.items())
            if key.startswith(prefix)
        )
        while batch := list(itertools.islice(listing, size)):
            yield batch

    async def presigned_put(self, key: str, expires: timedelta) -> str:
        """A fake URL naming the key and its lifetime; the signed keys are in ``signed``."""
        self.signed.append((key, expires))
        return f"https://s3.fake/bucket/{key}?X-Amz-Expires={int(expires.total_seconds())}"


@dataclass(frozen=True)
class Fetch:
    frame_id: str
    storage_key: str
    destination: Path
    role: str


class FakeFrameFiles:
    """The file cache without a cache: every fetch copies the object's bytes from the
    fake bucket (returns False) after checking them against the frame's sha256."""

    def __init__(self, store: FakeObjectStore):
        self.store = store
        self.fetches: list[Fetch] = []
        self.kept: list[str] = []  # sha256 of the files entered
        self.trims = 0

    @contextlib.contextmanager
    def workdir(self, prefix: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix=prefix) as folder:
            yield Path(folder)

    async def fetch_frame(self, frame: Frame, destination: Path, role: str) -> bool:
        try:
            data = self.store.data(frame.storage_key)
        except ObjectMissingError as error:
            raise UnusableFileError(
                f"{role} {frame.id} ({frame.storage_key}) is missing from storage"
            ) from error
        actual = hashlib.sha256(data).hexdigest()
        if actual != frame.sha256:
            changed = ChangedInStorageError(frame.storage_key, frame.sha256, actual)
            raise UnusableFileError(f"{role} {frame.id}: {changed}") from changed
        destination.write_bytes(data)  # noqa: ASYNC240 - small test files
        self.fetches.append(Fetch(frame.id, frame.storage_key, destination, role))
        return False

    async def keep(self, path: Path, sha256: str) -> None:
        self.kept.append(sha256)

    async def trim(self) -> None:
        self.trims += 1


@dataclass(frozen=True)
class Published:
    kind: str
    subject: str
    body: msgspec.Struct  # decoded afresh from ``data``: a copy of what was published
    observatory_id: str
    msg_id: str | None
    at: datetime
    data: bytes


class FakeEventPublisher:
    """The bus: persisted events in ``published`` (a repeat ``msg_id`` within the stream's
    duplicate window goes to ``duplicates`` instead, as JetStream drops it), transient ones
    in ``transient``. Subjects are made and checked as the real publisher makes them."""

    def __init__(
        self,
        clock: FakeClock | None = None,
        duplicate_window: timedelta = timedelta(seconds=wiring.STREAM.duplicate_window_s),
    ):
        self.clock = clock or FakeClock()
        self.duplicate_window = duplicate_window
        self.published: list[Published] = []
        self.duplicates: list[Published] = []
        self.transient: list[Published] = []
        self._first_seen: dict[str, datetime] = {}

    def _message(
        self, kind: str, body: msgspec.Struct, observatory_id: str, msg_id: str | None
    ) -> Published:
        subject = events.subject(kind, observatory_id)
        data = msgspec.json.encode(body)
        copied = msgspec.json.decode(data, type=type(body))
        return Published(kind, subject, copied, observatory_id, msg_id, self.clock.now(), data)

    async def publish(
        self, kind: str, body: msgspec.Struct, *, observatory_id: str, msg_id: str | None
    ) -> None:
        message = self._message(kind, body, observatory_id, msg_id)
        if not any(fnmatchcase(message.subject, s) for s in wiring.STREAM.subjects):
            raise ValueError(f"no stream takes subject {message.subject}")
        if msg_id:  # the real publisher sets Nats-Msg-Id only for a non-empty id
            first = self._first_seen.get(msg_id)
            if first is not None and message.at - first < self.duplicate_window:
                self.duplicates.append(message)
                return
            self._first_seen[msg_id] = message.at
        self.published.append(message)

    async def publish_transient(
        self, kind: str, body: msgspec.Struct, *, observatory_id: str
    ) -> None:
        self.transient.append(self._message(kind, body, observatory_id, None))

    def kinds(self) -> list[str]:
        return [m.kind for m in self.published]

    def bodies(self, kind: str) -> list[Any]:
        return [m.body for m in self.published if m.kind == kind]


# -- the lifecycle's numerics ----------------------------------------------------------------
@dataclass(frozen=True)
class CalibrationCall:
    inputs: dict[str, bytes]  # by role ("light", "bias", "dark", "flat"): the files' bytes
    dark_scale: float
    flat_scale: float
    cards: list[tuple[str, Any, str]]


class FakeLightCalibrator:
    """Writes ``calibrated:`` and the light's bytes as the calibrated file and keeps what it
    was given; an input whose bytes are in ``unreadable`` raises ``InvalidImageError``
    naming its local path, as the real numerics do."""

    def __init__(self) -> None:
        self.calls: list[CalibrationCall] = []
        self.unreadable: set[bytes] = set()

    async def calibrate(
        self,
        light: Path,
        output: Path,
        *,
        bias: Path | None,
        dark: Path | None,
        flat: Path | None,
        dark_scale: float,
        flat_scale: float,
        cards: Sequence[tuple[str, Any, str]],
    ) -> None:
        paths = {"light": light, "bias": bias, "dark": dark, "flat": flat}
        inputs = {role: path.read_bytes() for role, path in paths.items() if path is not None}
        for role, data in inputs.items():
            if data in self.unreadable:
                raise InvalidImageError(f"{paths[role]}: not a FITS file")
        self.calls.append(CalibrationCall(inputs, dark_scale, flat_scale, list(cards)))
        output.write_bytes(b"calibrated:" + inputs["light"])  # noqa: ASYNC240 - test files


class FakeMasterDescriber:
    """Describes a master by its size in bytes (``stats["median"]``) and a fake preview;
    bytes in ``unreadable`` raise ``InvalidImageError``."""

    def __init__(self) -> None:
        self.described: list[FrameType] = []
        self.unreadable: set[bytes] = set()

    async def describe(self, path: Path, frame_type: FrameType) -> MasterDescription:
        data = path.read_bytes()  # noqa: ASYNC240 - small test files
        if data in self.unreadable:
            raise InvalidImageError(f"{path}: not a FITS file")
        self.described.append(frame_type)
        return MasterDescription(
            stats={"median": float(len(data))}, preview_png=b"png of " + data[:16]
        )

    async def preview(self, path: Path) -> bytes:
        data = path.read_bytes()  # noqa: ASYNC240 - small test files
        if data in self.unreadable:
            raise InvalidImageError(f"{path}: not a FITS file")
        return b"png of " + data[:16]


# -- the lifecycle service -------------------------------------------------------------------
@dataclass(frozen=True)
class LifecycleRequest:
    subject: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Republished:
    subject: str
    body: bytes
    msg_id: str


class FakeMessageReplayer:
    """The bus, for replays: messages given back to the stream in ``published`` (a repeat
    ``msg_id`` in ``duplicates``, as JetStream drops it)."""

    def __init__(self) -> None:
        self.published: list[Republished] = []
        self.duplicates: list[Republished] = []
        self.down = False

    async def republish(self, subject: str, body: bytes, *, msg_id: str) -> None:
        if self.down:  # as the broker raises without a connection
            raise ConnectionClosedError
        if not any(fnmatchcase(subject, s) for s in wiring.STREAM.subjects):
            raise ValueError(f"no stream takes subject {subject}")
        message = Republished(subject, bytes(body), msg_id)
        if any(m.msg_id == msg_id for m in self.published):
            self.duplicates.append(message)
            return
        self.published.append(message)


class FakeLifecycleService:
    """The lifecycle service over request/reply, answered in-process by the use cases the
    real service binds (``calibrate(frame_id)``, ``maintain(task, observatory_id)``,
    ``preview(frame_id)`` when given); each report goes through JSON as a reply does.
    Requests are kept in ``requests``; while ``down`` is set each raises
    ``ServiceUnavailableError``, as when no replica answers."""

    def __init__(
        self,
        calibrate: Callable[[str], Awaitable[events.CalibrateReply]],
        maintain: Callable[[MaintenanceTask, str | None], Awaitable[msgspec.Struct]],
        preview: Callable[[str], Awaitable[events.PreviewReply]] | None = None,
    ):
        self._calibrate = calibrate
        self._maintain = maintain
        self._preview = preview
        self.requests: list[LifecycleRequest] = []
        self.down = False

    def _ask(self, subject: str, body: msgspec.Struct) -> None:
        self.requests.append(LifecycleRequest(subject, msgspec.to_builtins(body)))
        if self.down:
            raise ServiceUnavailableError("lifecycle", subject)

    async def calibrate(self, frame_id: str) -> events.CalibrateReply:
        self._ask(events.LIFECYCLE_CALIBRATE, events.CalibrateRequest(frame_id=frame_id))
        return await self._calibrate(frame_id)

    async def preview(self, frame_id: str) -> events.PreviewReply:
        self._ask(events.LIFECYCLE_PREVIEW, events.PreviewRequest(frame_id=frame_id))
        assert self._preview is not None, "this fake answers no previews"
        return await self._preview(frame_id)

    async def maintenance(
        self, task: MaintenanceTask, observatory_id: str | None, report_type: type[R]
    ) -> R:
        command = events.MaintenanceCommand(task=task.value, observatory_id=observatory_id)
        self._ask(events.LIFECYCLE_MAINTENANCE, command)
        report = await self._maintain(task, observatory_id)
        return msgspec.json.decode(msgspec.json.encode(report), type=report_type)


@dataclass
class FakeWorkMetrics:
    """What the use cases counted, in order."""

    registered: list[tuple[str, FrameType]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    jobs: list[tuple[str, float]] = field(default_factory=list)

    def frame_registered(self, observatory_id: str, frame_type: FrameType) -> None:
        self.registered.append((observatory_id, frame_type))

    def frame_rejected(self, reason: str) -> None:
        self.rejected.append(reason)

    def stack_job_finished(self, outcome: str, seconds: float) -> None:
        self.jobs.append((outcome, seconds))


# -- all of them at once --------------------------------------------------------------------
@dataclass
class FakeWorld:
    """One of each fake, named as on ``calib_infra.runtime.Runtime`` (``accounts``,
    ``pending_uploads`` and ``backlog`` as in ``calib_infra.compose``; ``replays`` is the
    bus as dead letters are replayed on it), sharing one clock."""

    clock: FakeClock = field(default_factory=FakeClock)
    frames: FakeFrameRepository = field(default_factory=FakeFrameRepository)
    jobs: FakeJobRepository = field(default_factory=FakeJobRepository)
    settings: FakeSettingsRepository = field(default_factory=FakeSettingsRepository)
    observatories: FakeObservatoryRepository = field(default_factory=FakeObservatoryRepository)
    rejections: FakeRejectionRepository = field(default_factory=FakeRejectionRepository)
    heartbeats: FakeHeartbeatRepository = field(default_factory=FakeHeartbeatRepository)
    cache: FakeCalibrationCacheRepository = field(default_factory=FakeCalibrationCacheRepository)
    maintenance_runs: FakeMaintenanceRunRepository = field(
        default_factory=FakeMaintenanceRunRepository
    )
    accounts: FakeAccountRepository = field(default_factory=FakeAccountRepository)
    pending_uploads: FakePendingUploadRepository = field(
        default_factory=FakePendingUploadRepository
    )
    backlog: FakeEventBacklog = field(default_factory=FakeEventBacklog)
    dead_letters: FakeDeadLetterRepository = field(default_factory=FakeDeadLetterRepository)
    replays: FakeMessageReplayer = field(default_factory=FakeMessageReplayer)
    log: FakeLog = field(default_factory=FakeLog)
    metrics: FakeWorkMetrics = field(default_factory=FakeWorkMetrics)
    store: FakeObjectStore = field(init=False)
    files: FakeFrameFiles = field(init=False)
    events: FakeEventPublisher = field(init=False)

    def __post_init__(self) -> None:
        self.store = FakeObjectStore(self.clock)
        self.files = FakeFrameFiles(self.store)
        self.events = FakeEventPublisher(self.clock)

    def now(self) -> datetime:
        return self.clock.now()
