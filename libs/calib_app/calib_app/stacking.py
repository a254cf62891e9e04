"""Run one stacking job: download, preprocess, combine, write the master, record it.

Every step is safe to repeat. The master's id and object keys derive from the job, so an
attempt that follows a crashed one overwrites what the dead one uploaded; the object is
written before the record, so a record never points at a missing object; and a job that
ends without a master removes whatever an earlier attempt uploaded. While a replica works
on a job it keeps its claim fresh in the job repository, so a duplicate request waits
instead of stacking the job a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from calib_app.ports import (
    Clock,
    EventPublisher,
    FrameFiles,
    FrameRepository,
    JobRepository,
    Log,
    MasterBuilder,
    NoMetrics,
    ObjectStore,
    RetryLater,
    StackingError,
    UnusableFileError,
    WorkMetrics,
)
from calib_core import events
from calib_core.masters import (
    build_master,
    master_id_for_job,
    master_storage_key,
    preview_storage_key,
    provenance_cards,
    temperature_stats,
)
from calib_core.matching import (
    Preprocessing,
    cmos_flat_darks,
    missing_darks_reason,
    preprocessing,
)
from calib_core.models import Frame, FrameType, JobStatus, StackJob
from calib_core.quality import gate_failures
from calib_core.settings import CalibrationSettings
from calib_core.stacking_rules import (
    frames_needed,
    is_redundant,
    preprocessing_cards,
    stack_recipe,
)

# Progress milestones (0-1) of a job; stacking moves it from DOWNLOADED to STACKED.
DOWNLOADED = 0.2
STACKED = 0.9
WRITTEN = 0.95  # master FITS and preview written locally
UPLOADED = 0.99  # the master's object is in S3, its record not yet
PROGRESS_INTERVAL_S = 0.5
DOWNLOAD_CONCURRENCY = 4
#: How a claimed job ended (the ``outcome`` of :meth:`WorkMetrics.stack_job_finished`).
SUCCEEDED, FAILED, DEFERRED, DROPPED = "succeeded", "failed", "deferred", "dropped"


@dataclass(frozen=True)
class Stacking:
    """What a stacking job needs from the world."""

    frames: FrameRepository
    jobs: JobRepository
    store: ObjectStore
    files: FrameFiles
    builder: MasterBuilder
    events: EventPublisher
    clock: Clock
    log: Log
    worker: str
    """This replica's name on the jobs it claims."""
    lease_s: float
    """How long a claim stays valid without renewal: the consumer's ack wait, after which
    JetStream would also hand the message of a silent replica to another one."""
    metrics: WorkMetrics = NoMetrics()


class JobFailure(Exception):
    """The job cannot succeed as it is; the message is shown to the administrator."""


@dataclass(frozen=True)
class StackedMaster:
    """A master written locally, not yet uploaded."""

    fits_path: Path
    preview_path: Path
    shape: tuple[int, int]
    """(height, width)"""
    size_bytes: int
    sha256: str
    stats: dict[str, Any]


async def _announce(stacking: Stacking, job: StackJob, progress: float, status: JobStatus) -> None:
    await stacking.events.publish_transient(
        events.STACK_PROGRESS,
        events.StackProgress(
            job_id=job.id, observatory_id=job.observatory_id, progress=progress, status=status.value
        ),
        observatory_id=job.observatory_id,
    )


class Progress:
    """Live progress on ``stack.progress`` and in the job record: never backwards, at most
    twice a second unless forced (milestones are forced)."""

    def __init__(self, stacking: Stacking, job: StackJob):
        self.stacking, self.job = stacking, job
        self.lock = asyncio.Lock()
        self.last = -1.0
        self.sent_at = 0.0

    async def report(self, fraction: float, *, force: bool = False) -> None:
        fraction = round(min(max(fraction, 0.0), 1.0), 4)
        async with self.lock:
            now = time.monotonic()
            if fraction <= self.last or (not force and now - self.sent_at < PROGRESS_INTERVAL_S):
                return
            self.last, self.sent_at = fraction, now
            await _announce(self.stacking, self.job, fraction, JobStatus.RUNNING)
            await self.stacking.jobs.set_progress(self.job.id, fraction, self.stacking.clock.now())

    async def stacked(self, fraction: float) -> None:
        """The builder's progress: ``fraction`` of the stacking is done."""
        await self.report(DOWNLOADED + (STACKED - DOWNLOADED) * fraction)


@contextlib.asynccontextmanager
async def _holding(stacking: Stacking, job: StackJob) -> AsyncIterator[None]:
    """Renew the claim on ``job`` while the block runs."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(stacking.lease_s / 3)
            try:
                if not await stacking.jobs.touch(job.id, stacking.worker, stacking.clock.now()):
                    stacking.log.warning("claim on the job lost", job_id=job.id)
                    return
            except Exception as error:  # noqa: BLE001 - the next renewal tries again
                stacking.log.warning("claim renewal failed", job_id=job.id, error=str(error))

    renewal = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewal.cancel()


async def _claim(stacking: Stacking, job: StackJob) -> StackJob | None:
    """The job, now ours; None if it needs no work; RetryLater while a live replica holds it."""
    lease = timedelta(seconds=stacking.lease_s)
    now = stacking.clock.now()
    claimed = await stacking.jobs.claim(job.id, stacking.worker, now, stale_before=now - lease)
    if claimed is not None:
        return claimed
    current = await stacking.jobs.get(job.id)
    if current is not None and current.status == JobStatus.RUNNING:
        # look again when the claim would run out, unless its holder renews it meanwhile
        expires = current.updated_at + lease - stacking.clock.now()
        raise RetryLater(
            f"job {job.id} is being stacked by {current.worker}",
            delay_s=max(expires.total_seconds(), 0.0) + 0.5,
        )
    return None


async def _download(
    stacking: Stacking,
    frames: list[Frame],
    calibration: list[Frame],
    workdir: Path,
    progress: Progress,
) -> tuple[list[Path], list[Path]]:
    """The job's files, from the local cache or a few at a time from storage; a missing or
    changed object fails the job naming its frame."""
    slots = asyncio.Semaphore(DOWNLOAD_CONCURRENCY)
    done = 0

    async def fetch(frame: Frame, path: Path, what: str) -> Path:
        nonlocal done
        async with slots:
            try:
                await stacking.files.fetch_frame(frame, path, what)
            except UnusableFileError as error:
                raise JobFailure(str(error)) from error
        done += 1
        await progress.report(DOWNLOADED * done / (len(frames) + len(calibration)))
        return path

    fetches = [
        fetch(frame, workdir / f"{index:04d}-{frame.id}.fits", "source frame")
        for index, frame in enumerate(frames)
    ]
    fetches += [
        fetch(master, workdir / f"master-{master.id}.fits", f"master {master.frame_type.value}")
        for master in calibration
    ]
    # every download ends before the first failure is raised: none writes into a removed folder
    paths = await asyncio.gather(*fetches, return_exceptions=True)
    await stacking.files.trim()
    for outcome in paths:
        if isinstance(outcome, BaseException):
            raise outcome
    return paths[: len(frames)], paths[len(frames) :]


def _named(error: Exception, names: dict[str, str]) -> str:
    """An error of the numerics, with the local paths it names replaced by what they are."""
    text = str(error)
    for path, name in names.items():
        text = text.replace(path, name)
    return text


async def _pass_gates(
    stacking: Stacking,
    job: StackJob,
    settings: CalibrationSettings,
    frames: list[Frame],
    paths: list[Path],
) -> tuple[list[Frame], list[Path]]:
    """The frames (and their files) that pass the quality gates; the others are held with
    their reasons. Too few left for the job fails it."""
    if not settings.quality_gates_enabled:
        return frames, paths
    try:
        measured = await stacking.builder.measure(paths)
    except StackingError as error:
        names = {
            str(p): f"frame {f.id} ({f.storage_key})" for p, f in zip(paths, frames, strict=True)
        }
        raise JobFailure(f"measuring failed: {_named(error, names)}") from error
    failures = gate_failures(job.frame_type, measured, settings)
    if not failures:
        return frames, paths
    reasons = {frames[i].id: reason for i, reason in failures.items()}
    await stacking.frames.hold(reasons)
    stacking.log.info(
        "frames held by the quality gates",
        job_id=job.id,
        observatory_id=job.observatory_id,
        held=reasons,
    )
    kept = [i for i in range(len(frames)) if i not in failures]
    needed = frames_needed(job, settings)
    if len(kept) < needed:
        raise JobFailure(
            f"the quality gates held {len(failures)} of {len(frames)} frames (see the held"
            f" frames); {len(kept)} remain, {needed} needed"
        )
    return [frames[i] for i in kept], [paths[i] for i in kept]


async def _stack(
    stacking: Stacking,
    job: StackJob,
    settings: CalibrationSettings,
    frames: list[Frame],
    calibration: Preprocessing,
    workdir: Path,
    progress: Progress,
) -> tuple[list[Frame], StackedMaster]:
    """The frames that passed the gates, and the master stacked from them."""
    paths, master_paths = await _download(stacking, frames, calibration.masters, workdir, progress)
    frames, paths = await _pass_gates(stacking, job, settings, frames, paths)
    local = dict(zip((m.id for m in calibration.masters), master_paths, strict=True))
    names = {str(p): f"frame {f.id} ({f.storage_key})" for p, f in zip(paths, frames, strict=True)}
    names.update(
        {str(local[m.id]): f"master {m.frame_type.value} {m.id}" for m in calibration.masters}
    )
    try:
        if calibration.dark_by_frame:
            subtract: Path | list[Path] | None = [
                local[calibration.dark_by_frame[f.id].id] for f in frames
            ]
        else:
            subtract = local[calibration.subtract.id] if calibration.subtract else None
        image = await stacking.builder.stack(
            paths,
            stack_recipe(job, frames, settings, calibration),
            subtract=subtract,
            dark_rate=local[calibration.dark_rate.id] if calibration.dark_rate else None,
            progress=progress.stacked,
        )
    except StackingError as error:
        raise JobFailure(f"stacking failed: {_named(error, names)}") from error
    cards = provenance_cards(job, frames, stacking.clock.now()) + preprocessing_cards(calibration)
    fits_path, preview_path = workdir / "master.fits", workdir / "preview.png"
    written = await stacking.builder.write(image, job.frame_type, cards, fits_path, preview_path)
    await progress.report(WRITTEN, force=True)
    stats = {
        **written.stats,
        "rejected_fraction": image.rejected_fraction,
        **temperature_stats(frames),
    }
    return frames, StackedMaster(
        fits_path, preview_path, image.shape, written.size_bytes, written.sha256, stats
    )


async def _discard_objects(stacking: Stacking, job: StackJob) -> None:
    """Remove the master object and preview an earlier attempt of ``job`` may have left."""
    master_id = master_id_for_job(job.id)
    await stacking.store.delete(master_storage_key(job.observatory_id, master_id))
    await stacking.store.delete(preview_storage_key(job.observatory_id, master_id))


async def _record(stacking: Stacking, master: Frame) -> Frame:
    """Insert the master's record. If another attempt recorded it meanwhile (a replica that
    lost its claim while still alive), keep that record and make it describe the object
    now in S3, which this attempt may have overwritten (same pixels, other header time)."""
    if await stacking.frames.insert(master):
        return master
    existing = await stacking.frames.get(master.id)
    if existing is None:
        raise JobFailure(f"another frame of observatory {master.observatory_id} has the same file")
    stored = await stacking.store.scan(existing.storage_key, 0)
    if stored.sha256 != existing.sha256:
        await stacking.frames.update(
            existing.id, {"sha256": stored.sha256, "size_bytes": stored.size}
        )
    return existing


async def _finish(stacking: Stacking, job: StackJob, master: Frame) -> None:
    await stacking.frames.claim(master.components or [], master.id)
    await stacking.jobs.finish(
        job.id, JobStatus.SUCCEEDED, stacking.clock.now(), master_id=master.id
    )
    # progress 1.0 first: watchers see the job complete before they see its master announced
    await _announce(stacking, job, 1.0, JobStatus.SUCCEEDED)
    await stacking.events.publish(
        events.MASTER_CREATED,
        events.MasterCreated(
            master_id=master.id, observatory_id=master.observatory_id, job_id=job.id
        ),
        observatory_id=master.observatory_id,
        msg_id=f"created-{master.id}",
    )
    stacking.log.info(
        "master created",
        master_id=master.id,
        job_id=job.id,
        observatory_id=master.observatory_id,
        n_frames=master.n_frames,
    )


async def _fail(stacking: Stacking, job: StackJob, reason: str) -> None:
    stacking.log.warning(
        "stacking job failed", job_id=job.id, observatory_id=job.observatory_id, error=reason
    )
    await _discard_objects(stacking, job)
    await stacking.jobs.finish(job.id, JobStatus.FAILED, stacking.clock.now(), error=reason)
    await stacking.events.publish(
        events.STACK_FAILED,
        events.StackFailed(job_id=job.id, observatory_id=job.observatory_id, reason=reason),
        observatory_id=job.observatory_id,
        msg_id=f"failed-{job.id}-{job.attempts}",
    )


async def _defer(stacking: Stacking, job: StackJob, reason: str) -> None:
    stacking.log.info(reason, job_id=job.id, observatory_id=job.observatory_id)
    await _discard_objects(stacking, job)
    await stacking.jobs.defer(job.id, reason, stacking.clock.now())
    await stacking.events.publish(
        events.STACK_DEFERRED,
        events.StackDeferred(job_id=job.id, observatory_id=job.observatory_id, reason=reason),
        observatory_id=job.observatory_id,
        msg_id=f"deferred-{job.id}-{job.attempts}",
    )


async def _work(stacking: Stacking, job: StackJob) -> str:
    """Stack a claimed job into its master, or fail, defer or drop it; returns which."""
    log = stacking.log.bind(job_id=job.id, observatory_id=job.observatory_id)
    settings = CalibrationSettings(**job.settings)
    frames = [f for f in await stacking.frames.many(job.frame_ids) if not f.held]
    if not frames:
        await _fail(stacking, job, "none of the job's frames exist any more (or all are held)")
        return FAILED
    if is_redundant(job, frames, settings):
        log.info("redundant automatic job dropped")
        await _discard_objects(stacking, job)
        await stacking.jobs.delete(job.id)
        return DROPPED
    masters = await stacking.frames.current_masters(job.observatory_id)
    if job.frame_type == FrameType.FLAT and settings.camera_type == "CMOS":
        darks, missing = cmos_flat_darks(frames, masters, settings)
        ready = [f for f in frames if f.id in darks]
        if missing and len(ready) < frames_needed(job, settings):
            await _defer(stacking, job, missing_darks_reason(missing))
            return DEFERRED
        if missing:
            log.info("flats without a master dark wait", exposures_s=missing)
        frames, calibration = ready, Preprocessing(dark_by_frame=darks)
    else:
        calibration = preprocessing(job.frame_type, frames[0], masters, settings)
        if isinstance(calibration, str):
            await _defer(stacking, job, calibration)
            return DEFERRED
    progress = Progress(stacking, job)
    await progress.report(0.0, force=True)
    log.info("stacking", frames=len(frames), method=settings.stacking_method)
    with stacking.files.workdir(prefix="stack-") as workdir:
        try:
            frames, stacked = await _stack(
                stacking, job, settings, frames, calibration, workdir, progress
            )
        except JobFailure as failure:
            await _fail(stacking, job, str(failure))
            return FAILED
        height, width = stacked.shape
        master = build_master(
            job,
            frames,
            width=width,
            height=height,
            size_bytes=stacked.size_bytes,
            sha256=stacked.sha256,
            stats=stacked.stats,
            now=stacking.clock.now(),
        )
        # The object first, then the record: a record never points at a missing object.
        await stacking.store.put_file(master.storage_key, stacked.fits_path)
        await stacking.files.keep(stacked.fits_path, master.sha256)
        await progress.report(UPLOADED, force=True)
        await stacking.store.put_file(
            master.preview_key, stacked.preview_path, content_type="image/png"
        )
    try:
        master = await _record(stacking, master)
    except JobFailure as failure:
        await _fail(stacking, job, str(failure))
        return FAILED
    await _finish(stacking, job, master)
    return SUCCEEDED


async def run_job(stacking: Stacking, job_id: str) -> None:
    """Handle one ``stack.requested``; a job that is already closed is acknowledged without work."""
    job = await stacking.jobs.get(job_id)
    if job is None or job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        return
    recorded = await stacking.frames.get(master_id_for_job(job.id))
    if recorded is not None:  # an attempt died after recording the master: finish its bookkeeping
        await _finish(stacking, job, recorded)
        return
    try:
        claimed = await _claim(stacking, job)
        if claimed is None:
            return
        started = time.monotonic()
        async with _holding(stacking, claimed):
            outcome = await _work(stacking, claimed)
        stacking.metrics.stack_job_finished(outcome, time.monotonic() - started)
    except asyncio.CancelledError:
        # this replica is stopping: give the job back so another takes it at once (also
        # when stopped just as its claim was written: giving back only touches our own)
        await asyncio.shield(stacking.jobs.give_back(job.id, stacking.worker, stacking.clock.now()))
        stacking.log.info("stopping: job given back", job_id=job.id)
        raise
