"""MongoDB access: the client, collections and their indexes, document conversion."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import msgspec
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from calib_infra.config import Config

S = TypeVar("S", bound=msgspec.Struct)


def to_document(record: msgspec.Struct) -> dict[str, Any]:
    """A struct as a MongoDB document: ``id`` becomes ``_id``, datetimes stay datetimes."""
    document = msgspec.to_builtins(record, builtin_types=(datetime,))
    if "id" in document:
        document["_id"] = document.pop("id")
    return document


def from_document(document: dict[str, Any], kind: type[S]) -> S:
    values = dict(document)
    if "_id" in values:
        values["id"] = values.pop("_id")
    values.pop("open_key", None)
    return msgspec.convert(values, kind, strict=False)


def mongo_client(config: Config) -> AsyncMongoClient:
    return AsyncMongoClient(
        config.mongodb_uri,
        tz_aware=True,
        serverSelectionTimeoutMS=3000,
        connectTimeoutMS=3000,
        # a server that stops answering is a fault (an error, then a retry), not a wait forever
        socketTimeoutMS=60_000,
    )


# Every collection Calib uses, with its indexes. The schema is created once, from one
# process, before any service starts (``calib init-db``, ``calib run``, the test fixtures):
# services only check it. Creating a collection while other connections write to it can
# deadlock the MongoDB-wire server used here (repro/secantus_ddl_deadlock.py).
COLLECTIONS: dict[str, list[IndexModel]] = {
    "frames": [
        IndexModel(
            [("observatory_id", ASCENDING), ("sha256", ASCENDING)], unique=True, name="unique_file"
        ),
        IndexModel(
            [
                ("observatory_id", ASCENDING),
                ("is_master", ASCENDING),
                ("registered_at", DESCENDING),
            ],
            name="library",
        ),
        IndexModel(
            [
                ("observatory_id", ASCENDING),
                ("frame_type", ASCENDING),
                ("camera_name", ASCENDING),
                ("registered_at", DESCENDING),
            ],
            name="by_hardware",
        ),
        IndexModel(
            [
                ("observatory_id", ASCENDING),
                ("is_master", ASCENDING),
                ("config_key", ASCENDING),
                ("status", ASCENDING),
            ],
            name="masters_by_config",
        ),
        # the admin page's library views, equality fields first, then the newest-first sort:
        # frames per type/camera/filter, frames not yet in a master, masters by status
        IndexModel(
            [
                ("observatory_id", ASCENDING),
                ("is_master", ASCENDING),
                ("frame_type", ASCENDING),
                ("camera_name", ASCENDING),
                ("filter", ASCENDING),
                ("registered_at", DESCENDING),
            ],
            name="library_by_hardware",
        ),
        IndexModel(
            [
                ("observatory_id", ASCENDING),
                ("is_master", ASCENDING),
                ("master_id", ASCENDING),
                ("frame_type", ASCENDING),
                ("camera_name", ASCENDING),
                ("filter", ASCENDING),
                ("registered_at", DESCENDING),
            ],
            name="library_unclaimed",
        ),
        IndexModel(
            [
                ("observatory_id", ASCENDING),
                ("is_master", ASCENDING),
                ("status", ASCENDING),
                ("frame_type", ASCENDING),
                ("camera_name", ASCENDING),
                ("registered_at", DESCENDING),
            ],
            name="library_masters_by_status",
        ),
        IndexModel([("master_id", ASCENDING)], name="claimed_by", sparse=True),
        IndexModel([("components", ASCENDING)], name="components", sparse=True),
        IndexModel([("storage_key", ASCENDING)], name="storage_key"),
        IndexModel([("preview_key", ASCENDING)], name="preview_key", sparse=True),
        IndexModel([("superseded_by", ASCENDING)], name="superseded_by", sparse=True),
        IndexModel([("deleting", ASCENDING)], name="deleting", sparse=True),
    ],
    "calibrated": [
        IndexModel([("observatory_id", ASCENDING)], name="by_observatory"),
        IndexModel([("storage_key", ASCENDING)], name="storage_key"),
        IndexModel([("deleting", ASCENDING)], name="deleting", sparse=True),
    ],
    "jobs": [
        IndexModel(
            [("observatory_id", ASCENDING), ("config_key", ASCENDING), ("created_at", DESCENDING)],
            name="by_configuration",
        ),
        IndexModel(
            [("open_key", ASCENDING)], unique=True, sparse=True, name="one_open_job_per_group"
        ),
        IndexModel(
            [("observatory_id", ASCENDING), ("created_at", DESCENDING)], name="by_observatory"
        ),
        IndexModel([("status", ASCENDING), ("observatory_id", ASCENDING)], name="by_status"),
    ],
    "rejections": [
        IndexModel([("event_id", ASCENDING)], unique=True, name="unique_event"),
        IndexModel(
            [("observatory_id", ASCENDING), ("rejected_at", DESCENDING)], name="by_observatory"
        ),
    ],
    # messages a consumer failed to handle: counted while retried, then dead (SPEC §12)
    "dead_letters": [
        IndexModel([("status", ASCENDING), ("last_seen", DESCENDING)], name="by_status"),
    ],
    "tokens": [IndexModel([("hash", ASCENDING)], unique=True, name="unique_hash")],
    "heartbeats": [IndexModel([("service", ASCENDING)], name="by_service")],
    "users": [],
    "settings": [],
    "observatories": [],
    "maintenance_runs": [],
    # presigned uploads handed out to plugins, by storage key (``_id``): the orphan cleanup
    # keeps their objects, and removes them once expired (SPEC §8 POST /uploads, §12)
    "pending_uploads": [
        IndexModel([("expires_at", ASCENDING)], name="by_expiry"),
        IndexModel(
            [("observatory_id", ASCENDING), ("expires_at", ASCENDING)], name="by_observatory"
        ),
    ],
}


class SchemaMissing(Exception):
    """The database lacks collections or indexes: ``calib init-db`` has not run on it."""


async def create_schema(db: AsyncDatabase) -> None:
    """Create every collection and index (idempotent). Call it from one process only,
    before the services start."""
    existing = set(await db.list_collection_names())
    for name, indexes in COLLECTIONS.items():
        if name not in existing:
            await db.create_collection(name)
        if indexes:
            await db[name].create_indexes(indexes)


async def check_schema(db: AsyncDatabase) -> None:
    """Raise :class:`SchemaMissing` naming what is absent; never creates anything."""
    existing = set(await db.list_collection_names())
    missing: list[str] = []
    for name, indexes in COLLECTIONS.items():
        if name not in existing:
            missing.append(name)
            continue
        present = {index["name"] async for index in await db[name].list_indexes()}
        missing += [
            f"{name}.{index.document['name']}"
            for index in indexes
            if index.document["name"] not in present
        ]
    if missing:
        raise SchemaMissing(f"database {db.name} lacks {', '.join(missing)}: run 'calib init-db'")


async def prepare_database(config: Config) -> None:
    """``create_schema`` on the configured database, with its own short-lived client."""
    client = mongo_client(config)
    try:
        await create_schema(client[config.mongodb_db])
    finally:
        await client.close()
