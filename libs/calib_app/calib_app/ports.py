"""The ports: what a use case needs from the world, as Protocols.

Adapters in ``calib_infra`` implement them over MongoDB, S3 and NATS; the in-memory
fakes in ``tests/unit/app/fakes.py`` implement them for the fast tests. A use case takes
the ports it uses and nothing else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import msgspec

from calib_core import events
from calib_core.access import ApiToken, User
from calib_core.calibration import CacheEntry
from calib_core.deadletters import DeadLetter, DeadLetterStatus
from calib_core.lifecycle import MaintenanceTask
from calib_core.models import Frame, FrameType, JobStatus, Observatory, Rejection, StackJob
from calib_core.presigned import PendingUpload
from calib_core.quality import FrameMeasurement
from calib_core.settings import CalibrationSettings
from calib_core.stacking_rules import StackRecipe


class RetryLater(Exception):
    """Raised by a use case that cannot act on its message yet (not a failure): the
    message goes back to the stream and is redelivered after ``delay_s``."""

    def __init__(self, reason: str, delay_s: float):
        super().__init__(reason)
        self.delay_s = delay_s


class FrameRepository(Protocol):
    async def insert(self, frame: Frame) -> bool:
        """Store a frame; False when the same file (observatory + sha256) is already stored."""
        ...

    async def insert_many(self, frames: Sequence[Frame]) -> list[bool]:
        """Store frames in one round trip; per frame, False when its file was already stored."""
        ...

    async def get(self, frame_id: str) -> Frame | None: ...

    async def by_file(self, observatory_id: str, sha256: str) -> Frame | None: ...

    async def many(self, frame_ids: Sequence[str]) -> list[Frame]: ...

    async def same_hardware(self, frame: Frame) -> list[Frame]:
        """Individual frames that can share a group with ``frame`` (settings-independent)."""
        ...

    async def unclaimed_calibration_frames(self, observatory_id: str) -> list[Frame]: ...

    async def calibration_frames(self, observatory_id: str, **filters: Any) -> list[Frame]: ...

    async def current_masters(
        self, observatory_id: str, frame_type: FrameType | None = None
    ) -> list[Frame]: ...

    async def claim(self, frame_ids: Sequence[str], master_id: str) -> None: ...

    async def release(self, master_id: str) -> None:
        """Frames claimed by ``master_id`` become unclaimed again."""
        ...

    async def hold(self, reasons: dict[str, str]) -> None:
        """Hold individual frames (by id), each with its reason: they stop being stacked."""
        ...

    async def hold_claimed(self, master_id: str, reason: str) -> None:
        """The frames claimed by ``master_id`` become unclaimed and held with ``reason``."""
        ...

    async def unhold(self, frame_ids: Sequence[str]) -> None:
        """Release held frames: they can be stacked again."""
        ...

    async def update(self, frame_id: str, changes: dict[str, Any]) -> None: ...

    async def components(self, master: Frame) -> list[Frame]: ...

    async def library_page(
        self,
        observatory_id: str,
        filters: dict[str, Any],
        *,
        contains: dict[str, str] | None = None,
        skip: int,
        limit: int,
    ) -> tuple[list[Frame], int]:
        """One page of an observatory's library, newest first, and the total. ``filters``
        are equality conditions on plain values (the API never passes operators);
        ``contains``: fields whose text holds the given text, ignoring case (the text is
        matched as it is, never as a pattern)."""
        ...

    async def recent_lights(self, observatory_id: str, since: datetime) -> list[Frame]:
        """Light frames captured (or, without a capture time, registered) since ``since``."""
        ...

    async def tally(self, observatory_id: str) -> list[dict[str, Any]]:
        """Frame counts by camera, type, master flag, status and claimed (in a master) or not."""
        ...

    async def delete(self, frame_id: str) -> None: ...

    async def masters(self, observatory_id: str) -> list[Frame]:
        """Every master of an observatory, whatever its status."""
        ...

    async def supersede(self, master_id: str, by: str, at: datetime) -> bool:
        """Mark a current master superseded; False if it no longer was current."""
        ...

    async def superseded_by(self, master_id: str) -> list[Frame]: ...

    async def expire(self, master_id: str) -> bool:
        """Mark an active master expired; False if it no longer was active."""
        ...

    async def mark_deleting(self, frame_id: str) -> None:
        """First step of a deletion: a record so marked is finished by the next cleanup."""
        ...

    async def pending_deletions(self, observatory_id: str | None = None) -> list[Frame]: ...

    async def remove_component(self, frame_id: str) -> None:
        """A deleted source frame leaves the masters it was stacked into."""
        ...

    async def referenced_keys(
        self, keys: Sequence[str], *, except_id: str | None = None
    ) -> set[str]:
        """Which of ``keys`` a frame record (other than ``except_id``) names as its file
        or preview."""
        ...


class JobRepository(Protocol):
    async def create(self, job: StackJob) -> StackJob | None:
        """Insert an open job; None when its configuration already has one (unique ``open_key``).

        One open job per configuration, not per temperature cluster: a cluster's identity
        shifts as frames arrive, a configuration's does not. Other clusters of the same
        configuration are queued by the sweep that follows each new master."""
        ...

    async def get(self, job_id: str) -> StackJob | None: ...

    async def open_job_for(self, observatory_id: str, config_key: str) -> StackJob | None: ...

    async def last_failed(self, observatory_id: str, config_key: str) -> StackJob | None:
        """The most recent failed job of a configuration, if its latest job failed."""
        ...

    async def configurations_with_open_jobs(
        self, observatory_id: str, config_keys: Sequence[str]
    ) -> set[str]:
        """Which of ``config_keys`` have an open job (one query for a batch of frames)."""
        ...

    async def claim(
        self, job_id: str, worker: str, now: datetime, *, stale_before: datetime | None = None
    ) -> StackJob | None:
        """Take a queued job, or a running one whose holder died (its message came back).

        With ``stale_before``, a running job is taken only if its holder has not touched
        it since (a live holder keeps ``updated_at`` fresh with :meth:`touch`), so a
        duplicate request never starts a second stacking of a job that is being stacked."""
        ...

    async def touch(self, job_id: str, worker: str, now: datetime) -> bool:
        """The holder of a running job renews its claim; False when the job is no longer its."""
        ...

    async def give_back(self, job_id: str, worker: str, now: datetime) -> bool:
        """The holder stops without finishing: the job is queued again for any replica."""
        ...

    async def set_progress(self, job_id: str, progress: float, now: datetime) -> None: ...

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
        ...

    async def defer(self, job_id: str, reason: str, now: datetime) -> None: ...

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
        ...

    async def list(
        self, observatory_id: str, status: str | None = None, limit: int = 200
    ) -> list[StackJob]: ...

    async def deferred(self, observatory_id: str | None = None) -> list[StackJob]: ...

    async def open_jobs(self, observatory_id: str) -> list[StackJob]: ...

    async def delete(self, job_id: str) -> None: ...


class SettingsRepository(Protocol):
    async def get(self, observatory_id: str) -> CalibrationSettings: ...

    async def put(self, observatory_id: str, settings: CalibrationSettings) -> None: ...


class ObservatoryRepository(Protocol):
    async def create(self, observatory: Observatory) -> bool: ...

    async def get(self, observatory_id: str) -> Observatory | None: ...

    async def existing(self, observatory_ids: Sequence[str]) -> set[str]:
        """Which of ``observatory_ids`` exist (one query for a batch of events)."""
        ...

    async def all(self) -> list[Observatory]: ...


class RejectionRepository(Protocol):
    async def record(self, rejection: Rejection) -> bool:
        """Store a rejection once per event id; False when it was already stored."""
        ...

    async def list(self, observatory_id: str, limit: int = 200) -> list[Rejection]: ...


class DeadLetterRepository(Protocol):
    """Messages a consumer failed to handle (``dead_letters``), by :attr:`DeadLetter.id`:
    ``retrying`` while their failures are counted, then ``dead`` (SPEC §12)."""

    async def count_failure(self, letter: DeadLetter) -> int:
        """One more failed delivery of ``letter``'s message: stored as given (status
        ``retrying``, one attempt) at its first failure, else its attempts counted up and
        its ``error`` and ``last_seen`` updated. Returns the attempts counted so far."""
        ...

    async def bury(self, letter_id: str, now: datetime) -> None:
        """The message is given up on: status ``dead``."""
        ...

    async def record(self, letter: DeadLetter) -> None:
        """Store ``letter`` as given (a permanent failure), replacing a record of the
        same message."""
        ...

    async def forget(self, letter_ids: Sequence[str]) -> None:
        """The messages got through after all: their ``retrying`` records go (a dead or
        replayed letter stays)."""
        ...

    async def get(self, letter_id: str) -> DeadLetter | None: ...

    async def list(
        self, statuses: Sequence[DeadLetterStatus], limit: int = 200
    ) -> list[DeadLetter]:
        """Records of these statuses, the most recently failed first."""
        ...

    async def count(self, statuses: Sequence[DeadLetterStatus]) -> int: ...

    async def replayed(self, letter_id: str, msg_id: str, now: datetime) -> DeadLetter | None:
        """Mark a dead (or replayed) letter replayed once more under ``msg_id``; None when
        there is no such dead letter."""
        ...


class HeartbeatRepository(Protocol):
    async def beat(self, service: str, instance: str, now: datetime) -> None: ...

    async def all(self) -> list[dict[str, Any]]: ...


class AccountRepository(Protocol):
    """Users and their bearer tokens (``users``, ``tokens``); a token is stored only as its
    hash."""

    async def save_user(self, user: User) -> None:
        """Create or update a user; an update keeps its ``created_at``."""
        ...

    async def user(self, user_id: str) -> User | None: ...

    async def users(self) -> list[User]:
        """Every user, by id."""
        ...

    async def add_token(self, token: ApiToken) -> str:
        """Store a token unless one with its hash is stored; returns the stored one's id."""
        ...

    async def live_token(self, token_hash: str) -> ApiToken | None:
        """The unrevoked token with this hash."""
        ...

    async def live_token_ids(self) -> dict[str, list[str]]:
        """The ids of the unrevoked user tokens, by user id."""
        ...

    async def live_among(self, token_ids: Sequence[str]) -> set[str]:
        """Which of these token ids are of unrevoked tokens."""
        ...

    async def revoke(self, token_id: str) -> bool:
        """False when there is no such token (a revoked one is revoked again)."""
        ...

    async def reinstate(self, token_hash: str) -> None:
        """The token with this hash is live again."""
        ...


class CalibrationCacheRepository(Protocol):
    """Calibrated lights in the S3 cache (``calibrated``): one entry per light."""

    async def get(self, light_id: str) -> CacheEntry | None: ...

    async def many(self, light_ids: Sequence[str]) -> dict[str, CacheEntry]:
        """The entries of these lights, by light id."""
        ...

    async def put(self, entry: CacheEntry) -> None: ...

    async def entries(self, observatory_id: str | None = None) -> list[CacheEntry]: ...

    async def mark_deleting(self, light_id: str) -> None: ...

    async def pending_deletions(self, observatory_id: str | None = None) -> list[CacheEntry]: ...

    async def delete(self, light_id: str, storage_key: str | None) -> None:
        """Remove the entry, unless it was replaced meanwhile (a new plan, a new key)."""
        ...

    async def referenced_keys(self, keys: Sequence[str]) -> set[str]: ...


class MaintenanceRunRepository(Protocol):
    """When each daily maintenance task last ran server-wide (``maintenance_runs``)."""

    async def last_run(self, task: str) -> datetime | None: ...

    async def record(self, task: str, finished_at: datetime, report: dict[str, Any]) -> None: ...


class PendingUploadRepository(Protocol):
    """Presigned uploads handed out to plugins (``pending_uploads``), one per storage key."""

    async def add(self, upload: PendingUpload) -> None: ...

    async def get(self, storage_key: str) -> PendingUpload | None: ...

    async def referenced_keys(self, keys: Sequence[str], *, expiring_from: datetime) -> set[str]:
        """Which of ``keys`` a pending upload whose URL expires at ``expiring_from`` or
        later names."""
        ...

    async def remove_expired(self, before: datetime, observatory_id: str | None = None) -> int:
        """Remove the pending uploads (of one observatory, or all) whose URL expired before
        ``before``; how many went."""
        ...


class EventBacklog(Protocol):
    """The ``frame.registered`` events on the stream that the registry has not handled yet."""

    async def unhandled_storage_keys(self, observatory_id: str | None) -> set[str] | None:
        """The storage keys they name (one observatory's, or all); None when that cannot be
        known now (the bus is down, or the backlog is longer than one reading)."""
        ...


class ObjectMissingError(FileNotFoundError):
    """The object a key names is not in the bucket."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime | None


@dataclass(frozen=True)
class ScannedObject:
    """What one streamed read of an object tells: its size, digest and first bytes."""

    size: int
    sha256: str
    head: bytes


@dataclass(frozen=True)
class Delivery:
    """A message as the bus delivered it, not yet decoded (a batch consumer hands these
    over, so the use case judges an undecodable body itself)."""

    subject: str
    body: bytes


class ObjectStore(Protocol):
    """The S3 bucket."""

    async def put_file(
        self, key: str, path: str | Path, content_type: str = "application/fits"
    ) -> None: ...

    async def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None: ...

    async def put_stream(
        self, key: str, stream: IO[bytes], content_type: str = "application/fits"
    ) -> None:
        """Upload a file object of unknown length, read from its current position."""
        ...

    async def delete(self, key: str) -> None: ...

    def read_chunks(self, key: str) -> AsyncIterator[bytes]:
        """The whole object, chunk by chunk as it is read (for streaming it on). Raises
        :class:`ObjectMissingError` at the first chunk."""
        ...

    async def read_range(self, key: str, offset: int, length: int) -> bytes:
        """Bytes ``offset`` to ``offset + length``: fewer at the end of the object, none for
        a range that starts at or past its end (any range of an empty object); ``length``
        0 reads to the end (``read_range(key, 0, 0)``: the whole object). Raises
        :class:`ObjectMissingError`."""
        ...

    async def scan(self, key: str, head_bytes: int) -> ScannedObject:
        """Stream the whole object once: its size, sha256 and first ``head_bytes``."""
        ...

    async def stat(self, key: str) -> ObjectInfo | None: ...

    def list_batches(self, prefix: str, size: int) -> AsyncIterator[list[ObjectInfo]]: ...

    async def presigned_put(self, key: str, expires: timedelta) -> str:
        """A URL that lets anyone PUT ``key`` (and only it) for ``expires``, without the
        bucket's credentials, signed for the address plugins reach the store at."""
        ...


class UnusableFileError(Exception):
    """A recorded frame's file cannot be had as it was recorded; the message names the frame."""


class FrameFiles(Protocol):
    """Local copies of stored frames for the numerics (the stacker's and lifecycle's
    file cache), checked against the recorded sha256."""

    def workdir(self, prefix: str) -> AbstractContextManager[Path]:
        """A private folder, removed afterwards."""
        ...

    async def fetch_frame(self, frame: Frame, destination: Path, role: str) -> bool:
        """Copy ``frame``'s object to ``destination``; True when it came from the cache.
        A missing or changed object raises :class:`UnusableFileError` naming ``role`` (say
        "source frame") and the frame."""
        ...

    async def keep(self, path: Path, sha256: str) -> None:
        """Enter a local file just made (a master, read again soon) into the cache."""
        ...

    async def trim(self) -> None: ...


class InvalidImageError(ValueError):
    """A file is not an image the numerics can use (unreadable, not 2-D, or of another size
    than the light it calibrates); the message names the file by its local path."""


class LightCalibrator(Protocol):
    """The numerics of calibrating a light. CPU-heavy: an adapter runs them off the event
    loop."""

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
        """Write ``(light - bias - dark * dark_scale) / (flat / flat_scale)`` to ``output``
        (float32 FITS: the light's header, then ``cards``); a missing master is left out.
        Raises :class:`InvalidImageError`."""
        ...


@dataclass(frozen=True)
class MasterDescription:
    stats: dict[str, Any]
    """The image's statistics, as the stacker records them for the masters it makes."""
    preview_png: bytes


class MasterDescriber(Protocol):
    """The numerics that describe a master made elsewhere (an uploaded one)."""

    async def describe(self, path: Path, frame_type: FrameType) -> MasterDescription:
        """Statistics and a preview of the master FITS file at ``path``. Raises
        :class:`InvalidImageError`."""
        ...

    async def preview(self, path: Path) -> bytes:
        """The PNG preview of the FITS file at ``path`` (an individual frame). Raises
        :class:`InvalidImageError`."""
        ...


R = TypeVar("R")


class LifecycleService(Protocol):
    """The lifecycle service, asked over request/reply (replicas share the requests)."""

    async def calibrate(self, frame_id: str) -> events.CalibrateReply:
        """The calibrated light of ``frame_id``: computed and cached, or from the cache."""
        ...

    async def preview(self, frame_id: str) -> events.PreviewReply:
        """The preview of frame ``frame_id``: made and stored, or found."""
        ...

    async def maintenance(
        self, task: MaintenanceTask, observatory_id: str | None, report_type: type[R]
    ) -> R:
        """Run ``task`` for one observatory (or all, ``None``) and return its report."""
        ...


class EventPublisher(Protocol):
    """The bus, for what a use case announces (SPEC §10)."""

    async def publish(
        self, kind: str, body: msgspec.Struct, *, observatory_id: str, msg_id: str | None
    ) -> None:
        """Persisted on the stream; ``msg_id`` makes a repeat publish a no-op."""
        ...

    async def publish_transient(
        self, kind: str, body: msgspec.Struct, *, observatory_id: str
    ) -> None:
        """Core NATS, not persisted (live progress)."""
        ...


class MessageReplayer(Protocol):
    """The bus, for giving a dead letter's message back to the stream as it was."""

    async def republish(self, subject: str, body: bytes, *, msg_id: str) -> None:
        """Persist ``body`` on the stream under ``subject``; a repeat ``msg_id`` is a no-op."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """UTC now."""
        ...


class Log(Protocol):
    """A structured logger (structlog's bound logger is one)."""

    def info(self, event: str, **fields: Any) -> Any: ...

    def warning(self, event: str, **fields: Any) -> Any: ...

    def error(self, event: str, **fields: Any) -> Any: ...

    def exception(self, event: str, **fields: Any) -> Any: ...

    def bind(self, **fields: Any) -> Log:
        """A logger that adds ``fields`` to every event."""
        ...


class WorkMetrics(Protocol):
    """What the use cases count for operators (Prometheus, in ``calib_infra.metrics``)."""

    def frame_registered(self, observatory_id: str, frame_type: FrameType) -> None: ...

    def frame_rejected(self, reason: str) -> None:
        """A rejection, by its reason (the adapter counts it by the reason's kind)."""
        ...

    def stack_job_finished(self, outcome: str, seconds: float) -> None:
        """A stacking job ended as ``outcome`` (``succeeded``, ``failed``, ``deferred``,
        ``dropped``) after ``seconds`` of work."""
        ...


class NoMetrics:
    """:class:`WorkMetrics` that counts nothing (tools and tests that do not look)."""

    def frame_registered(self, observatory_id: str, frame_type: FrameType) -> None:
        pass

    def frame_rejected(self, reason: str) -> None:
        pass

    def stack_job_finished(self, outcome: str, seconds: float) -> None:
        pass


class StackingError(Exception):
    """The files cannot be stacked as they are (unreadable, of unequal sizes, unusable
    values); the message names the files by their local paths."""


class StackedImage(Protocol):
    """A master image combined by a :class:`MasterBuilder`, held until it is written."""

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)"""
        ...

    @property
    def rejected_fraction(self) -> float:
        """The fraction of the sources' pixel values rejected by sigma clipping."""
        ...


@dataclass(frozen=True)
class WrittenMaster:
    stats: dict[str, Any]
    """The image's statistics (median, noise, hot pixels ...)."""
    size_bytes: int
    sha256: str
    """Of the FITS file."""


class MasterBuilder(Protocol):
    """The numerics of a stacking job. They are CPU-heavy: an adapter runs them off the
    event loop."""

    async def measure(self, sources: Sequence[Path]) -> list[FrameMeasurement]:
        """Robust statistics of each FITS file, in order, for the quality gates. Raises
        :class:`StackingError` for an unreadable file."""
        ...

    async def stack(
        self,
        sources: Sequence[Path],
        recipe: StackRecipe,
        *,
        subtract: Path | Sequence[Path] | None,
        dark_rate: Path | None,
        progress: Callable[[float], Awaitable[None]],
    ) -> StackedImage:
        """Combine the FITS files ``sources`` after subtracting the master ``subtract``
        (one for all, or one per source) and ``dark_rate`` × exposure from each;
        ``progress(fraction)`` is awaited on the event loop as the work advances. Raises
        :class:`StackingError`."""
        ...

    async def write(
        self,
        image: StackedImage,
        frame_type: FrameType,
        cards: Sequence[tuple[str, Any, str]],
        fits_path: Path,
        preview_path: Path,
    ) -> WrittenMaster:
        """Write ``image`` as the master FITS file (header ``cards``) and its PNG preview."""
        ...
