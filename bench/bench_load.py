"""Load: 50 observatories x 30 small darks each (three groups of 10) arriving at once,
through the whole pipeline (registry, two stackers, lifecycle, scheduler) on real
servers. Reports masters per minute and, per group, the latency from its last frame's
registration to its active master (p50, p95). Ratio: p95 latency / (one job's pure
stacking time x jobs per stacker) — how close the pipeline comes to the stackers doing
nothing but stack (lower is better)."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calib_core import events  # noqa: E402
from calib_stack import synthetic  # noqa: E402
from calib_stack.stacking import stack_files  # noqa: E402
from tests.support.plugin import Plugin  # noqa: E402
from tests.support.system import (  # noqa: E402
    ADMIN_TOKEN,
    Services,
    free_port,
    service_config,
    start_servers,
    wait_for,
)

QUICK = os.environ.get("CALIB_BENCH_QUICK") == "1"
OBSERVATORIES = 5 if QUICK else 50
EXPOSURES = (10.0, 20.0, 30.0)  # three groups of ten per observatory
FRAMES_PER_GROUP = 10
CAMERA = synthetic.Camera(name="Load Cam", width=256, height=256)
STACKERS = 2


def dark(index: int, exposure_s: float) -> bytes:
    rng = np.random.default_rng(index)
    data = synthetic.dark_frame(CAMERA, exposure_s=exposure_s, temperature_c=-10.0, rng=rng)
    header = {"IMAGETYP": "DARK", "INSTRUME": CAMERA.name, "EXPTIME": exposure_s}
    header |= {"CCD-TEMP": -10.0, "GAIN": CAMERA.gain, "OFFSET": CAMERA.offset}
    return synthetic.fits_bytes(np.asarray(data), header)


def pure_stacking_s(files: list[bytes], workdir: Path) -> float:
    """One job's stacking alone: its ten frames from local disk, best of three."""
    paths = []
    for index, data in enumerate(files):
        path = workdir / f"frame-{index}.fits"
        path.write_bytes(data)
        paths.append(path)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        stack_files(paths, method="sigma_clip")
        best = min(best, time.perf_counter() - start)
    return best


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="calib-bench-load-") as tmp:
        workdir = Path(tmp)
        servers = start_servers(workdir / "servers")
        config = service_config(
            servers.endpoints, "calib_bench_load", gateway_port=free_port(), sweep_interval_s=30.0
        )
        services = Services(config=config, bus=servers.endpoints.bus, log_dir=workdir / "logs")
        try:
            services.start_all(stackers=STACKERS)
            services.wait_ready(timeout_s=120)
            return [measure(config, services, workdir)]
        finally:
            services.stop()
            servers.stop()


def measure(config, services: Services, workdir: Path) -> dict:
    admin = httpx.Client(
        base_url=services.base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    )
    observatories = [f"load-{i:02d}" for i in range(OBSERVATORIES)]
    for observatory in observatories:
        admin.post("/api/v1/admin/observatories", json={"id": observatory, "name": observatory})
    plugin = Plugin(config)
    announced = []
    for o, observatory in enumerate(observatories):
        for e, exposure in enumerate(EXPOSURES):
            for i in range(FRAMES_PER_GROUP):
                data = dark(o * 1000 + e * 100 + i, exposure)
                event = events.FrameRegistered(
                    event_id=uuid.uuid4().hex,
                    observatory_id=observatory,
                    storage_key=plugin.upload(observatory, data),
                )
                announced.append((event, event.event_id))
    reference = pure_stacking_s([dark(i, EXPOSURES[0]) for i in range(FRAMES_PER_GROUP)], workdir)
    groups = OBSERVATORIES * len(EXPOSURES)
    start = time.time()
    plugin.announce(announced)  # every frame of every observatory at once

    with MongoClient(config.mongodb_uri) as client:
        frames = client[config.mongodb_db]["frames"]

        def masters() -> list[dict]:
            found = list(frames.find({"is_master": True, "status": "active"}))
            return found if len(found) >= groups else []

        made = wait_for(masters, timeout_s=1800, interval_s=1.0, what="every group's master")
        last_frames = {
            (d["_id"]["observatory_id"], d["_id"]["exposure_s"]): d["last"]
            for d in frames.aggregate([
                {"$match": {"is_master": False}},
                {"$group": {"_id": {"observatory_id": "$observatory_id",
                                    "exposure_s": "$exposure_s"},
                            "last": {"$max": "$registered_at"}}},
            ])
        }  # fmt: skip
    latencies = sorted(
        (m["created_at"] - last_frames[(m["observatory_id"], m["exposure_s"])]).total_seconds()
        for m in made
    )
    finished = max(m["created_at"] for m in made).timestamp()
    per_minute = len(made) / ((finished - start) / 60)
    p50 = statistics.median(latencies)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    jobs_per_stacker = groups / STACKERS
    ideal = reference * jobs_per_stacker
    return {
        "name": "load_50_observatories" if not QUICK else "load_5_observatories",
        "value": round(p95, 2),
        "unit": "s",
        "reference": round(ideal, 2),
        "ratio": round(p95 / ideal, 2),
        "masters_per_minute": round(per_minute, 1),
        "latency_p50_s": round(p50, 2),
        "latency_p95_s": round(p95, 2),
        "note": f"{OBSERVATORIES} observatories x {len(EXPOSURES)} groups x {FRAMES_PER_GROUP}"
        f" darks {CAMERA.width}x{CAMERA.height} announced at once, {STACKERS} stackers, the"
        f" whole pipeline on real servers: {len(made)} masters, {per_minute:.1f} per minute;"
        f" latency from a group's last registered frame to its active master p50 {p50:.1f} s,"
        f" p95 {p95:.1f} s; reference: one job's pure stacking ({reference * 1000:.0f} ms, local"
        f" files, best of 3) x {jobs_per_stacker:.0f} jobs per stacker",
    }
