"""The port bundles of the use cases, built from a service's Runtime: each service's
``main.py`` (its composition root) calls its builder once at start-up and binds the
handlers to what it returns. Nothing else reaches into the Runtime."""

from __future__ import annotations

from calib_app.access import Access
from calib_app.calibration import FrameLibrary, LightCalibration
from calib_app.dead_letters import DeadLetterOffice
from calib_app.lifecycle import UploadedMasters
from calib_app.maintenance import DailyMaintenance, Maintenance
from calib_app.needs import Inventory
from calib_app.ports import LightCalibrator, MasterBuilder, MasterDescriber
from calib_app.presigned import PresignedUploads
from calib_app.queueing import JobQueue
from calib_app.registration import Registration
from calib_app.stacking import Stacking
from calib_app.uploads import Uploads
from calib_core.lifecycle import MaintenanceTask
from calib_infra.backlog import StreamBacklog
from calib_infra.metrics import PrometheusWorkMetrics
from calib_infra.repositories import AccountRepository, PendingUploadRepository
from calib_infra.rpc import LifecycleClient
from calib_infra.runtime import Runtime


def stacking(runtime: Runtime, builder: MasterBuilder) -> Stacking:
    return Stacking(
        frames=runtime.frames,
        jobs=runtime.jobs,
        store=runtime.store,
        files=runtime.files,
        builder=builder,
        events=runtime.events,
        clock=runtime.clock,
        log=runtime.log,
        worker=runtime.instance,
        lease_s=runtime.config.stacker_ack_wait_s,
        metrics=PrometheusWorkMetrics(),
    )


def frame_library(runtime: Runtime) -> FrameLibrary:
    return FrameLibrary(
        frames=runtime.frames,
        settings=runtime.settings,
        cache=runtime.cache,
        store=runtime.store,
        events=runtime.events,
        clock=runtime.clock,
        log=runtime.log,
    )


def light_calibration(runtime: Runtime, calibrator: LightCalibrator) -> LightCalibration:
    return LightCalibration(
        library=frame_library(runtime), files=runtime.files, calibrator=calibrator
    )


def uploaded_masters(runtime: Runtime, describer: MasterDescriber) -> UploadedMasters:
    return UploadedMasters(
        frames=runtime.frames,
        store=runtime.store,
        files=runtime.files,
        describer=describer,
        log=runtime.log,
    )


def maintenance(runtime: Runtime) -> Maintenance:
    return Maintenance(
        library=frame_library(runtime),
        observatories=runtime.observatories,
        runs=runtime.maintenance_runs,
        pending_uploads=PendingUploadRepository(runtime.db),
        backlog=StreamBacklog(runtime.broker, runtime.log, dead_letters=runtime.db["dead_letters"]),
    )


def daily_maintenance(runtime: Runtime) -> DailyMaintenance:
    return DailyMaintenance(
        runs=runtime.maintenance_runs,
        lifecycle=LifecycleClient(runtime.broker),
        intervals={
            MaintenanceTask.EXPIRY_CHECK: runtime.config.expiry_check_interval_s,
            MaintenanceTask.RETENTION_CLEANUP: runtime.config.retention_interval_s,
        },
        clock=runtime.clock,
        log=runtime.log,
    )


def job_queue(runtime: Runtime) -> JobQueue:
    return JobQueue(
        frames=runtime.frames,
        jobs=runtime.jobs,
        settings=runtime.settings,
        events=runtime.events,
        clock=runtime.clock,
        log=runtime.log,
    )


def registration(runtime: Runtime) -> Registration:
    return Registration(
        frames=runtime.frames,
        observatories=runtime.observatories,
        rejections=runtime.rejections,
        store=runtime.store,
        jobs=runtime.jobs,
        settings=runtime.settings,
        events=runtime.events,
        clock=runtime.clock,
        log=runtime.log,
        limits=runtime.config.image_limits,
        metrics=PrometheusWorkMetrics(),
    )


def dead_letter_office(runtime: Runtime) -> DeadLetterOffice:
    """The dead letters (SPEC §12), as the consumers of this runtime record them."""
    return runtime.dead_letter_office


def access(runtime: Runtime) -> Access:
    return Access(
        accounts=AccountRepository(runtime.db),
        observatories=runtime.observatories,
        clock=runtime.clock,
    )


def uploads(runtime: Runtime) -> Uploads:
    return Uploads(
        frames=runtime.frames,
        settings=runtime.settings,
        store=runtime.store,
        events=runtime.events,
        clock=runtime.clock,
        log=runtime.log,
    )


def presigned_uploads(runtime: Runtime) -> PresignedUploads:
    return PresignedUploads(
        observatories=runtime.observatories,
        pending=PendingUploadRepository(runtime.db),
        store=runtime.store,
        clock=runtime.clock,
        log=runtime.log,
    )


def inventory(runtime: Runtime) -> Inventory:
    return Inventory(
        frames=runtime.frames, jobs=runtime.jobs, settings=runtime.settings, clock=runtime.clock
    )
