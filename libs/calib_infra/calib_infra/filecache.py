"""A local, size-bounded copy of the stored files a process works on, named by content.

The same files are read again and again: each new master re-stacks the retained frames
of its group (most of them stacked before), flats and CCD darks are preprocessed with
the same master bias or dark job after job, and every light of a night is calibrated
with the same three masters. Reading those from local disk instead of S3 saves the
transfer and the storage server's work.

Entries are named by SHA-256 and checked when they are downloaded, so an entry holds
exactly the bytes that were registered, and a file that changed in storage since then is
refused. Work happens in folders beside the entries: a job receives hard links, so an
entry evicted while the job runs stays readable to it. Every step is an atomic link,
rename or unlink, so processes on one machine can share the folder. When the entries
outgrow the limit, the least recently used go first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from calib_app.ports import ObjectMissingError, UnusableFileError
from calib_core.models import Frame
from calib_infra.store import ObjectStore

WORK_FOLDER = "work"
#: Work folders older than this are left over from a process that died mid-job.
ABANDONED_WORK_S = 6 * 3600


class ChangedInStorageError(Exception):
    """The stored object's content is not the one recorded (its SHA-256 differs)."""

    def __init__(self, key: str, expected: str, actual: str):
        super().__init__(
            f"{key} changed in storage since it was recorded"
            f" (sha256 {actual[:12]}..., recorded {expected[:12]}...)"
        )


class FileCache:
    def __init__(self, store: ObjectStore, root: Path, limit_bytes: int):
        self.store = store
        self.root = root
        self.limit_bytes = limit_bytes
        self._entered = False  # an entry was added since this process last trimmed

    @property
    def enabled(self) -> bool:
        return self.limit_bytes > 0

    @contextlib.contextmanager
    def workdir(self, prefix: str) -> Iterator[Path]:
        """A fresh folder for one job's files, removed afterwards; on the cache's file
        system, so that files arrive in it as hard links."""
        work = self.root / WORK_FOLDER
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=prefix, dir=work) as folder:
            yield Path(folder)

    def _entry(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def fetch_sync(self, key: str, sha256: str, destination: Path) -> bool:
        """Put the object ``key``, whose content has ``sha256``, at ``destination``.
        True when it came from the cache; raises :class:`ChangedInStorageError` (leaving
        nothing behind) when the download does not have that content."""
        entry = self._entry(sha256)
        if self.enabled:
            try:
                os.link(entry, destination)
            except FileNotFoundError:
                pass
            else:
                with contextlib.suppress(FileNotFoundError):  # evicted meanwhile: still ours
                    os.utime(entry)  # recently used
                return True
        actual = self.store.download_sync(key, destination)
        if actual != sha256:
            destination.unlink(missing_ok=True)
            raise ChangedInStorageError(key, sha256, actual)
        self.keep_sync(destination, sha256)
        return False

    def keep_sync(self, path: Path, sha256: str) -> None:
        """Enter the local file ``path``, whose content has ``sha256``, into the cache
        (a master just made is read again soon)."""
        if not self.enabled:
            return
        entry = self._entry(sha256)
        entry.parent.mkdir(parents=True, exist_ok=True)
        incoming = entry.with_name(f".{entry.name}.{uuid.uuid4().hex}")
        try:
            os.link(path, incoming)
        except OSError:  # no hard links here (another file system): keep a copy
            shutil.copyfile(path, incoming)
        os.replace(incoming, entry)
        self._entered = True

    async def keep(self, path: Path, sha256: str) -> None:
        """:meth:`keep_sync` off the event loop."""
        await asyncio.to_thread(self.keep_sync, path, sha256)

    async def fetch_frame(self, frame: Frame, destination: Path, role: str) -> bool:
        """:meth:`fetch_sync` for a frame or master record; a missing or changed object
        raises :class:`UnusableFileError` naming ``role`` (say "source frame") and the frame."""
        try:
            return await asyncio.to_thread(
                self.fetch_sync, frame.storage_key, frame.sha256, destination
            )
        except ObjectMissingError as error:
            raise UnusableFileError(
                f"{role} {frame.id} ({frame.storage_key}) is missing from storage"
            ) from error
        except ChangedInStorageError as error:
            raise UnusableFileError(f"{role} {frame.id}: {error}") from error

    def trim_sync(self) -> int:
        """Evict least recently used entries until the cache fits its limit, and remove
        abandoned work folders; returns the bytes the entries now take."""
        entries = []
        for folder in self.root.iterdir() if self.root.is_dir() else []:
            if folder.name == WORK_FOLDER:
                self._remove_abandoned_work(folder)
                continue
            for item in os.scandir(folder):
                with contextlib.suppress(FileNotFoundError):
                    stat = item.stat()
                    entries.append((stat.st_mtime, stat.st_size, item.path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.limit_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            total -= size
        return total

    async def trim(self) -> None:
        """:meth:`trim_sync`, when this process has added entries since it last trimmed
        (jobs served wholly from the cache do not list the folder)."""
        if self._entered:
            self._entered = False
            await asyncio.to_thread(self.trim_sync)

    @staticmethod
    def _remove_abandoned_work(work: Path) -> None:
        cutoff = time.time() - ABANDONED_WORK_S
        for item in os.scandir(work):
            with contextlib.suppress(FileNotFoundError):
                if item.stat().st_mtime < cutoff:
                    shutil.rmtree(item.path, ignore_errors=True)
