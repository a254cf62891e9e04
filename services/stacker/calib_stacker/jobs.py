"""One stacking job: download, preprocess, combine, write the master, record it.

Every step is safe to repeat. The master's id and object keys derive from the job, so an
attempt that follows a crashed one overwrites what the dead one uploaded; the object is
written before the record, so a record never points at a missing object; and a job that
ends without a master removes whatever an earlier attempt uploaded. While a replica works
on a job it keeps its claim fresh in MongoDB, so a duplicate request waits instead of
stacking the job a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from calib_core import events
from calib_core.masters import (
    build_master,
    master_id_for_job,
    master_storage_key,
    preview_storage_key,
    provenance_cards,
    temperature_stats,
)
from calib_core.matching import Preprocessing, preprocessing
from calib_core.models import Frame, FrameType, JobStatus, JobTrigger, StackJob
from calib_core.settings import CalibrationSettings
from calib_infra.bus import publish, publish_transient
from calib_infra.filecache import UnusableFileError
from calib_infra.runtime import RetryLater, Runtime
from calib_stack.master import master_stats, write_master_fits
from calib_stack.preview import preview_png
from calib_stack.stacking import stack_files

# Progress milestones (0-1) of a job; stacking moves it from DOWNLOADED to STACKED.
DOWNLOADED = 0.2
STACKED = 0.9
WRITTEN = 0.95  # master FITS and preview written locally
UPLOADED = 0.99  # the master's object is in S3, its record not yet
PROGRESS_INTERVAL_S = 0.5
DOWNLOAD_CONCURRENCY = 4


class JobFailure(Exception):
    """The job cannot succeed as it is; the message is shown to the administrator."""


@dataclass(frozen=True)
class StackedMaster:
    fits_path: Path
    preview_path: Path
    stats: dict
    shape: tuple[int, int]
    """(height, width)"""


async def _announce(runtime: Runtime, job: StackJob, progress: float, status: JobStatus) -> None:
    await publish_transient(
        runtime.broker,
        events.STACK_PROGRESS,
        events.StackProgress(
            job_id=job.id, observatory_id=job.observatory_id, progress=progress, status=status.value
        ),
        observatory_id=job.observatory_id,
    )


class Progress:
    """Live progress on ``stack.progress`` and in the job record: never backwards, at most
    twice a second unless forced (milestones are forced)."""

    def __init__(self, runtime: Runtime, job: StackJob):
        self.runtime, self.job = runtime, job
        self.loop = asyncio.get_running_loop()
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
            await _announce(self.runtime, self.job, fraction, JobStatus.RUNNING)
            await self.runtime.jobs.set_progress(self.job.id, fraction, self.runtime.now())

    def stacking(self, fraction: float) -> None:
        """``stack_files``' progress callback (called from its thread)."""
        asyncio.run_coroutine_threadsafe(
            self.report(DOWNLOADED + (STACKED - DOWNLOADED) * fraction), self.loop
        )


def _lease_s(runtime: Runtime) -> float:
    """How long a claim stays valid without renewal: the consumer's ack wait, after which
    JetStream would also hand the message of a silent replica to another one."""
    return runtime.config.stacker_ack_wait_s


@contextlib.asynccontextmanager
async def _holding(runtime: Runtime, job: StackJob) -> AsyncIterator[None]:
    """Renew the claim on ``job`` while the block runs."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(_lease_s(runtime) / 3)
            try:
                if not await runtime.jobs.touch(job.id, runtime.instance, runtime.now()):
                    runtime.log.warning("claim on the job lost", job_id=job.id)
                    return
            except Exception as error:  # noqa: BLE001 - the next renewal tries again
                runtime.log.warning("claim renewal failed", job_id=job.id, error=str(error))

    renewal = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewal.cancel()


async def _claim(runtime: Runtime, job: StackJob) -> StackJob | None:
    """The job, now ours; None if it needs no work; RetryLater while a live replica holds it."""
    now = runtime.now()
    claimed = await runtime.jobs.claim(
        job.id, runtime.instance, now, stale_before=now - timedelta(seconds=_lease_s(runtime))
    )
    if claimed is not None:
        return claimed
    current = await runtime.jobs.get(job.id)
    if current is not None and current.status == JobStatus.RUNNING:
        # look again when the claim would run out, unless its holder renews it meanwhile
        expires = current.updated_at + timedelta(seconds=_lease_s(runtime)) - runtime.now()
        raise RetryLater(
            f"job {job.id} is being stacked by {current.worker}",
            delay_s=max(expires.total_seconds(), 0.0) + 0.5,
        )
    return None


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def _preprocessing(
    runtime: Runtime, job: StackJob, settings: CalibrationSettings, sample: Frame
) -> Preprocessing | str:
    """The masters to preprocess with, or the reason the job must wait for one."""
    masters = await runtime.frames.current_masters(job.observatory_id)
    return preprocessing(job.frame_type, sample, masters, settings)


async def _download(
    runtime: Runtime,
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
                await runtime.files.fetch_frame(frame, path, what)
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
    await runtime.files.trim()
    for outcome in paths:
        if isinstance(outcome, BaseException):
            raise outcome
    return paths[: len(frames)], paths[len(frames) :]


async def _stack(
    runtime: Runtime,
    job: StackJob,
    settings: CalibrationSettings,
    frames: list[Frame],
    calibration: Preprocessing,
    workdir: Path,
    progress: Progress,
) -> StackedMaster:
    paths, master_paths = await _download(runtime, frames, calibration.masters, workdir, progress)
    local = dict(zip((m.id for m in calibration.masters), master_paths, strict=True))
    names = {str(p): f"frame {f.id} ({f.storage_key})" for p, f in zip(paths, frames, strict=True)}
    names.update(
        {str(local[m.id]): f"master {m.frame_type.value} {m.id}" for m in calibration.masters}
    )
    ccd_dark = job.frame_type == FrameType.DARK and settings.camera_type == "CCD"
    by_exposure = ccd_dark or calibration.dark_rate is not None
    try:
        result = await asyncio.to_thread(
            stack_files,
            paths,
            method=settings.stacking_method,
            sigma=settings.sigma_clip_value,
            maxiters=settings.sigma_clip_iterations,
            memory_limit_mb=runtime.config.stacker_memory_limit_mb,
            subtract=local[calibration.subtract.id] if calibration.subtract else None,
            dark_rate=local[calibration.dark_rate.id] if calibration.dark_rate else None,
            exposures=[f.exposure_s for f in frames] if by_exposure else None,
            normalise=job.frame_type == FrameType.FLAT,
            progress=progress.stacking,
        )
    except (
        ValueError
    ) as error:  # unreadable or odd-sized files, unusable values (InvalidFitsError too)
        text = str(error)
        for path, name in names.items():
            text = text.replace(path, name)
        raise JobFailure(f"stacking failed: {text}") from error
    cards = provenance_cards(job, frames, runtime.now())
    if calibration.subtract is not None:
        cards.append(
            (
                "CALPRE",
                calibration.subtract.id,
                f"master {calibration.subtract.frame_type.value} subtracted",
            )
        )
    if calibration.dark_rate is not None:
        cards.append(
            ("CALDARK", calibration.dark_rate.id, "master dark rate x exposure subtracted")
        )
    fits_path, preview_path = workdir / "master.fits", workdir / "preview.png"
    (
        image_stats,
        preview,
    ) = await asyncio.gather(  # side by side: the kernels and zlib release the GIL
        asyncio.to_thread(master_stats, result.image, job.frame_type.value),
        asyncio.to_thread(preview_png, result.image),
    )
    # only then: astropy byte-swaps the image in place while it writes it
    await asyncio.to_thread(write_master_fits, fits_path, result.image, cards)
    preview_path.write_bytes(preview)
    await progress.report(WRITTEN, force=True)
    stats = {
        **image_stats,
        "rejected_fraction": result.rejected_fraction,
        **temperature_stats(frames),
    }
    return StackedMaster(fits_path, preview_path, stats, result.image.shape)


async def _discard_objects(runtime: Runtime, job: StackJob) -> None:
    """Remove the master object and preview an earlier attempt of ``job`` may have left."""
    master_id = master_id_for_job(job.id)
    await runtime.store.delete(master_storage_key(job.observatory_id, master_id))
    await runtime.store.delete(preview_storage_key(job.observatory_id, master_id))


async def _record(runtime: Runtime, master: Frame) -> Frame:
    """Insert the master's record. If another attempt recorded it meanwhile (a replica that
    lost its claim while still alive), keep that record and make it describe the object
    now in S3, which this attempt may have overwritten (same pixels, other header time)."""
    if await runtime.frames.insert(master):
        return master
    existing = await runtime.frames.get(master.id)
    if existing is None:
        raise JobFailure(f"another frame of observatory {master.observatory_id} has the same file")
    stored = await runtime.store.scan(existing.storage_key, 0)
    if stored.sha256 != existing.sha256:
        await runtime.frames.update(
            existing.id, {"sha256": stored.sha256, "size_bytes": stored.size}
        )
    return existing


async def _finish(runtime: Runtime, job: StackJob, master: Frame) -> None:
    await runtime.frames.claim(master.components or [], master.id)
    await runtime.jobs.finish(job.id, JobStatus.SUCCEEDED, runtime.now(), master_id=master.id)
    await publish(
        runtime.broker,
        events.MASTER_CREATED,
        events.MasterCreated(
            master_id=master.id, observatory_id=master.observatory_id, job_id=job.id
        ),
        observatory_id=master.observatory_id,
        msg_id=f"created-{master.id}",
    )
    await _announce(runtime, job, 1.0, JobStatus.SUCCEEDED)
    runtime.log.info(
        "master created",
        master_id=master.id,
        job_id=job.id,
        observatory_id=master.observatory_id,
        n_frames=master.n_frames,
    )


async def _fail(runtime: Runtime, job: StackJob, reason: str) -> None:
    runtime.log.warning(
        "stacking job failed", job_id=job.id, observatory_id=job.observatory_id, error=reason
    )
    await _discard_objects(runtime, job)
    await runtime.jobs.finish(job.id, JobStatus.FAILED, runtime.now(), error=reason)
    await publish(
        runtime.broker,
        events.STACK_FAILED,
        events.StackFailed(job_id=job.id, observatory_id=job.observatory_id, reason=reason),
        observatory_id=job.observatory_id,
        msg_id=f"failed-{job.id}-{job.attempts}",
    )


async def _defer(runtime: Runtime, job: StackJob, reason: str) -> None:
    runtime.log.info(reason, job_id=job.id, observatory_id=job.observatory_id)
    await _discard_objects(runtime, job)
    await runtime.jobs.defer(job.id, reason, runtime.now())
    await publish(
        runtime.broker,
        events.STACK_DEFERRED,
        events.StackDeferred(job_id=job.id, observatory_id=job.observatory_id, reason=reason),
        observatory_id=job.observatory_id,
        msg_id=f"deferred-{job.id}-{job.attempts}",
    )


async def _work(runtime: Runtime, job: StackJob) -> None:
    """Stack a claimed job into its master, or fail, defer or drop it."""
    log = runtime.log.bind(job_id=job.id, observatory_id=job.observatory_id)
    settings = CalibrationSettings(**job.settings)
    frames = await runtime.frames.many(job.frame_ids)
    if not frames:
        await _fail(runtime, job, "none of the job's frames exist any more")
        return
    if (
        job.trigger in (JobTrigger.REGISTRATION, JobTrigger.SWEEP)
        and sum(f.master_id is None for f in frames) < settings.min_frames_for_master
    ):
        # queued by a trigger that counted frames a master claimed meanwhile: nothing new
        log.info("redundant automatic job dropped")
        await _discard_objects(runtime, job)
        await runtime.jobs.delete(job.id)
        return
    calibration = await _preprocessing(runtime, job, settings, frames[0])
    if isinstance(calibration, str):
        await _defer(runtime, job, calibration)
        return
    progress = Progress(runtime, job)
    await progress.report(0.0, force=True)
    log.info("stacking", frames=len(frames), method=settings.stacking_method)
    with runtime.files.workdir(prefix="stack-") as workdir:
        try:
            stacked = await _stack(runtime, job, settings, frames, calibration, workdir, progress)
        except JobFailure as failure:
            await _fail(runtime, job, str(failure))
            return
        height, width = stacked.shape
        master = build_master(
            job,
            frames,
            width=width,
            height=height,
            size_bytes=stacked.fits_path.stat().st_size,
            sha256=await asyncio.to_thread(_sha256_of, stacked.fits_path),
            stats=stacked.stats,
            now=runtime.now(),
        )
        # The object first, then the record: a record never points at a missing object.
        await runtime.store.put_file(master.storage_key, stacked.fits_path)
        await asyncio.to_thread(runtime.files.keep_sync, stacked.fits_path, master.sha256)
        await progress.report(UPLOADED, force=True)
        await runtime.store.put_file(
            master.preview_key, stacked.preview_path, content_type="image/png"
        )
    try:
        master = await _record(runtime, master)
    except JobFailure as failure:
        await _fail(runtime, job, str(failure))
        return
    await _finish(runtime, job, master)


async def run_job(runtime: Runtime, job_id: str) -> None:
    """Handle one ``stack.requested``; a job that is already closed is acknowledged without work."""
    job = await runtime.jobs.get(job_id)
    if job is None or job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        return
    recorded = await runtime.frames.get(master_id_for_job(job.id))
    if recorded is not None:  # an attempt died after recording the master: finish its bookkeeping
        await _finish(runtime, job, recorded)
        return
    claimed = await _claim(runtime, job)
    if claimed is None:
        return
    async with _holding(runtime, claimed):
        await _work(runtime, claimed)
