"""Stacker service benchmarks: real servers (NATS JetStream, SeaweedFS S3, the
MongoDB-wire server) and real stacker processes, given work the way the registry gives
it (frame records in MongoDB, their files in S3, a job record and its ``stack.requested``).

- ``master_e2e_20x26mp_s``: seconds from ``stack.requested`` until the master of 20
  frames of 6248x4176 uint16 is in S3 and recorded (download, stack, write the FITS and
  preview, upload, record). Reference: ``stack_files`` alone on the same local files with
  the same settings; the ratio is the service's overhead factor.
- ``stacker_scaling_2_vs_1``: throughput of 8 jobs of those 20 frames with 2 stacker
  replicas over that of 1 replica, each replica with one numba thread
  (``NUMBA_NUM_THREADS=1``). Each run's replicas start with an empty file cache that
  they share: the first jobs download the frames, the later ones read them locally, as
  a master re-stacking its group's retained frames does. Goal >= 1.6.

    uv run python bench/bench_stacker.py          # full size
    CALIB_BENCH_QUICK=1 uv run python ...          # small frames (smoke test)

``run()`` returns ``[{"name", "value", "unit", "reference", "ratio", "note"}]``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import psutil
from astropy.io import fits

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench_stacking import synthetic_frames  # noqa: E402

from calib_core import events  # noqa: E402
from calib_core.models import Frame, FrameType, JobStatus, JobTrigger, StackJob  # noqa: E402
from calib_core.settings import CalibrationSettings  # noqa: E402
from calib_infra import bus  # noqa: E402
from calib_infra.config import Config  # noqa: E402
from calib_infra.devstack import EmbeddedNatsCluster, spawn  # noqa: E402
from calib_infra.mongo import create_schema, mongo_client  # noqa: E402
from calib_infra.repositories import FrameRepository, JobRepository  # noqa: E402
from calib_infra.store import ObjectStore  # noqa: E402
from calib_stack.stacking import stack_files  # noqa: E402
from calib_stacker.main import load_kernels  # noqa: E402
from tests.support.system import (  # noqa: E402
    Services,
    consumers_waiting,
    environment,
    service_config,
    start_servers,
    wait_for,
)

OBSERVATORY = "bench-stacker"
CAMERA = "Bench Cam"
E2E_FRAMES = 20
E2E_SHAPE, QUICK_E2E_SHAPE = (4176, 6248), (1024, 1024)  # (height, width)
SCALING_JOBS = 8
JOB_TIMEOUT_S = 900
REPEATS = 3
IDLE_BUSY = 0.15  # share of all CPUs
IDLE_WAIT_S = 120


class Rig:
    """Servers, a database and stacker processes for the benchmarks."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.servers = start_servers(workdir / "servers")
        # the production claim and ack wait: no test-speed redeliveries
        self.config: Config = service_config(
            self.servers.endpoints, "calib_bench_stacker", stacker_ack_wait_s=30.0
        )
        self.services = Services(
            config=self.config, bus=self.servers.endpoints.bus, log_dir=workdir / "logs"
        )
        self.store = ObjectStore(self.config)
        self.store.ensure_bucket_sync()
        asyncio.run(self._database(create_schema))
        self.started = 0  # stacker processes, for their names
        self.runs = 0  # start_stackers calls, for their cache folders
        self.nats_cluster: EmbeddedNatsCluster | None = None

    def start_nats_cluster(self) -> Config:
        """A 3-node NATS cluster beside the single server, with its bus secrets; returns
        the configuration of stackers on it (the stream replicated on the 3 nodes)."""
        self.nats_cluster = EmbeddedNatsCluster(self.workdir / "nats-cluster", bus=self.servers.bus)
        self.nats_cluster.start()
        return msgspec.structs.replace(
            self.config, nats_url=self.nats_cluster.nats_url, stream_replicas=3
        )

    async def _database(self, action):
        client = mongo_client(self.config)
        try:
            return await action(client[self.config.mongodb_db])
        finally:
            await client.close()

    def stop(self) -> None:
        self.services.stop()
        self.servers.stop()
        if self.nats_cluster is not None:
            self.nats_cluster.stop()

    # -- stackers --------------------------------------------------------------------
    def start_stackers(self, count: int, **environ: str) -> None:
        """``count`` stacker processes, waiting for work when this returns; they share a
        new, empty file cache."""
        self.runs += 1
        environ = {"CALIB_FILE_CACHE_DIR": str(self.workdir / f"file-cache-{self.runs}"), **environ}
        for _ in range(count):
            self.started += 1
            name = f"stacker-{self.started}"
            self.services.processes[name] = spawn(
                name,
                [sys.executable, "-m", "calib_stacker.main"],
                self.services.log_dir,
                env={**environment(self.config, name), **environ},
            )
        wait_for(
            lambda: consumers_waiting(self.config, "stacker") >= count,
            timeout_s=120,
            what=f"{count} stackers to wait for work",
        )

    def stop_stackers(self) -> None:
        self.services.stop()
        self.services.processes.clear()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by each server and by the stackers (together)."""
        used: dict[str, float] = {}
        processes = [*self.servers.processes.items(), *self.services.processes.items()]
        if self.nats_cluster is not None:
            processes += [("nats cluster", p) for p in self.nats_cluster.processes.values()]
        for name, managed in processes:
            process = psutil.Process(managed.process.pid)
            seconds = sum(
                sum(p.cpu_times()[:2]) for p in [process, *process.children(recursive=True)]
            )
            key = "stacker" if name.startswith("stacker") else name
            used[key] = used.get(key, 0.0) + seconds
        return used

    # -- work ------------------------------------------------------------------------
    def add_frames(self, shape: tuple[int, int], count: int, seed: int) -> list[tuple[Frame, Path]]:
        """Dark frames as FITS files on local disk, in S3 and recorded in MongoDB."""
        folder = self.workdir / f"frames-{seed}"
        folder.mkdir()
        added = []
        for index in range(count):
            path = folder / f"dark_{index:03d}.fits"
            fits.PrimaryHDU(synthetic_frames(1, shape, seed=seed + index)[0]).writeto(path)
            key = f"frames/{OBSERVATORY}/{uuid.uuid4().hex}.fits"
            self.store.put_file_sync(key, path)
            added.append((_dark(key, path, shape, index), path))
        asyncio.run(
            self._database(
                lambda db: FrameRepository(db).insert_many([frame for frame, _ in added])
            )
        )
        return added

    def stack(self, jobs: list[list[Frame]]) -> float:
        """Queue one job per frame list at once; seconds until the last ``master.created``
        (published once the master is in S3, recorded and its job closed)."""
        planned = [_job(frames) for frames in jobs]

        async def queue_and_wait() -> float:
            client = mongo_client(self.config)
            connection = await bus.connect(self.config)
            pending, failures, done = {job.id for job in planned}, [], asyncio.Event()

            async def created(msg) -> None:
                pending.discard(json.loads(msg.data).get("job_id"))
                if not pending:
                    done.set()

            async def failed(msg) -> None:
                failures.append(json.loads(msg.data))
                done.set()

            try:
                await connection.subscribe(
                    events.subject(events.MASTER_CREATED, OBSERVATORY), cb=created
                )
                await connection.subscribe(
                    events.subject(events.STACK_FAILED, OBSERVATORY), cb=failed
                )
                repository = JobRepository(client[self.config.mongodb_db])
                for job in planned:
                    await repository.create(job)
                js = connection.jetstream()
                start = time.perf_counter()
                for job in planned:
                    request = events.StackRequested(job_id=job.id, observatory_id=OBSERVATORY)
                    await js.publish(
                        events.subject(events.STACK_REQUESTED, OBSERVATORY),
                        msgspec.json.encode(request),
                        headers={"Nats-Msg-Id": f"{job.id}-1"},
                    )
                await asyncio.wait_for(done.wait(), JOB_TIMEOUT_S)
                seconds = time.perf_counter() - start
                if failures:
                    raise RuntimeError(f"stacking failed: {failures}")
                for job in planned:
                    stored = await repository.get(job.id)
                    if stored.status != JobStatus.SUCCEEDED:
                        raise RuntimeError(f"job {job.id} is {stored.status.value}")
                return seconds
            finally:
                await connection.close()
                await client.close()

        seconds = asyncio.run(queue_and_wait())
        for job in planned:  # the masters are in S3, and their records name them
            master = asyncio.run(
                self._database(lambda db, j=job: FrameRepository(db).get(f"m{j.id}"))
            )
            stored = self.store.stat_sync(master.storage_key)
            if stored is None or stored.size != master.size_bytes:
                raise RuntimeError(f"master {master.id} is not in S3 as recorded")
        return seconds


def _dark(key: str, path: Path, shape: tuple[int, int], index: int) -> Frame:
    data = path.read_bytes()
    now = datetime.now(UTC)
    return Frame(
        id=uuid.uuid4().hex,
        observatory_id=OBSERVATORY,
        frame_type=FrameType.DARK,
        camera_name=CAMERA,
        gain=100.0,
        offset=50.0,
        binning="1x1",
        exposure_s=60.0,
        temperature_c=-10.0,
        set_temperature_c=-10.0,
        width=shape[1],
        height=shape[0],
        captured_at=now - timedelta(minutes=index),
        storage_key=key,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        registered_at=now,
    )


def _job(frames: list[Frame]) -> StackJob:
    job_id, now = uuid.uuid4().hex, datetime.now(UTC)
    config_key = f"bench-{job_id}"  # one open job per configuration: each job its own
    return StackJob(
        id=job_id,
        observatory_id=OBSERVATORY,
        frame_type=FrameType.DARK,
        config_key=config_key,
        group_key=config_key,
        configuration={"camera_name": CAMERA, "exposure_s": 60.0},
        temperature_c=-10.0,
        trigger=JobTrigger.MANUAL,
        status=JobStatus.QUEUED,
        frame_ids=[f.id for f in frames],
        settings=msgspec.structs.asdict(CalibrationSettings()),
        created_at=now,
        updated_at=now,
    )


class Quiet:
    """Before each timed run, wait (at most ``IDLE_WAIT_S``) until the machine's CPUs are
    nearly idle: on a shared machine, others' work slows 2 replicas more than 1 and makes
    figures taken minutes apart incomparable. Remembers the busiest start, for the note."""

    def __init__(self) -> None:
        self.busiest = 0.0

    def wait(self) -> None:
        deadline = time.monotonic() + IDLE_WAIT_S
        while True:
            busy = psutil.cpu_percent(interval=1.0) / 100
            if busy <= IDLE_BUSY or time.monotonic() > deadline:
                self.busiest = max(self.busiest, busy)
                return

    def note(self) -> str:
        return (
            f"each run started once the CPUs were <= {IDLE_BUSY:.0%} busy (waiting at most"
            f" {IDLE_WAIT_S} s; busiest start {self.busiest:.0%})"
        )


def best_time(quiet: Quiet, measure: Callable[[], float]) -> float:
    """The best of ``REPEATS`` runs of ``measure`` (seconds), each on a quiet machine."""
    best = float("inf")
    for _ in range(REPEATS):
        quiet.wait()
        best = min(best, measure())
    return best


def master_end_to_end(rig: Rig, added: list[tuple[Frame, Path]]) -> dict:
    shape = (added[0][0].height, added[0][0].width)
    quiet = Quiet()
    rig.start_stackers(1, CALIB_FILE_CACHE_MB="0")  # every run downloads its frames
    try:
        seconds = best_time(quiet, lambda: rig.stack([[frame for frame, _ in added]]))
    finally:
        rig.stop_stackers()
    settings = CalibrationSettings()
    load_kernels()  # as the stacker does before it takes jobs

    def stacking_only() -> float:
        start = time.perf_counter()
        stack_files(
            [path for _, path in added],
            method=settings.stacking_method,
            sigma=settings.sigma_clip_value,
            maxiters=settings.sigma_clip_iterations,
            memory_limit_mb=rig.config.stacker_memory_limit_mb,
        )
        return time.perf_counter() - start

    reference = best_time(quiet, stacking_only)
    megapixels = round(shape[0] * shape[1] / 1e6)
    return {
        "name": f"master_e2e_{E2E_FRAMES}x{megapixels}mp_s",
        "value": round(seconds, 3),
        "unit": "s",
        "reference": round(reference, 3),
        "ratio": round(seconds / reference, 2),
        "note": f"{E2E_FRAMES} uint16 darks {shape[1]}x{shape[0]} in S3 -> master FITS"
        " + preview in S3"
        f" and its record, through one stacker process on real servers (sigma_clip 3.0/5,"
        f" memory_limit_mb={rig.config.stacker_memory_limit_mb}), timed from stack.requested to"
        f" master.created, the frames downloaded every run (no file cache); reference:"
        " stack_files alone on the same local files (page cache"
        f" warm), in this process with the same numba threads; best of {REPEATS} each;"
        f" {quiet.note()}",
    }


@dataclass(frozen=True)
class Runs:
    #: the best seconds of each setup
    seconds: dict[str, float]
    #: CPU seconds per job of each server and of the stackers, over every run
    cpu: dict[str, float]
    quiet_note: str


def alternated_runs(rig: Rig, frames: list[Frame], setups: dict[str, tuple[int, Config]]) -> Runs:
    """The best seconds of ``SCALING_JOBS`` jobs of ``frames`` queued at once, for each
    setup (stacker replicas, their configuration), each replica with one numba thread and
    a new shared file cache; the setups alternated ``REPEATS`` times (a change in the
    machine's load hits each), each run on a quiet machine."""
    quiet = Quiet()
    seconds = dict.fromkeys(setups, float("inf"))
    cpu: dict[str, float] = {}
    runs = len(setups) * REPEATS
    single = rig.config
    try:
        for _ in range(REPEATS):
            for name, (replicas, config) in setups.items():
                rig.config = config
                rig.start_stackers(replicas, NUMBA_NUM_THREADS="1")
                try:
                    quiet.wait()
                    before = rig.cpu_seconds()
                    seconds[name] = min(seconds[name], rig.stack([frames] * SCALING_JOBS))
                    for process, used in rig.cpu_seconds().items():
                        spent = (used - before.get(process, 0.0)) / (SCALING_JOBS * runs)
                        cpu[process] = cpu.get(process, 0.0) + spent
                finally:
                    rig.stop_stackers()
    finally:
        rig.config = single
    return Runs(seconds, cpu, quiet.note())


def cpu_note(cpu: dict[str, float]) -> str:
    return ", ".join(
        f"{name} {used:.2f} s" for name, used in sorted(cpu.items(), key=lambda i: -i[1])
    )


def jobs_note(frames: list[Frame]) -> str:
    return (
        f"{SCALING_JOBS} jobs of the same {len(frames)} uint16 darks"
        f" {frames[0].width}x{frames[0].height} (sigma_clip, master + preview upload, record;"
        " the frames downloaded from S3 by the first jobs into the replicas' shared, initially"
        " empty file cache) queued at once"
    )


def scaling(rig: Rig, added: list[tuple[Frame, Path]]) -> dict:
    frames = [frame for frame, _ in added]
    runs = alternated_runs(rig, frames, {"1": (1, rig.config), "2": (2, rig.config)})
    seconds, cpu = runs.seconds, runs.cpu
    one, two = SCALING_JOBS / seconds["1"], SCALING_JOBS / seconds["2"]
    # with every CPU busy, the machine completes at most cpu_count / (CPU seconds per job) jobs/s
    ceiling = min(2.0, os.cpu_count() / sum(cpu.values()) / one)
    return {
        "name": "stacker_scaling_2_vs_1",
        "value": round(two, 3),
        "unit": "jobs/s",
        "reference": round(one, 3),
        "ratio": round(two / one, 2),
        "note": f"{jobs_note(frames)}: {seconds['2']:.1f} s with 2"
        f" stacker replicas vs {seconds['1']:.1f} s with 1, each NUMBA_NUM_THREADS=1, on"
        f" {os.cpu_count()} CPUs shared with the servers; best of {REPEATS} alternated runs each;"
        f" {runs.quiet_note}. CPU per job: {cpu_note(cpu)}; so this machine allows a ratio of"
        f" at most {ceiling:.2f} (2 replicas reached {two / one / ceiling:.0%} of it);"
        " goal >= 1.6",
    }


def run() -> list[dict]:
    quick = os.environ.get("CALIB_BENCH_QUICK") == "1"
    with tempfile.TemporaryDirectory(prefix="calib-bench-stacker-") as tmp:
        rig = Rig(Path(tmp))
        try:
            added = rig.add_frames(QUICK_E2E_SHAPE if quick else E2E_SHAPE, E2E_FRAMES, seed=1000)
            return [master_end_to_end(rig, added), scaling(rig, added)]
        finally:
            rig.stop()


if __name__ == "__main__":
    for entry in run():
        print(entry)
