"""One stacking job: download, preprocess, combine, write the master, record it."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from pathlib import Path

import msgspec

from calib_core import events
from calib_core.masters import (
    build_master,
    master_id_for_job,
    preview_storage_key,
    provenance_cards,
)
from calib_core.matching import find_master, prerequisite_type
from calib_core.models import Frame, FrameType, JobStatus, JobTrigger, StackJob
from calib_core.settings import CalibrationSettings
from calib_core.triggers import CCD_DARK_DEFERRED_REASON, FLAT_DEFERRED_REASON
from calib_infra.bus import publish, publish_transient
from calib_infra.runtime import Runtime
from calib_infra.store import ObjectMissingError
from calib_stack.fitsio import InvalidFitsError
from calib_stack.master import master_stats, write_master_fits
from calib_stack.preview import preview_png
from calib_stack.stacking import stack_files

DOWNLOAD_SHARE = 0.2  # of the progress bar
PROGRESS_INTERVAL_S = 0.5


class JobFailure(Exception):
    """The job cannot succeed as it is; the message is shown to the administrator."""


class Progress:
    """Reports job progress to the page (``stack.progress``) and MongoDB, at most twice a second."""

    def __init__(self, runtime: Runtime, job: StackJob):
        self.runtime, self.job = runtime, job
        self.loop = asyncio.get_running_loop()
        self.sent_at = 0.0

    async def report(self, fraction: float, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.sent_at < PROGRESS_INTERVAL_S:
            return
        self.sent_at = now
        fraction = round(min(max(fraction, 0.0), 1.0), 4)
        await publish_transient(
            self.runtime.broker, events.STACK_PROGRESS,
            events.StackProgress(job_id=self.job.id, observatory_id=self.job.observatory_id,
                                 progress=fraction, status=JobStatus.RUNNING.value),
            observatory_id=self.job.observatory_id,
        )
        await self.runtime.jobs.set_progress(self.job.id, fraction, self.runtime.now())

    def from_thread(self, fraction: float) -> None:
        asyncio.run_coroutine_threadsafe(
            self.report(DOWNLOAD_SHARE + (1 - DOWNLOAD_SHARE) * fraction), self.loop
        )


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def _prerequisite(runtime: Runtime, job: StackJob, settings: CalibrationSettings,
                        sample: Frame) -> Frame | None | str:
    """The master to preprocess with, None if none is needed, or the deferral reason."""
    needed = prerequisite_type(job.frame_type, settings)
    if needed is None:
        return None
    masters = await runtime.frames.current_masters(job.observatory_id, needed)
    found = find_master(masters, frame_type=needed, target=sample, settings=settings)
    if found is not None:
        return found
    return FLAT_DEFERRED_REASON if job.frame_type == FrameType.FLAT else CCD_DARK_DEFERRED_REASON


async def _stack(runtime: Runtime, job: StackJob, settings: CalibrationSettings, frames: list[Frame],
                 calibration: Frame | None, workdir: Path,
                 progress: Progress) -> tuple[Path, Path, dict, tuple[int, int]]:
    paths: list[Path] = []
    for index, frame in enumerate(frames):
        path = workdir / f"{index:04d}-{frame.id}.fits"
        try:
            await runtime.store.download(frame.storage_key, path)
        except ObjectMissingError as error:
            raise JobFailure(f"source frame {frame.id} ({frame.storage_key}) is missing from storage") from error
        paths.append(path)
        await progress.report(DOWNLOAD_SHARE * (index + 1) / len(frames))
    subtract = None
    if calibration is not None:
        subtract = workdir / "calibration-master.fits"
        await runtime.store.download(calibration.storage_key, subtract)
    ccd_dark = job.frame_type == FrameType.DARK and settings.camera_type == "CCD"
    names = {str(p): f"{f.id} ({f.storage_key})" for p, f in zip(paths, frames, strict=True)}
    try:
        result = await asyncio.to_thread(
            stack_files, paths,
            method=settings.stacking_method,
            sigma=settings.sigma_clip_value,
            maxiters=settings.sigma_clip_iterations,
            memory_limit_mb=runtime.config.stacker_memory_limit_mb,
            subtract=subtract,
            exposures=[f.exposure_s for f in frames] if ccd_dark else None,
            normalise=job.frame_type == FrameType.FLAT,
            progress=progress.from_thread,
        )
    except InvalidFitsError as error:
        text = str(error)
        for path, name in names.items():
            text = text.replace(path, name)
        raise JobFailure(f"stacking failed: {text}") from error
    created_at = runtime.now()
    master_path = workdir / "master.fits"
    cards = provenance_cards(job, frames, created_at)
    if calibration is not None:
        cards.append(("CALPRE", calibration.id, f"master {calibration.frame_type.value} subtracted"))
    stats = master_stats(result.image, job.frame_type.value)
    stats["rejected_fraction"] = result.rejected_fraction
    await asyncio.to_thread(write_master_fits, master_path, result.image, cards)
    preview_path = workdir / "preview.png"
    preview_path.write_bytes(await asyncio.to_thread(preview_png, result.image))
    return master_path, preview_path, stats, result.image.shape


async def _publish_created(runtime: Runtime, master: Frame, job: StackJob) -> None:
    await runtime.frames.claim(master.components or [], master.id)
    await runtime.jobs.finish(job.id, JobStatus.SUCCEEDED, runtime.now(), master_id=master.id)
    await publish(
        runtime.broker, events.MASTER_CREATED,
        events.MasterCreated(master_id=master.id, observatory_id=master.observatory_id, job_id=job.id),
        observatory_id=master.observatory_id, msg_id=f"created-{master.id}",
    )
    runtime.log.info("master created", master_id=master.id, job_id=job.id,
                     observatory_id=master.observatory_id, n_frames=master.n_frames)


async def _fail(runtime: Runtime, job: StackJob, reason: str) -> None:
    runtime.log.warning("stacking job failed", job_id=job.id, observatory_id=job.observatory_id, error=reason)
    await runtime.jobs.finish(job.id, JobStatus.FAILED, runtime.now(), error=reason)
    await publish(
        runtime.broker, events.STACK_FAILED,
        events.StackFailed(job_id=job.id, observatory_id=job.observatory_id, reason=reason),
        observatory_id=job.observatory_id, msg_id=f"failed-{job.id}-{job.attempts}",
    )


async def run_job(runtime: Runtime, job_id: str) -> None:
    """Handle one ``stack.requested``; every step is safe to repeat after a crash."""
    job = await runtime.jobs.get(job_id)
    if job is None or job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DEFERRED):
        return
    master_id = master_id_for_job(job.id)
    finished = await runtime.frames.get(master_id)
    if finished is not None:  # crashed after recording the master: finish the bookkeeping
        await _publish_created(runtime, finished, job)
        return
    claimed = await runtime.jobs.claim(job.id, runtime.instance, runtime.now())
    if claimed is None:
        return
    job = claimed
    log = runtime.log.bind(job_id=job.id, observatory_id=job.observatory_id)
    settings = CalibrationSettings(**job.settings)
    frames = await runtime.frames.many(job.frame_ids)
    if not frames:
        await _fail(runtime, job, "none of the job's frames exist any more")
        return
    if job.trigger in (JobTrigger.REGISTRATION, JobTrigger.SWEEP) and sum(
        f.master_id is None for f in frames
    ) < settings.min_frames_for_master:
        # queued by a trigger that counted frames a master claimed meanwhile: nothing new
        log.info("redundant automatic job dropped")
        await runtime.jobs.delete(job.id)
        return
    calibration = await _prerequisite(runtime, job, settings, frames[0])
    if isinstance(calibration, str):
        log.info(calibration)
        await runtime.jobs.defer(job.id, calibration, runtime.now())
        await publish(
            runtime.broker, events.STACK_DEFERRED,
            events.StackDeferred(job_id=job.id, observatory_id=job.observatory_id, reason=calibration),
            observatory_id=job.observatory_id, msg_id=f"deferred-{job.id}-{job.attempts}",
        )
        return
    progress = Progress(runtime, job)
    await progress.report(0.0, force=True)
    log.info("stacking", frames=len(frames), method=settings.stacking_method)
    with tempfile.TemporaryDirectory(prefix="calib-stack-") as tmp:
        try:
            master_path, preview_path, stats, (height, width) = await _stack(
                runtime, job, settings, frames, calibration, Path(tmp), progress)
        except JobFailure as failure:
            await _fail(runtime, job, str(failure))
            return
        master = build_master(
            job, frames, width=width, height=height, size_bytes=master_path.stat().st_size,
            sha256=_sha256_of(master_path), stats=stats, now=runtime.now(),
        )
        # The object first, then the record: a record never points at a missing object.
        await runtime.store.put_file(master.storage_key, master_path)
        await runtime.store.put_file(preview_storage_key(job.observatory_id, master.id), preview_path,
                                     content_type="image/png")
    if not await runtime.frames.insert(master):
        existing = await runtime.frames.get(master.id)
        if existing is None:  # same pixels already stored under another id: nothing new
            await runtime.store.delete(master.storage_key)
            await _fail(runtime, job, "an identical master already exists")
            return
        master = existing
    await progress.report(1.0, force=True)
    await _publish_created(runtime, master, job)


async def handle_stack_request(runtime: Runtime, body: bytes, subject: str) -> None:
    try:
        request = msgspec.json.decode(body, type=events.StackRequested)
    except msgspec.DecodeError as error:
        runtime.log.error("invalid stack.requested ignored", subject=subject, error=str(error))
        return
    await run_job(runtime, request.job_id)
