"""One stacking job (calib_app.stacking) over the fakes and the real numerics: SPEC §5
preprocessing checked against the synthetic camera's truth, the master's file, record,
provenance and statistics, live progress, and the jobs that end without a master
(deferred, failed, dropped, duplicate, held by another replica) leaving nothing behind."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from datetime import timedelta

import numpy as np
import pytest
from astropy.io import fits

from calib_app.ports import RetryLater
from calib_app.stacking import Stacking, run_job
from calib_core import events
from calib_core.masters import master_id_for_job, master_storage_key, preview_storage_key
from calib_core.models import Frame, JobStatus, JobTrigger, StackJob
from calib_core.settings import CalibrationSettings
from calib_stack import synthetic
from calib_stacker.numerics import ThreadedMasterBuilder
from tests.unit.app.fakes import FakeWorld
from tests.unit.core import factories as make

# Small frames; enough hot pixels to count on a 64x48 sensor.
CAMERA = synthetic.Camera(name="Stacker Test Cam", width=64, height=48, hot_pixel_fraction=0.005)
MIN_FRAMES = 5
LEASE_S = 30.0
WORKER = "stacker-test"


def stacking_of(world: FakeWorld, **overrides) -> Stacking:
    values = {
        "frames": world.frames,
        "jobs": world.jobs,
        "store": world.store,
        "files": world.files,
        "builder": ThreadedMasterBuilder(memory_limit_mb=64),
        "events": world.events,
        "clock": world.clock,
        "log": world.log,
        "worker": WORKER,
        "lease_s": LEASE_S,
        "metrics": world.metrics,
    }
    values.update(overrides)
    return Stacking(**values)


async def store_frame(world: FakeWorld, data: bytes, frame_type: str, **fields) -> Frame:
    """Record a frame of :data:`CAMERA` whose file holds ``data``, as the registry would."""
    sha256 = hashlib.sha256(data).hexdigest()
    frame = make.frame(
        frame_type,
        camera_name=CAMERA.name,
        gain=CAMERA.gain,
        offset=CAMERA.offset,
        width=CAMERA.width,
        height=CAMERA.height,
        sha256=sha256,
        size_bytes=len(data),
        **fields,
    )
    await world.store.put_bytes(frame.storage_key, data)
    assert await world.frames.insert(frame)
    return frame


def dark_data(index: int, *, exposure_s: float, temperature_c: float, seed: int = 0, camera=CAMERA):
    rng = np.random.default_rng(seed * 1000 + index)
    return synthetic.fits_bytes(
        synthetic.dark_frame(
            camera, exposure_s=exposure_s, temperature_c=temperature_c, rng=rng, cosmic_rays=False
        ),
        None,
    )


async def store_darks(
    world: FakeWorld, exposures: list[float], *, temperature_c: float = -10.0, seed: int = 0
) -> list[Frame]:
    return [
        await store_frame(
            world,
            dark_data(i, exposure_s=t, temperature_c=temperature_c, seed=seed),
            "dark",
            exposure_s=t,
            temperature_c=temperature_c,
        )
        for i, t in enumerate(exposures)
    ]


async def store_biases(world: FakeWorld, count: int, *, temperature_c: float) -> list[Frame]:
    return [
        await store_frame(
            world,
            synthetic.fits_bytes(
                synthetic.bias_frame(CAMERA, rng=np.random.default_rng(500 + i)), None
            ),
            "bias",
            exposure_s=0.0,
            temperature_c=temperature_c,
        )
        for i in range(count)
    ]


async def store_flats(
    world: FakeWorld, count: int, *, exposure_s: float, temperature_c: float, level_adu: float
) -> list[Frame]:
    return [
        await store_frame(
            world,
            synthetic.fits_bytes(
                synthetic.flat_frame(
                    CAMERA,
                    filter_name="L",
                    exposure_s=exposure_s,
                    temperature_c=temperature_c,
                    rng=np.random.default_rng(900 + i),
                    level_adu=level_adu,
                ),
                None,
            ),
            "flat",
            exposure_s=exposure_s,
            temperature_c=temperature_c,
            filter="L",
        )
        for i in range(count)
    ]


async def queue(
    world: FakeWorld,
    frames: list[Frame],
    settings: CalibrationSettings | None = None,
    *,
    trigger: JobTrigger = JobTrigger.MANUAL,
) -> StackJob:
    frame_type = frames[0].frame_type
    job = make.job(
        frame_type,
        id=uuid.uuid4().hex[:12],
        config_key=f"cfg-{frame_type.value}",
        configuration={"frame_type": frame_type.value},
        status=JobStatus.QUEUED,
        trigger=trigger,
        frame_ids=[f.id for f in frames],
        settings_obj=settings or CalibrationSettings(),
        created_at=world.now(),
        updated_at=world.now(),
    )
    assert await world.jobs.create(job) is not None
    return job


async def stacked(
    world: FakeWorld, frames: list[Frame], settings: CalibrationSettings | None = None
) -> tuple[StackJob, Frame | None]:
    """Queue and run a manual job of ``frames``: the closed job and its master, if any."""
    job = await queue(world, frames, settings)
    await run_job(stacking_of(world), job.id)
    done = await world.jobs.get(job.id)
    return done, await world.frames.get(master_id_for_job(job.id))


def read_master(world: FakeWorld, master: Frame) -> tuple[fits.Header, np.ndarray]:
    with fits.open(io.BytesIO(world.store.data(master.storage_key))) as hdul:
        return hdul[0].header.copy(), np.array(hdul[0].data)


def keys(world: FakeWorld, prefix: str) -> list[str]:
    return sorted(k for k in world.store.objects if k.startswith(prefix))


async def assert_nothing_left(world: FakeWorld, job: StackJob) -> None:
    """No master record, object or preview in the observatory, and no frame claimed."""
    assert await world.frames.masters(job.observatory_id) == []
    assert keys(world, f"masters/{job.observatory_id}/") == []
    assert keys(world, f"previews/{job.observatory_id}/") == []
    assert all(f.master_id is None for f in await world.frames.many(job.frame_ids))


# -- a master ---------------------------------------------------------------------------


async def test_a_job_stacks_its_frames_into_a_recorded_master():
    world = FakeWorld()
    temperatures = [-10.0, -10.2, -9.8, -10.1, -9.9]
    frames = [
        await store_frame(
            world,
            dark_data(i, exposure_s=30.0, temperature_c=t),
            "dark",
            exposure_s=30.0,
            temperature_c=t,
        )
        for i, t in enumerate(temperatures)
    ]
    job, master = await stacked(world, frames)

    assert job.status == JobStatus.SUCCEEDED and job.attempts == 1 and job.worker == WORKER
    [(outcome, seconds)] = world.metrics.jobs
    assert outcome == "succeeded" and seconds > 0
    assert job.master_id == master.id == master_id_for_job(job.id) and job.progress == 1.0
    assert master.is_master and master.n_frames == 5 and master.job_id == job.id
    assert sorted(master.components) == sorted(f.id for f in frames)
    stored = world.store.data(master.storage_key)
    assert master.sha256 == hashlib.sha256(stored).hexdigest()
    assert master.size_bytes == len(stored) and world.files.kept == [master.sha256]
    assert (master.width, master.height) == (CAMERA.width, CAMERA.height)
    assert master.temperature_min_c == -10.2 and master.temperature_max_c == -9.8
    assert all(f.master_id == master.id for f in await world.frames.many(job.frame_ids))

    header, pixels = read_master(world, master)
    ids = sorted(f.id for f in frames)
    assert pixels.dtype == np.dtype(">f4") and header["BITPIX"] == -32
    assert header["NCOMBINE"] == 5 and header["CALMETH"] == "sigma_clip"
    assert header["CLIPSIG"] == 3.0 and header["CLIPITER"] == 5
    assert header["INSTRUME"] == CAMERA.name and header["EXPTIME"] == 30.0
    assert header["GAIN"] == CAMERA.gain and header["OFFSET"] == CAMERA.offset
    assert header["TEMPMIN"] == -10.2 and header["TEMPMAX"] == -9.8
    assert header["CCD-TEMP"] == pytest.approx(-10.0)
    assert header["CALMSTR"] == master.id and header["CALJOB"] == job.id
    assert header["SWCREATE"].startswith("calib ") and "CALPRE" not in header
    assert sorted(header[f"SRC{i:04d}"] for i in range(1, 6)) == ids
    assert header["SRCDIGST"] == hashlib.sha256("\n".join(ids).encode()).hexdigest()

    stats = master.stats
    assert stats["median"] == pytest.approx(float(np.median(pixels)), rel=1e-6)
    assert stats["robust_std"] > 0 and stats["hot_pixels"] >= 1
    assert 0 <= stats["rejected_fraction"] < 0.05
    assert (stats["temperature_min_c"], stats["temperature_max_c"]) == (-10.2, -9.8)
    assert stats["temperature_mean_c"] == pytest.approx(-10.0)

    preview = world.store.objects[master.preview_key]
    assert preview.content_type == "image/png" and preview.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(preview.data[16:20], "big") == CAMERA.width  # IHDR width
    assert world.store.objects[master.storage_key].content_type == "application/fits"

    [created] = [m for m in world.events.published if m.kind == events.MASTER_CREATED]
    assert created.body == events.MasterCreated(
        master_id=master.id, observatory_id=job.observatory_id, job_id=job.id
    )
    assert created.msg_id == f"created-{master.id}"
    assert world.log.find("master created")[0].fields["n_frames"] == 5


async def test_same_frames_and_settings_give_bit_identical_pixels():
    world = FakeWorld()
    frames = await store_darks(world, [30.0] * MIN_FRAMES)
    first_job, first = await stacked(world, frames)
    second_job, second = await stacked(world, frames)  # a manual job re-stacks claimed frames
    assert first_job.status == second_job.status == JobStatus.SUCCEEDED
    first_header, first_pixels = read_master(world, first)
    second_header, second_pixels = read_master(world, second)
    assert first_pixels.tobytes() == second_pixels.tobytes()
    assert first_header["CALJOB"] != second_header["CALJOB"]  # two masters, the same pixels
    assert keys(world, "masters/") == sorted([first.storage_key, second.storage_key])


async def test_progress_is_published_live_and_never_goes_backwards():
    world = FakeWorld()
    job, _ = await stacked(world, await store_darks(world, [30.0] * MIN_FRAMES))
    reports = [m.body for m in world.events.transient]
    assert {m.subject for m in world.events.transient} == {f"stack.progress.{job.observatory_id}"}
    values = [r.progress for r in reports]
    assert values == sorted(set(values)) and values[0] == 0.0 and values[-1] == 1.0
    assert {0.95, 0.99} <= set(values)  # written locally, then uploaded
    assert [r.status for r in reports][-1] == "succeeded"
    assert {r.status for r in reports[:-1]} == {"running"}
    assert all(r.job_id == job.id for r in reports)


# -- preprocessing (SPEC §5), checked against the synthetic camera's truth ---------------


async def test_ccd_master_dark_is_the_bias_subtracted_dark_rate():
    """CCD darks of several exposures stack into one rate map (ADU/s) after the master
    bias is subtracted from each."""
    world = FakeWorld()
    ccd = CalibrationSettings(camera_type="CCD")
    temperature = 10.0
    _, bias = await stacked(world, await store_biases(world, MIN_FRAMES, temperature_c=10.0), ccd)
    exposures = [120.0, 180.0, 240.0, 300.0, 300.0]
    darks = await store_darks(world, exposures, temperature_c=temperature, seed=1)
    _, dark = await stacked(world, darks, ccd)

    header, rate = read_master(world, dark)
    assert header["BUNIT"] == "adu/s" and header["CALPRE"] == bias.id
    assert header["BITPIX"] == -32 and header["NCOMBINE"] == len(exposures)
    assert dark.method_params["unit"] == "adu/s"
    truth = synthetic.dark_rate(CAMERA, temperature)
    residual = rate - truth
    # per pixel: the mean of (read noise + shot noise) / exposure over the frames, plus the
    # noise of the master bias divided by the exposure
    t = np.array(exposures)[:, None, None]
    variance = ((CAMERA.read_noise_adu**2 + truth[None] * t) / t**2).sum(axis=0) / len(
        exposures
    ) ** 2 + CAMERA.read_noise_adu**2 / MIN_FRAMES * float(np.mean(1 / t)) ** 2
    noise = float(np.sqrt(np.median(variance)))
    assert abs(float(np.median(residual))) < 0.1 * noise  # no bias left: it would be ~500/exposure
    assert 0.5 * noise < 1.4826 * float(np.median(np.abs(residual))) < 1.5 * noise
    rows, cols = synthetic.hot_pixels(CAMERA)
    np.testing.assert_allclose(rate[rows, cols], truth[rows, cols], rtol=0.15)  # a rate, not counts
    assert dark.stats["hot_pixels"] == pytest.approx(len(rows), abs=2)


async def test_master_flat_is_dark_subtracted_and_normalised_to_one():
    world = FakeWorld()
    temperature, exposure, level = -10.0, 2.0, 5000.0  # the bias (~500 ADU) would show
    darks = await store_darks(world, [exposure] * MIN_FRAMES, temperature_c=temperature, seed=2)
    _, dark = await stacked(world, darks)
    flats = await store_flats(
        world, MIN_FRAMES, exposure_s=exposure, temperature_c=temperature, level_adu=level
    )
    _, flat = await stacked(world, flats)

    header, pixels = read_master(world, flat)
    assert header["CALPRE"] == dark.id and header["FILTER"] == "L"
    assert float(np.median(pixels)) == pytest.approx(1.0, abs=1e-6)
    assert flat.stats["median"] == pytest.approx(1.0, abs=1e-6)
    truth = synthetic.flat_field(CAMERA, "L")
    residual = pixels - truth
    noise = 1 / np.sqrt(level * MIN_FRAMES)  # shot noise of the summed flats, relative
    assert 1.4826 * float(np.median(np.abs(residual))) < 1.5 * noise
    # without the dark subtracted the vignetting would be compressed by level/(level+bias):
    # a slope of about -0.09 of the residual against the flat field
    assert abs(np.polyfit((truth - 1).ravel(), residual.ravel(), 1)[0]) < 0.02


async def test_ccd_master_flat_loses_the_bias_and_the_dark_rate_times_its_exposure():
    world = FakeWorld()
    ccd = CalibrationSettings(camera_type="CCD")
    temperature, exposure, level = 10.0, 30.0, 5000.0
    _, bias = await stacked(
        world, await store_biases(world, MIN_FRAMES, temperature_c=temperature), ccd
    )
    darks = await store_darks(world, [300.0] * MIN_FRAMES, temperature_c=temperature, seed=3)
    _, dark = await stacked(world, darks, ccd)
    flats = await store_flats(
        world, MIN_FRAMES, exposure_s=exposure, temperature_c=temperature, level_adu=level
    )
    _, flat = await stacked(world, flats, ccd)

    header, pixels = read_master(world, flat)
    assert header["CALPRE"] == bias.id and header["CALDARK"] == dark.id
    assert float(np.median(pixels)) == pytest.approx(1.0, abs=1e-6)
    truth = synthetic.flat_field(CAMERA, "L")
    residual = pixels - truth
    assert 1.4826 * float(np.median(np.abs(residual))) < 1.5 / np.sqrt(level * MIN_FRAMES)
    # the bias left in compresses the vignetting: slope ≈ -0.09
    assert abs(np.polyfit((truth - 1).ravel(), residual.ravel(), 1)[0]) < 0.02


# the reasons are SPEC §5's words, logged and shown to the administrator
FLAT_WITHOUT_DARK = "Flat auto-stacking deferred: no matching master dark available"
DARK_WITHOUT_BIAS = "Dark auto-stacking deferred: no matching master bias available"


@pytest.mark.parametrize(
    ("frame_type", "settings", "reason"),
    [
        ("flat", CalibrationSettings(), f"{FLAT_WITHOUT_DARK} (flat exposure 60 s)"),
        ("flat", CalibrationSettings(camera_type="CCD"), FLAT_WITHOUT_DARK),
        ("dark", CalibrationSettings(camera_type="CCD"), DARK_WITHOUT_BIAS),
    ],
)
async def test_a_job_without_its_preprocessing_master_is_deferred(frame_type, settings, reason):
    world = FakeWorld()
    frames = [await store_frame(world, b"unread %d" % i, frame_type) for i in range(3)]
    job = await queue(world, frames, settings)
    # an earlier attempt's upload, left behind
    await world.store.put_bytes(master_storage_key(job.observatory_id, f"m{job.id}"), b"old")
    await run_job(stacking_of(world), job.id)

    deferred = await world.jobs.get(job.id)
    assert deferred.status == JobStatus.DEFERRED and deferred.deferred_reason == reason
    [notice] = world.events.published
    assert notice.kind == events.STACK_DEFERRED and notice.msg_id == f"deferred-{job.id}-1"
    assert notice.body == events.StackDeferred(
        job_id=job.id, observatory_id=job.observatory_id, reason=reason
    )
    assert world.log.find(reason, level="info")
    assert world.files.fetches == [] and world.events.transient == []
    assert [outcome for outcome, _ in world.metrics.jobs] == ["deferred"]
    await assert_nothing_left(world, job)


async def test_a_ccd_flat_with_a_dark_but_no_bias_is_deferred_for_the_bias():
    world = FakeWorld()
    ccd = CalibrationSettings(camera_type="CCD")
    await world.frames.insert(
        make.master(
            "dark",
            camera_name=CAMERA.name,
            gain=CAMERA.gain,
            offset=CAMERA.offset,
            temperature_c=-10.0,
        )
    )
    job = await queue(world, [await store_frame(world, b"never read", "flat")], ccd)
    await run_job(stacking_of(world), job.id)
    reason = "Flat auto-stacking deferred: no matching master bias available"
    assert (await world.jobs.get(job.id)).deferred_reason == reason


# -- jobs that end without a master -------------------------------------------------------


async def test_without_gates_frames_of_unequal_size_fail_the_job_naming_the_odd_frame():
    world = FakeWorld()
    small = synthetic.Camera(name=CAMERA.name, width=32, height=24)
    frames = await store_darks(world, [60.0] * 4)
    odd = await store_frame(
        world, dark_data(9, exposure_s=60.0, temperature_c=-10.0, camera=small), "dark"
    )
    job = await queue(world, [*frames, odd], CalibrationSettings(quality_gates_enabled=False))
    await run_job(stacking_of(world), job.id)

    failed = await world.jobs.get(job.id)
    assert failed.status == JobStatus.FAILED and failed.error.startswith("stacking failed: ")
    assert odd.id in failed.error and odd.storage_key in failed.error and "32x24" in failed.error
    assert all(f.id not in failed.error for f in frames)
    assert str(world.files.fetches[0].destination.parent) not in failed.error  # no local paths
    [notice] = world.events.published
    assert notice.kind == events.STACK_FAILED and notice.msg_id == f"failed-{job.id}-1"
    assert notice.body.reason == failed.error
    assert world.log.find("stacking job failed", level="warning")[0].fields["error"] == failed.error
    await assert_nothing_left(world, job)


async def test_a_frame_changed_in_storage_fails_the_job_naming_it():
    world = FakeWorld()
    frames = await store_darks(world, [60.0] * 4)
    await world.store.put_bytes(frames[2].storage_key, b"cut short")
    job = await queue(world, frames)
    await run_job(stacking_of(world), job.id)

    failed = await world.jobs.get(job.id)
    assert failed.status == JobStatus.FAILED
    assert frames[2].id in failed.error and frames[2].storage_key in failed.error
    assert "changed in storage since it was recorded" in failed.error
    assert world.events.bodies(events.STACK_FAILED)[0].reason == failed.error
    assert world.files.trims == 1  # the cache is trimmed after the downloads, failed or not
    await assert_nothing_left(world, job)


async def test_a_failed_attempt_removes_what_an_earlier_attempt_uploaded():
    world = FakeWorld()
    frames = await store_darks(world, [60.0] * 3)
    await world.store.delete(frames[0].storage_key)
    job = await queue(world, frames)
    master_id = master_id_for_job(job.id)
    await world.store.put_bytes(master_storage_key(job.observatory_id, master_id), b"fits")
    await world.store.put_bytes(preview_storage_key(job.observatory_id, master_id), b"png")
    await run_job(stacking_of(world), job.id)

    failed = await world.jobs.get(job.id)
    assert failed.status == JobStatus.FAILED and "is missing from storage" in failed.error
    await assert_nothing_left(world, job)


async def test_a_job_whose_frames_are_all_gone_fails():
    world = FakeWorld()
    frames = await store_darks(world, [60.0] * 3)
    job = await queue(world, frames)
    for frame in frames:
        await world.frames.delete(frame.id)
    await run_job(stacking_of(world), job.id)
    failed = await world.jobs.get(job.id)
    assert failed.status == JobStatus.FAILED
    assert failed.error == "none of the job's frames exist any more (or all are held)"
    assert [outcome for outcome, _ in world.metrics.jobs] == ["failed"]


async def test_a_redundant_automatic_job_is_dropped_without_work():
    """Queued by a trigger that counted frames a master claimed meanwhile."""
    world = FakeWorld()
    frames = await store_darks(world, [60.0] * MIN_FRAMES)
    job = await queue(world, frames, trigger=JobTrigger.SWEEP)
    await world.frames.claim([f.id for f in frames[:2]], "m-meanwhile")
    await run_job(stacking_of(world), job.id)

    assert await world.jobs.get(job.id) is None  # its group may be queued again
    assert world.log.find("redundant automatic job dropped")[0].fields["job_id"] == job.id
    assert world.files.fetches == [] and world.events.published == []
    assert [outcome for outcome, _ in world.metrics.jobs] == ["dropped"]


# -- repeated and concurrent requests -----------------------------------------------------


async def test_a_duplicate_request_of_a_closed_job_is_acknowledged_without_work():
    world = FakeWorld()
    job, master = await stacked(world, await store_darks(world, [60.0] * 3))
    published, fetched = len(world.events.published), len(world.files.fetches)
    world.clock.advance(minutes=5)
    await run_job(stacking_of(world), job.id)
    await run_job(stacking_of(world), "no-such-job")

    again = await world.jobs.get(job.id)
    assert again.attempts == 1 and again.finished_at == job.finished_at
    assert len(world.events.published) == published and len(world.files.fetches) == fetched
    assert keys(world, "masters/") == [master.storage_key]


async def test_a_claim_held_by_a_fresh_lease_is_refused_until_it_runs_out():
    world = FakeWorld()
    job = await queue(world, await store_darks(world, [60.0] * 3))
    await world.jobs.claim(job.id, "other-replica", world.now())
    world.clock.advance(seconds=10)

    with pytest.raises(
        RetryLater, match=f"job {job.id} is being stacked by other-replica"
    ) as later:
        await run_job(stacking_of(world), job.id)
    assert later.value.delay_s == pytest.approx(LEASE_S - 10 + 0.5)  # when the claim runs out
    held = await world.jobs.get(job.id)
    assert held.worker == "other-replica" and held.attempts == 1
    assert world.files.fetches == [] and world.events.transient == []

    world.clock.advance(seconds=LEASE_S)  # the holder stopped renewing: it died
    await run_job(stacking_of(world), job.id)
    done = await world.jobs.get(job.id)
    assert done.status == JobStatus.SUCCEEDED and done.worker == WORKER and done.attempts == 2


async def test_an_attempt_that_died_after_recording_the_master_is_finished_without_work():
    world = FakeWorld()
    frames = await store_darks(world, [60.0] * 3)
    job = await queue(world, frames)
    await world.jobs.claim(job.id, "dead-replica", world.now())
    recorded = make.master("dark", id=master_id_for_job(job.id), components=[f.id for f in frames])
    await world.frames.insert(recorded)
    await run_job(stacking_of(world), job.id)

    done = await world.jobs.get(job.id)
    assert done.status == JobStatus.SUCCEEDED and done.master_id == recorded.id
    assert all(f.master_id == recorded.id for f in await world.frames.many(job.frame_ids))
    assert world.events.bodies(events.MASTER_CREATED)[0].master_id == recorded.id
    assert world.files.fetches == []


async def test_a_master_recorded_meanwhile_by_another_attempt_is_kept_and_matches_the_object():
    """A replica that lost its claim while alive recorded the master first: its record
    stays, and describes the object this attempt overwrote (same pixels, other header)."""
    world = FakeWorld()
    job = await queue(world, await store_darks(world, [60.0] * 3))
    builder = ThreadedMasterBuilder(memory_limit_mb=64)
    master_id = master_id_for_job(job.id)
    rival = make.master(
        "dark",
        id=master_id,
        storage_key=master_storage_key(job.observatory_id, master_id),
        sha256="0" * 64,
        size_bytes=1,
    )

    class RecordedMeanwhile:
        measure, stack = builder.measure, builder.stack

        async def write(self, *args):
            await world.frames.insert(rival)
            return await builder.write(*args)

    await run_job(stacking_of(world, builder=RecordedMeanwhile()), job.id)
    kept = await world.frames.get(rival.id)
    stored = world.store.data(master_storage_key(job.observatory_id, rival.id))
    assert kept.registered_at == rival.registered_at  # the rival's record
    assert kept.sha256 == hashlib.sha256(stored).hexdigest() and kept.size_bytes == len(stored)
    assert (await world.jobs.get(job.id)).status == JobStatus.SUCCEEDED


async def test_the_claim_is_renewed_while_the_job_runs():
    world = FakeWorld()
    job = await queue(world, await store_darks(world, [60.0] * 3))
    builder = ThreadedMasterBuilder(memory_limit_mb=64)
    renewed_at = world.now() + timedelta(seconds=7)

    class Slow:
        measure, write = builder.measure, builder.write

        async def stack(self, *args, **kwargs):
            world.clock.set(renewed_at)
            await asyncio.sleep(0.1)  # several renewals of a 30 ms lease
            return await builder.stack(*args, **kwargs)

    touches = []
    touch = world.jobs.touch

    async def counted_touch(job_id, worker, now):
        touches.append((job_id, worker, now))
        return await touch(job_id, worker, now)

    world.jobs.touch = counted_touch
    await run_job(stacking_of(world, builder=Slow(), lease_s=0.03), job.id)
    assert len(touches) >= 2 and set(touches) >= {(job.id, WORKER, renewed_at)}
    assert (await world.jobs.get(job.id)).status == JobStatus.SUCCEEDED


class BlockedBuilder(ThreadedMasterBuilder):
    """Numerics that start and never finish, so a test can stop the replica mid-job."""

    def __init__(self):
        super().__init__(memory_limit_mb=64)
        self.started = asyncio.Event()

    async def stack(self, *args, **kwargs):
        self.started.set()
        await asyncio.Event().wait()


async def test_a_replica_stopped_mid_job_gives_the_job_back_for_another_at_once():
    world = FakeWorld()
    job = await queue(world, await store_darks(world, [60.0] * 3))
    builder = BlockedBuilder()
    running = asyncio.create_task(run_job(stacking_of(world, builder=builder), job.id))
    await asyncio.wait_for(builder.started.wait(), 10)
    assert (await world.jobs.get(job.id)).worker == WORKER

    running.cancel()  # what stopping the service does to the message being handled
    with pytest.raises(asyncio.CancelledError):
        await running
    given_back = await world.jobs.get(job.id)
    assert given_back.status == JobStatus.QUEUED and given_back.worker is None

    # another replica takes it straight away: no lease to wait out
    await run_job(stacking_of(world, worker="stacker-other"), job.id)
    done = await world.jobs.get(job.id)
    assert done.status == JobStatus.SUCCEEDED and done.worker == "stacker-other"
