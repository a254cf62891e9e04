"""Repositories: every MongoDB query the services make, in one place."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from calib_core.access import ApiToken, User
from calib_core.calibration import CacheEntry
from calib_core.deadletters import DEAD_STATUSES, DeadLetter, DeadLetterStatus
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
from calib_infra.mongo import from_document, to_document

DUPLICATE_KEY = 11000


def library_query(
    observatory_id: str, filters: dict[str, Any], contains: dict[str, str] | None = None
) -> dict[str, Any]:
    """The library's query: ``filters`` are equality conditions on plain values (the API
    never passes operators), ``contains`` case-insensitive substrings (matched as text,
    never as a pattern); records from before curation have no ``held`` field and count as
    not held."""
    query = {"observatory_id": observatory_id, **filters}
    if query.get("held") is False:
        query["held"] = {"$in": [False, None]}
    for field, text in (contains or {}).items():
        query[field] = {"$regex": re.escape(text), "$options": "i"}
    return query


#: Hardware fields ``same_hardware`` compares itself (see there).
_UNINDEXED_HARDWARE = ("gain", "offset", "binning", "readout_mode")


class FrameRepository:
    def __init__(self, db: AsyncDatabase):
        self.collection = db["frames"]

    async def insert(self, frame: Frame) -> bool:
        """Store a frame; False when the same file (observatory + sha256) is already stored."""
        try:
            await self.collection.insert_one(to_document(frame))
        except DuplicateKeyError:
            return False
        return True

    async def insert_many(self, frames: Sequence[Frame]) -> list[bool]:
        """Store frames in one round trip; per frame, False when its file was already stored."""
        if not frames:
            return []
        try:
            await self.collection.insert_many([to_document(f) for f in frames], ordered=False)
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            duplicates = {e["index"] for e in errors}
            return [i not in duplicates for i in range(len(frames))]
        return [True] * len(frames)

    async def get(self, frame_id: str) -> Frame | None:
        document = await self.collection.find_one({"_id": frame_id})
        return from_document(document, Frame) if document else None

    async def by_file(self, observatory_id: str, sha256: str) -> Frame | None:
        document = await self.collection.find_one(
            {"observatory_id": observatory_id, "sha256": sha256}
        )
        return from_document(document, Frame) if document else None

    async def many(self, frame_ids: Sequence[str]) -> list[Frame]:
        found = {
            d["_id"]: from_document(d, Frame)
            async for d in self.collection.find({"_id": {"$in": list(frame_ids)}})
        }
        return [found[i] for i in frame_ids if i in found]

    async def same_hardware(self, frame: Frame) -> list[Frame]:
        """Individual frames that can share a group with ``frame`` (settings-independent).

        The query names only the fields of the ``library_by_hardware`` index: the
        MongoDB-wire server of development and tests scans the whole collection for a
        query with any field its index lacks. The other hardware fields are compared here,
        on the documents, before any is decoded."""
        query: dict[str, Any] = {
            "observatory_id": frame.observatory_id,
            "is_master": False,
            "frame_type": frame.frame_type.value,
            "camera_name": frame.camera_name,
        }
        if frame.frame_type == FrameType.FLAT:
            query["filter"] = frame.filter
        wanted = {name: getattr(frame, name) for name in _UNINDEXED_HARDWARE}
        return [
            from_document(d, Frame)
            async for d in self.collection.find(query)
            if all(d.get(name) == value for name, value in wanted.items())
        ]

    async def unclaimed_calibration_frames(self, observatory_id: str) -> list[Frame]:
        query = {
            "observatory_id": observatory_id,
            "is_master": False,
            "master_id": None,
            "frame_type": {
                "$in": [FrameType.DARK.value, FrameType.FLAT.value, FrameType.BIAS.value]
            },
        }
        return [from_document(d, Frame) async for d in self.collection.find(query)]

    async def calibration_frames(self, observatory_id: str, **filters: Any) -> list[Frame]:
        query = {
            "observatory_id": observatory_id,
            "is_master": False,
            "frame_type": {
                "$in": [FrameType.DARK.value, FrameType.FLAT.value, FrameType.BIAS.value]
            },
            **filters,
        }
        return [from_document(d, Frame) async for d in self.collection.find(query)]

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
        cursor = self.collection.find(query).sort("created_at", DESCENDING)
        # masters being deleted are left out here: a "$ne" condition makes the
        # MongoDB-wire server scan the whole collection (2.5 s at 100,000 frames)
        return [from_document(d, Frame) async for d in cursor if not d.get("deleting")]

    async def claim(self, frame_ids: Sequence[str], master_id: str) -> None:
        await self.collection.update_many(
            {"_id": {"$in": list(frame_ids)}, "is_master": False},
            {"$set": {"master_id": master_id}},
        )

    async def release(self, master_id: str) -> None:
        """Frames claimed by ``master_id`` become unclaimed again."""
        await self.collection.update_many({"master_id": master_id}, {"$set": {"master_id": None}})

    async def hold(self, reasons: dict[str, str]) -> None:
        """Hold individual frames (by id), each with its reason: they stop being stacked."""
        for frame_id, reason in reasons.items():
            await self.collection.update_one(
                {"_id": frame_id, "is_master": False},
                {"$set": {"held": True, "held_reason": reason}},
            )

    async def hold_claimed(self, master_id: str, reason: str) -> None:
        """The frames claimed by ``master_id`` become unclaimed and held with ``reason``."""
        await self.collection.update_many(
            {"master_id": master_id, "is_master": False},
            {"$set": {"master_id": None, "held": True, "held_reason": reason}},
        )

    async def unhold(self, frame_ids: Sequence[str]) -> None:
        """Release held frames: they can be stacked again."""
        await self.collection.update_many(
            {"_id": {"$in": list(frame_ids)}, "is_master": False},
            {"$set": {"held": False, "held_reason": None}},
        )

    async def update(self, frame_id: str, changes: dict[str, Any]) -> None:
        await self.collection.update_one({"_id": frame_id}, {"$set": changes})

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
        """One page of an observatory's library, newest first, and the total (the query:
        :func:`library_query`)."""
        query = library_query(observatory_id, filters, contains)
        total = await self.collection.count_documents(query)
        cursor = self.collection.find(query).sort(
            [("registered_at", DESCENDING), ("_id", DESCENDING)]
        )
        return [from_document(d, Frame) async for d in cursor.skip(skip).limit(limit)], total

    async def recent_lights(self, observatory_id: str, since: datetime) -> list[Frame]:
        """Light frames captured (or, without a capture time, registered) since ``since``."""
        query = {
            "observatory_id": observatory_id,
            "frame_type": FrameType.LIGHT.value,
            "is_master": False,
            "$or": [
                {"captured_at": {"$gte": since}},
                {"captured_at": None, "registered_at": {"$gte": since}},
            ],
        }
        return [from_document(d, Frame) async for d in self.collection.find(query)]

    async def tally(self, observatory_id: str) -> list[dict[str, Any]]:
        """Frame counts by camera, type, master flag, status and claimed (in a master) or not."""
        pipeline = [
            {"$match": {"observatory_id": observatory_id}},
            {
                "$group": {
                    "_id": {
                        "camera_name": "$camera_name",
                        "frame_type": "$frame_type",
                        "is_master": "$is_master",
                        "status": "$status",
                        "claimed": {"$cond": [{"$ifNull": ["$master_id", False]}, True, False]},
                    },
                    "count": {"$sum": 1},
                }
            },
        ]
        cursor = await self.collection.aggregate(pipeline)
        return [{**d["_id"], "count": d["count"]} async for d in cursor]

    async def delete(self, frame_id: str) -> None:
        await self.collection.delete_one({"_id": frame_id})

    # -- lifecycle: supersession, expiry, deletion -------------------------------------
    async def masters(self, observatory_id: str) -> list[Frame]:
        """Every master of an observatory, whatever its status."""
        query = {"observatory_id": observatory_id, "is_master": True}
        return [from_document(d, Frame) async for d in self.collection.find(query)]

    async def supersede(self, master_id: str, by: str, at: datetime) -> bool:
        """Mark a current master superseded; False if it no longer was current."""
        result = await self.collection.update_one(
            {"_id": master_id, "status": {"$in": [s.value for s in CURRENT_MASTER_STATUSES]}},
            {
                "$set": {
                    "status": MasterStatus.SUPERSEDED.value,
                    "superseded_by": by,
                    "superseded_at": at,
                }
            },
        )
        return result.modified_count == 1

    async def superseded_by(self, master_id: str) -> list[Frame]:
        cursor = self.collection.find({"superseded_by": master_id, "is_master": True})
        return [from_document(d, Frame) async for d in cursor]

    async def expire(self, master_id: str) -> bool:
        """Mark an active master expired; False if it no longer was active."""
        result = await self.collection.update_one(
            {"_id": master_id, "status": MasterStatus.ACTIVE.value},
            {"$set": {"status": MasterStatus.EXPIRED.value}},
        )
        return result.modified_count == 1

    async def mark_deleting(self, frame_id: str) -> None:
        """First step of a deletion: a record so marked is finished by the next cleanup."""
        await self.collection.update_one({"_id": frame_id}, {"$set": {"deleting": True}})

    async def pending_deletions(self, observatory_id: str | None = None) -> list[Frame]:
        query: dict[str, Any] = {"deleting": True}
        if observatory_id is not None:
            query["observatory_id"] = observatory_id
        return [from_document(d, Frame) async for d in self.collection.find(query)]

    async def remove_component(self, frame_id: str) -> None:
        """A deleted source frame leaves the masters it was stacked into."""
        await self.collection.update_many(
            {"components": frame_id}, {"$pull": {"components": frame_id}}
        )

    async def referenced_keys(
        self, keys: Sequence[str], *, except_id: str | None = None
    ) -> set[str]:
        """Which of ``keys`` a frame record (other than ``except_id``) names as its file
        or preview."""
        query: dict[str, Any] = {
            "$or": [{"storage_key": {"$in": list(keys)}}, {"preview_key": {"$in": list(keys)}}]
        }
        if except_id is not None:
            query["_id"] = {"$ne": except_id}
        wanted = set(keys)
        found: set[str] = set()
        async for d in self.collection.find(query, {"storage_key": 1, "preview_key": 1}):
            found |= {d.get("storage_key"), d.get("preview_key")} & wanted
        return found


class JobRepository:
    def __init__(self, db: AsyncDatabase):
        self.collection = db["jobs"]

    async def create(self, job: StackJob) -> StackJob | None:
        """Insert an open job; None when its configuration already has one (unique ``open_key``).

        One open job per configuration, not per temperature cluster: a cluster's identity
        shifts as frames arrive, a configuration's does not. Other clusters of the same
        configuration are queued by the sweep that follows each new master."""
        document = to_document(job)
        document["open_key"] = _open_key(job)
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError:
            return None
        return job

    async def get(self, job_id: str) -> StackJob | None:
        document = await self.collection.find_one({"_id": job_id})
        return from_document(document, StackJob) if document else None

    async def open_job_for(self, observatory_id: str, config_key: str) -> StackJob | None:
        document = await self.collection.find_one({"open_key": f"{observatory_id}:{config_key}"})
        return from_document(document, StackJob) if document else None

    async def last_failed(self, observatory_id: str, config_key: str) -> StackJob | None:
        """The most recent failed job of a configuration, if its latest job failed."""
        cursor = self.collection.find({"observatory_id": observatory_id, "config_key": config_key})
        cursor = cursor.sort("created_at", DESCENDING).limit(1)
        latest = [from_document(d, StackJob) async for d in cursor]
        return latest[0] if latest and latest[0].status == JobStatus.FAILED else None

    async def configurations_with_open_jobs(
        self, observatory_id: str, config_keys: Sequence[str]
    ) -> set[str]:
        """Which of ``config_keys`` have an open job (one query for a batch of frames)."""
        wanted = {f"{observatory_id}:{key}": key for key in config_keys}
        cursor = self.collection.find({"open_key": {"$in": list(wanted)}}, {"open_key": 1})
        return {wanted[d["open_key"]] async for d in cursor}

    async def claim(
        self, job_id: str, worker: str, now: datetime, *, stale_before: datetime | None = None
    ) -> StackJob | None:
        """Take a queued job, or a running one whose holder died (its message came back).

        With ``stale_before``, a running job is taken only if its holder has not touched
        it since (a live holder keeps ``updated_at`` fresh with :meth:`touch`), so a
        duplicate request never starts a second stacking of a job that is being stacked."""
        running: dict[str, Any] = {"status": JobStatus.RUNNING.value}
        if stale_before is not None:
            running["updated_at"] = {"$lt": stale_before}
        document = await self.collection.find_one_and_update(
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
            return_document=ReturnDocument.AFTER,
        )
        return from_document(document, StackJob) if document else None

    async def touch(self, job_id: str, worker: str, now: datetime) -> bool:
        """The holder of a running job renews its claim; False when the job is no longer its."""
        result = await self.collection.update_one(
            {"_id": job_id, "status": JobStatus.RUNNING.value, "worker": worker},
            {"$set": {"updated_at": now}},
        )
        return result.matched_count == 1

    async def give_back(self, job_id: str, worker: str, now: datetime) -> bool:
        """The holder stops without finishing: the job is queued again for any replica."""
        result = await self.collection.update_one(
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
        return result.matched_count == 1

    async def set_progress(self, job_id: str, progress: float, now: datetime) -> None:
        await self.collection.update_one(
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
        """Close a job (succeeded or failed): the group may get a new open job again."""
        changes: dict[str, Any] = {"status": status.value, "updated_at": now, "finished_at": now}
        if status == JobStatus.SUCCEEDED:
            changes["progress"] = 1.0
        if master_id is not None:
            changes["master_id"] = master_id
        if error is not None:
            changes["error"] = error
        await self.collection.update_one(
            {"_id": job_id}, {"$set": changes, "$unset": {"open_key": ""}}
        )

    async def defer(self, job_id: str, reason: str, now: datetime) -> None:
        await self.collection.update_one(
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
        """Put a deferred or failed job back in the queue (reopening its group slot)."""
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
            document = await self.collection.find_one_and_update(
                {"_id": job_id, "status": {"$in": [s.value for s in from_statuses]}},
                {"$set": changes},
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return None
        return from_document(document, StackJob) if document else None

    async def list(
        self, observatory_id: str, status: str | None = None, limit: int = 200
    ) -> list[StackJob]:
        query: dict[str, Any] = {"observatory_id": observatory_id}
        if status is not None:
            query["status"] = status
        cursor = self.collection.find(query).sort("created_at", DESCENDING).limit(limit)
        return [from_document(d, StackJob) async for d in cursor]

    async def deferred(self, observatory_id: str | None = None) -> list[StackJob]:
        query: dict[str, Any] = {"status": JobStatus.DEFERRED.value}
        if observatory_id is not None:
            query["observatory_id"] = observatory_id
        return [from_document(d, StackJob) async for d in self.collection.find(query)]

    async def open_jobs(self, observatory_id: str) -> list[StackJob]:
        query = {
            "observatory_id": observatory_id,
            "status": {"$in": [s.value for s in OPEN_JOB_STATUSES]},
        }
        return [from_document(d, StackJob) async for d in self.collection.find(query)]

    async def delete(self, job_id: str) -> None:
        await self.collection.delete_one({"_id": job_id})


def _open_key(job: StackJob) -> str:
    key = f"{job.observatory_id}:{job.config_key}"
    return f"{key}#{job.cluster_slot}" if job.cluster_slot else key


class SettingsRepository:
    def __init__(self, db: AsyncDatabase):
        self.collection = db["settings"]

    async def get(self, observatory_id: str) -> CalibrationSettings:
        document = await self.collection.find_one({"_id": observatory_id}, {"_id": 0})
        return settings_from_document(document)

    async def put(self, observatory_id: str, settings: CalibrationSettings) -> None:
        document = to_document(settings)
        await self.collection.replace_one({"_id": observatory_id}, document, upsert=True)


class ObservatoryRepository:
    def __init__(self, db: AsyncDatabase):
        self.collection = db["observatories"]

    async def create(self, observatory: Observatory) -> bool:
        try:
            await self.collection.insert_one(to_document(observatory))
        except DuplicateKeyError:
            return False
        return True

    async def get(self, observatory_id: str) -> Observatory | None:
        document = await self.collection.find_one({"_id": observatory_id})
        return from_document(document, Observatory) if document else None

    async def existing(self, observatory_ids: Sequence[str]) -> set[str]:
        """Which of ``observatory_ids`` exist (one query for a batch of events)."""
        cursor = self.collection.find({"_id": {"$in": list(set(observatory_ids))}}, {"_id": 1})
        return {d["_id"] async for d in cursor}

    async def all(self) -> list[Observatory]:
        return [from_document(d, Observatory) async for d in self.collection.find().sort("_id")]


class RejectionRepository:
    def __init__(self, db: AsyncDatabase):
        self.collection = db["rejections"]

    async def record(self, rejection: Rejection) -> bool:
        """Store a rejection once per event id; False when it was already stored."""
        try:
            await self.collection.insert_one(to_document(rejection))
        except DuplicateKeyError:
            return False
        return True

    async def list(self, observatory_id: str, limit: int = 200) -> list[Rejection]:
        cursor = (
            self.collection.find({"observatory_id": observatory_id}, {"_id": 0})
            .sort("rejected_at", DESCENDING)
            .limit(limit)
        )
        return [from_document(d, Rejection) async for d in cursor]


class DeadLetterRepository:
    """Messages a consumer failed to handle, by message and consumer (SPEC §12)."""

    def __init__(self, db: AsyncDatabase):
        self.collection = db["dead_letters"]

    async def count_failure(self, letter: DeadLetter) -> int:
        document = to_document(letter)
        counted = ("_id", "attempts", "error", "last_seen")
        update = {
            "$inc": {"attempts": 1},
            "$set": {"error": letter.error, "last_seen": letter.last_seen},
            "$setOnInsert": {k: v for k, v in document.items() if k not in counted},
        }

        async def count() -> dict[str, Any]:
            return await self.collection.find_one_and_update(
                {"_id": letter.id},
                update,
                projection={"attempts": 1},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )

        try:
            updated = await count()
        except DuplicateKeyError:  # two first failures at once: count on the one stored
            updated = await count()
        return int(updated["attempts"])

    async def bury(self, letter_id: str, now: datetime) -> None:
        await self.collection.update_one(
            {"_id": letter_id}, {"$set": {"status": DeadLetterStatus.DEAD.value}}
        )

    async def record(self, letter: DeadLetter) -> None:
        document = to_document(letter)
        await self.collection.replace_one({"_id": letter.id}, document, upsert=True)

    async def forget(self, letter_ids: Sequence[str]) -> None:
        await self.collection.delete_many(
            {"_id": {"$in": list(letter_ids)}, "status": DeadLetterStatus.RETRYING.value}
        )

    async def get(self, letter_id: str) -> DeadLetter | None:
        document = await self.collection.find_one({"_id": letter_id})
        return from_document(document, DeadLetter) if document else None

    async def list(
        self, statuses: Sequence[DeadLetterStatus], limit: int = 200
    ) -> list[DeadLetter]:
        cursor = (
            self.collection.find({"status": {"$in": [s.value for s in statuses]}})
            .sort("last_seen", DESCENDING)
            .limit(limit)
        )
        return [from_document(d, DeadLetter) async for d in cursor]

    async def count(self, statuses: Sequence[DeadLetterStatus]) -> int:
        return await self.collection.count_documents(
            {"status": {"$in": [s.value for s in statuses]}}
        )

    async def replayed(self, letter_id: str, msg_id: str, now: datetime) -> DeadLetter | None:
        document = await self.collection.find_one_and_update(
            {"_id": letter_id, "status": {"$in": [s.value for s in DEAD_STATUSES]}},
            {
                "$set": {
                    "status": DeadLetterStatus.REPLAYED.value,
                    "replayed_at": now,
                    "replay_msg_id": msg_id,
                },
                "$inc": {"replays": 1},
            },
            return_document=ReturnDocument.AFTER,
        )
        return from_document(document, DeadLetter) if document else None


class HeartbeatRepository:
    def __init__(self, db: AsyncDatabase):
        self.collection = db["heartbeats"]

    async def beat(self, service: str, instance: str, now: datetime) -> None:
        await self.collection.update_one(
            {"_id": f"{service}:{instance}"},
            {"$set": {"service": service, "instance": instance, "at": now}},
            upsert=True,
        )

    async def all(self) -> list[dict[str, Any]]:
        return [d async for d in self.collection.find({}, {"_id": 0}).sort("service")]


class AccountRepository:
    def __init__(self, db: AsyncDatabase):
        self.user_documents = db["users"]
        self.token_documents = db["tokens"]

    async def save_user(self, user: User) -> None:
        document = to_document(user)
        user_id, created_at = document.pop("_id"), document.pop("created_at")
        await self.user_documents.update_one(
            {"_id": user_id},
            {"$set": document, "$setOnInsert": {"created_at": created_at}},
            upsert=True,
        )

    async def user(self, user_id: str) -> User | None:
        document = await self.user_documents.find_one({"_id": user_id})
        return from_document(document, User) if document else None

    async def users(self) -> list[User]:
        return [from_document(d, User) async for d in self.user_documents.find().sort("_id")]

    async def add_token(self, token: ApiToken) -> str:
        document = to_document(token)
        await self.token_documents.update_one(
            {"hash": document.pop("hash")}, {"$setOnInsert": document}, upsert=True
        )
        stored = await self.token_documents.find_one({"hash": token.hash}, {"_id": 1})
        return stored["_id"]

    async def live_token(self, token_hash: str) -> ApiToken | None:
        document = await self.token_documents.find_one({"hash": token_hash, "revoked": False})
        return from_document(document, ApiToken) if document else None

    async def live_token_ids(self) -> dict[str, list[str]]:
        live: dict[str, list[str]] = {}
        async for token in self.token_documents.find(
            {"revoked": False, "user_id": {"$ne": None}}, {"user_id": 1}
        ):
            live.setdefault(token["user_id"], []).append(token["_id"])
        return live

    async def live_among(self, token_ids: Sequence[str]) -> set[str]:
        query = {"_id": {"$in": list(token_ids)}, "revoked": False}
        return {d["_id"] async for d in self.token_documents.find(query, {"_id": 1})}

    async def revoke(self, token_id: str) -> bool:
        result = await self.token_documents.update_one(
            {"_id": token_id}, {"$set": {"revoked": True}}
        )
        return result.matched_count == 1

    async def reinstate(self, token_hash: str) -> None:
        await self.token_documents.update_one({"hash": token_hash}, {"$set": {"revoked": False}})


class CalibrationCacheRepository:
    """Calibrated lights in the S3 cache (``calibrated``): one entry per light."""

    def __init__(self, db: AsyncDatabase):
        self.collection = db["calibrated"]

    async def get(self, light_id: str) -> CacheEntry | None:
        document = await self.collection.find_one({"_id": light_id})
        return from_document(document, CacheEntry) if document else None

    async def many(self, light_ids: Sequence[str]) -> dict[str, CacheEntry]:
        """The entries of these lights, by light id."""
        return {
            d["_id"]: from_document(d, CacheEntry)
            async for d in self.collection.find({"_id": {"$in": list(light_ids)}})
        }

    async def put(self, entry: CacheEntry) -> None:
        await self.collection.replace_one({"_id": entry.id}, to_document(entry), upsert=True)

    async def entries(self, observatory_id: str | None = None) -> list[CacheEntry]:
        query = {} if observatory_id is None else {"observatory_id": observatory_id}
        return [from_document(d, CacheEntry) async for d in self.collection.find(query)]

    async def mark_deleting(self, light_id: str) -> None:
        await self.collection.update_one({"_id": light_id}, {"$set": {"deleting": True}})

    async def pending_deletions(self, observatory_id: str | None = None) -> list[CacheEntry]:
        query: dict[str, Any] = {"deleting": True}
        if observatory_id is not None:
            query["observatory_id"] = observatory_id
        return [from_document(d, CacheEntry) async for d in self.collection.find(query)]

    async def delete(self, light_id: str, storage_key: str | None) -> None:
        """Remove the entry, unless it was replaced meanwhile (a new plan, a new key)."""
        await self.collection.delete_one({"_id": light_id, "storage_key": storage_key})

    async def referenced_keys(self, keys: Sequence[str]) -> set[str]:
        cursor = self.collection.find({"storage_key": {"$in": list(keys)}}, {"storage_key": 1})
        return {d["storage_key"] async for d in cursor}


class MaintenanceRunRepository:
    """When each daily maintenance task last ran server-wide (``maintenance_runs``)."""

    def __init__(self, db: AsyncDatabase):
        self.collection = db["maintenance_runs"]

    async def last_run(self, task: str) -> datetime | None:
        document = await self.collection.find_one({"_id": task})
        return document["finished_at"] if document else None

    async def record(self, task: str, finished_at: datetime, report: dict[str, Any]) -> None:
        await self.collection.replace_one(
            {"_id": task}, {"finished_at": finished_at, "report": report}, upsert=True
        )


class PendingUploadRepository:
    """Presigned uploads handed out to plugins (``pending_uploads``), by storage key."""

    def __init__(self, db: AsyncDatabase):
        self.collection = db["pending_uploads"]

    async def add(self, upload: PendingUpload) -> None:
        await self.collection.insert_one({"_id": upload.storage_key, **to_document(upload)})

    async def get(self, storage_key: str) -> PendingUpload | None:
        document = await self.collection.find_one({"_id": storage_key})
        return from_document(document, PendingUpload) if document else None

    async def referenced_keys(self, keys: Sequence[str], *, expiring_from: datetime) -> set[str]:
        query = {"_id": {"$in": list(keys)}, "expires_at": {"$gte": expiring_from}}
        return {d["_id"] async for d in self.collection.find(query, {"_id": 1})}

    async def remove_expired(self, before: datetime, observatory_id: str | None = None) -> int:
        query: dict[str, Any] = {"expires_at": {"$lt": before}}
        if observatory_id is not None:
            query["observatory_id"] = observatory_id
        return (await self.collection.delete_many(query)).deleted_count
