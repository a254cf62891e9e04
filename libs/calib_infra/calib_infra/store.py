"""The S3 object store (minio SDK; works with MinIO, SeaweedFS and AWS S3).

The SDK is synchronous: async callers go through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import S3Error

from calib_app.ports import ObjectInfo, ObjectMissingError, ScannedObject
from calib_infra.config import Config

CHUNK = 1024 * 1024
#: Files up to this size go up in one PUT, larger ones in parts this big (each buffered in
#: memory): with the SDK's default 5 MiB parts, SeaweedFS spent far more CPU and time on
#: the stackers' uploads (bench/bench_stacker.py: 8 jobs in 5.0 s instead of 3.2 s).
UPLOAD_PART_SIZE = 64 * CHUNK


def public_endpoint(config: Config) -> tuple[str, bool]:
    """Where plugins reach S3, as (``host[:port]``, secure): ``CALIB_S3_PUBLIC_ENDPOINT``
    (``host:port`` with ``CALIB_S3_SECURE``'s scheme, or an ``http(s)://host:port`` URL),
    else ``CALIB_S3_ENDPOINT``."""
    endpoint = config.s3_public_endpoint or config.s3_endpoint
    if "://" not in endpoint:
        return endpoint, config.s3_secure
    url = urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.netloc or url.path not in ("", "/"):
        raise ValueError(
            f"CALIB_S3_PUBLIC_ENDPOINT must be host:port or http(s)://host:port, not {endpoint!r}"
        )
    return url.netloc, url.scheme == "https"


class ObjectStore:
    def __init__(self, config: Config):
        self.bucket = config.s3_bucket
        self.client = Minio(
            config.s3_endpoint,
            access_key=config.s3_access_key,
            secret_key=config.s3_secret_key,
            secure=config.s3_secure,
            http_client=urllib3.PoolManager(
                timeout=urllib3.Timeout(connect=3.0, read=60.0),
                retries=urllib3.Retry(total=2, backoff_factor=0.2),
                maxsize=16,
            ),
        )
        self._config = config
        self._public_endpoint = public_endpoint(config)
        self._signer: Minio | None = None
        self._signer_lock = threading.Lock()

    # -- set-up -----------------------------------------------------------------
    def ensure_bucket_sync(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as error:
                if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    async def ensure_bucket(self) -> None:
        await asyncio.to_thread(self.ensure_bucket_sync)

    # -- writes ------------------------------------------------------------------
    def put_file_sync(
        self, key: str, path: str | Path, content_type: str = "application/fits"
    ) -> None:
        self.client.fput_object(
            self.bucket, key, str(path), content_type=content_type, part_size=UPLOAD_PART_SIZE
        )

    async def put_file(
        self, key: str, path: str | Path, content_type: str = "application/fits"
    ) -> None:
        await asyncio.to_thread(self.put_file_sync, key, path, content_type)

    def put_bytes_sync(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        self.client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
        )

    async def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        await asyncio.to_thread(self.put_bytes_sync, key, data, content_type)

    def put_stream_sync(
        self, key: str, stream: BinaryIO, content_type: str = "application/fits"
    ) -> None:
        """Upload a stream of unknown length in multipart chunks (constant memory)."""
        self.client.put_object(
            self.bucket, key, stream, -1, part_size=8 * CHUNK, content_type=content_type
        )

    async def put_stream(
        self, key: str, stream: BinaryIO, content_type: str = "application/fits"
    ) -> None:
        await asyncio.to_thread(self.put_stream_sync, key, stream, content_type)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.remove_object, self.bucket, key)

    # -- reads -------------------------------------------------------------------
    def _get(self, key: str, offset: int = 0, length: int = 0):
        try:
            return self.client.get_object(self.bucket, key, offset=offset, length=length)
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchObject"):
                raise ObjectMissingError(key) from error
            raise

    def read_range_sync(self, key: str, offset: int, length: int) -> bytes:
        try:
            response = self._get(key, offset, length)
        except S3Error as error:
            if error.code == "InvalidRange":  # starts at or past the end: nothing to read
                return b""
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    async def read_range(self, key: str, offset: int, length: int) -> bytes:
        return await asyncio.to_thread(self.read_range_sync, key, offset, length)

    def _read_hashed(self, key: str, consume: Callable[[bytes], object]) -> tuple[str, int]:
        """Stream the object once through ``consume``; its SHA-256 (hex) and size."""
        digest = hashlib.sha256()
        size = 0
        response = self._get(key)
        try:
            for chunk in response.stream(CHUNK):
                digest.update(chunk)
                consume(chunk)
                size += len(chunk)
        finally:
            response.close()
            response.release_conn()
        return digest.hexdigest(), size

    def scan_sync(self, key: str, head_bytes: int) -> ScannedObject:
        """Stream the object once: hash it and keep only its first ``head_bytes``."""
        head = bytearray()

        def keep_head(chunk: bytes) -> None:
            if len(head) < head_bytes:
                head.extend(chunk[: head_bytes - len(head)])

        sha256, size = self._read_hashed(key, keep_head)
        return ScannedObject(size=size, sha256=sha256, head=bytes(head))

    async def scan(self, key: str, head_bytes: int) -> ScannedObject:
        return await asyncio.to_thread(self.scan_sync, key, head_bytes)

    def download_sync(self, key: str, path: str | Path) -> str:
        """Write the object to ``path`` in one streamed request; returns its SHA-256 (hex)."""
        with open(path, "wb") as file:
            return self._read_hashed(key, file.write)[0]

    def iter_chunks(self, key: str) -> Iterator[bytes]:
        """Chunks of an object, for streaming responses (sync iterator)."""
        response = self._get(key)
        try:
            yield from response.stream(CHUNK)
        finally:
            response.close()
            response.release_conn()

    async def read_chunks(self, key: str) -> AsyncIterator[bytes]:
        """:meth:`iter_chunks` for async callers: each chunk is read in a worker thread."""
        chunks = self.iter_chunks(key)
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            yield chunk

    def stat_sync(self, key: str) -> ObjectInfo | None:
        try:
            stat = self.client.stat_object(self.bucket, key)
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return None
            raise
        return ObjectInfo(key=key, size=stat.size or 0, modified=stat.last_modified)

    async def stat(self, key: str) -> ObjectInfo | None:
        return await asyncio.to_thread(self.stat_sync, key)

    def _listing(self, prefix: str) -> Iterator[ObjectInfo]:
        return (
            ObjectInfo(key=o.object_name, size=o.size or 0, modified=o.last_modified)
            for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
            if o.object_name
        )

    def list_sync(self, prefix: str = "") -> list[ObjectInfo]:
        return list(self._listing(prefix))

    async def list_batches(self, prefix: str, size: int) -> AsyncIterator[list[ObjectInfo]]:
        """The objects under ``prefix``, ``size`` at a time: a listing of the whole bucket
        is never held at once."""
        listing = self._listing(prefix)
        while batch := await asyncio.to_thread(lambda: list(itertools.islice(listing, size))):
            yield batch

    # -- presigned URLs (plugins upload without the bucket's credentials) ------------
    def _public_signer(self) -> Minio:
        """The client that signs URLs for the public endpoint. Signing is local, but the
        region is part of a signature: it is asked once, here, of the endpoint this
        process reaches (the public one may not be reachable from inside)."""
        if self._public_endpoint == (self._config.s3_endpoint, self._config.s3_secure):
            return self.client
        with self._signer_lock:
            if self._signer is None:
                host, secure = self._public_endpoint
                self._signer = Minio(
                    host,
                    access_key=self._config.s3_access_key,
                    secret_key=self._config.s3_secret_key,
                    secure=secure,
                    region=self.client._get_region(self.bucket),  # noqa: SLF001 - no public API
                )
            return self._signer

    def presigned_put_sync(self, key: str, expires: timedelta) -> str:
        """A URL to PUT ``key``, and only it, for ``expires`` (SigV4, query-signed)."""
        return self._public_signer().presigned_put_object(self.bucket, key, expires=expires)

    async def presigned_put(self, key: str, expires: timedelta) -> str:
        return await asyncio.to_thread(self.presigned_put_sync, key, expires)

    async def ping(self) -> None:
        await asyncio.to_thread(self.client.bucket_exists, self.bucket)
