"""The database schema is made once, by ``calib init-db``, before any service starts;
services only check it (creating collections while others write to them can hang the
MongoDB-wire server: repro/secantus_ddl_deadlock.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from calib_infra.mongo import COLLECTIONS, SchemaMissing, check_schema, mongo_client
from tests.support.system import environment, service_config, unique


def database_name() -> str:
    return unique("calib_schema").replace("-", "_")


def init_db(config) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "calib_cli.main", "init-db"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(config, "init-db"),
    )


async def check(config) -> None:
    client = mongo_client(config)
    try:
        await check_schema(client[config.mongodb_db])
    finally:
        await client.close()


async def drop_index(config, collection: str, index: str) -> None:
    client = mongo_client(config)
    try:
        await client[config.mongodb_db][collection].drop_index(index)
    finally:
        await client.close()


def test_init_db_creates_what_services_check_and_a_missing_index_is_named(servers):
    config = service_config(servers.endpoints, database_name())
    with pytest.raises(SchemaMissing, match="lacks frames, calibrated, jobs, ") as missing:
        asyncio.run(check(config))
    assert "calib init-db" in str(missing.value)

    done = init_db(config)
    assert done.returncode == 0, done.stderr
    assert f"database {config.mongodb_db} ready" in done.stdout
    asyncio.run(check(config))  # every collection and index is there

    assert init_db(config).returncode == 0  # idempotent
    asyncio.run(drop_index(config, "jobs", "one_open_job_per_group"))
    with pytest.raises(SchemaMissing, match=r"lacks jobs\.one_open_job_per_group: "):
        asyncio.run(check(config))


def test_the_schema_lists_every_collection_the_repositories_use():
    import calib_infra.repositories

    used = set()
    for module in (calib_infra.repositories,):
        source = Path(module.__file__).read_text()
        used |= {part.split('"]')[0] for part in source.split('db["')[1:]}
    assert used and used <= set(COLLECTIONS), used - set(COLLECTIONS)
