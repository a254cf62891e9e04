"""The object store and the local file cache against a real S3 server: listings come in
batches; cache hits need no storage, content is checked, least recently used entries go
first, and a job's files outlive eviction."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest

from calib_app.ports import ObjectMissingError
from calib_infra.filecache import ABANDONED_WORK_S, ChangedInStorageError, FileCache
from calib_infra.store import ObjectStore
from tests.support.system import service_config, unique


@pytest.fixture
def store(servers) -> ObjectStore:
    store = ObjectStore(service_config(servers.endpoints, unique("calib_cache").replace("-", "_")))
    store.ensure_bucket_sync()
    return store


def stored(store: ObjectStore, content: bytes) -> tuple[str, str]:
    key = f"cache-test/{unique('object')}.fits"
    store.put_bytes_sync(key, content)
    return key, hashlib.sha256(content).hexdigest()


def test_a_cached_file_is_served_without_storage(store, tmp_path):
    cache = FileCache(store, tmp_path / "cache", limit_bytes=1 << 20)
    key, sha256 = stored(store, b"frame one" * 1000)
    with cache.workdir("job-") as first:
        assert cache.fetch_sync(key, sha256, first / "a.fits") is False  # downloaded
        assert (first / "a.fits").read_bytes() == b"frame one" * 1000
    store.client.remove_object(store.bucket, key)
    with cache.workdir("job-") as second:
        assert cache.fetch_sync(key, sha256, second / "a.fits") is True  # from the cache alone
        assert (second / "a.fits").read_bytes() == b"frame one" * 1000
    assert not any((tmp_path / "cache" / "work").iterdir())  # work folders are removed


def test_without_a_cache_every_fetch_downloads(store, tmp_path):
    cache = FileCache(store, tmp_path / "cache", limit_bytes=0)
    key, sha256 = stored(store, b"frame" * 100)
    with cache.workdir("job-") as work:
        assert cache.fetch_sync(key, sha256, work / "a.fits") is False
        store.client.remove_object(store.bucket, key)
        with pytest.raises(ObjectMissingError):
            cache.fetch_sync(key, sha256, work / "b.fits")


def test_a_file_changed_in_storage_is_refused_and_not_cached(store, tmp_path):
    cache = FileCache(store, tmp_path / "cache", limit_bytes=1 << 20)
    key, sha256 = stored(store, b"as registered" * 100)
    store.put_bytes_sync(key, b"overwritten later" * 100)
    with cache.workdir("job-") as work:
        with pytest.raises(
            ChangedInStorageError, match=f"{key} changed in storage since it was recorded"
        ):
            cache.fetch_sync(key, sha256, work / "a.fits")
        assert not (work / "a.fits").exists()
    store.put_bytes_sync(key, b"as registered" * 100)  # put right: fetched (not a cached refusal)
    with cache.workdir("job-") as work:
        assert cache.fetch_sync(key, sha256, work / "a.fits") is False


def test_least_recently_used_entries_are_evicted_and_a_jobs_files_survive(store, tmp_path):
    cache = FileCache(store, tmp_path / "cache", limit_bytes=2500)
    objects = [stored(store, bytes([n]) * 1000) for n in range(3)]
    with cache.workdir("job-") as work:
        for index, (key, sha256) in enumerate(objects[:2]):
            cache.fetch_sync(key, sha256, work / f"{index}.fits")
            time.sleep(0.02)  # distinct use times
        cache.fetch_sync(*objects[0], work / "again.fits")  # 0 used again: 1 is now the oldest
        time.sleep(0.02)
        cache.fetch_sync(*objects[2], work / "2.fits")
        assert cache.trim_sync() == 2000
        assert (work / "1.fits").read_bytes() == bytes([1]) * 1000  # evicted, still the job's
    for key, _ in objects:
        store.client.remove_object(store.bucket, key)
    with cache.workdir("job-") as work:
        assert cache.fetch_sync(*objects[0], work / "a.fits") is True
        assert cache.fetch_sync(*objects[2], work / "b.fits") is True
        with pytest.raises(ObjectMissingError):
            cache.fetch_sync(*objects[1], work / "c.fits")


def test_trimming_removes_work_folders_abandoned_by_a_dead_process(store, tmp_path):
    cache = FileCache(store, tmp_path / "cache", limit_bytes=1 << 20)
    with cache.workdir("job-") as live:
        abandoned = live.parent / "job-dead"
        abandoned.mkdir()
        (abandoned / "frame.fits").write_bytes(b"x")
        old = time.time() - ABANDONED_WORK_S - 60
        os.utime(abandoned, (old, old))
        cache.trim_sync()
        assert not abandoned.exists() and live.exists()


def test_a_listing_comes_in_batches_of_the_size_asked(store):
    prefix = f"{unique('listing')}/"
    keys = sorted(f"{prefix}{index}.fits" for index in range(5))
    for key in keys:
        store.put_bytes_sync(key, b"x")

    async def batches() -> list[list[str]]:
        return [[o.key for o in batch] async for batch in store.list_batches(prefix, 2)]

    listed = asyncio.run(batches())
    assert [len(batch) for batch in listed] == [2, 2, 1]
    assert sorted(key for batch in listed for key in batch) == keys


def test_a_process_trims_after_it_adds_entries_and_not_otherwise(store, tmp_path):
    cache = FileCache(store, tmp_path / "cache", limit_bytes=1500)
    first, second = stored(store, b"a" * 1000), stored(store, b"b" * 1000)
    with cache.workdir("job-") as work:
        cache.fetch_sync(*first, work / "a.fits")
        time.sleep(0.02)
        cache.fetch_sync(*second, work / "b.fits")
    asyncio.run(cache.trim())  # over the limit after its downloads: the older entry goes
    entries = sorted(p.name for p in (tmp_path / "cache").glob("??/*"))
    assert entries == [second[1]]
    with cache.workdir("job-") as work:
        assert cache.fetch_sync(*second, work / "b.fits") is True  # a hit adds nothing
    other = FileCache(store, tmp_path / "cache", limit_bytes=0)  # a process that only reads
    asyncio.run(other.trim())
    assert sorted(p.name for p in (tmp_path / "cache").glob("??/*")) == entries
