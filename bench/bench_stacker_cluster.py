"""The stacker on a NATS cluster (issue 14): ``stacker_scaling_cluster`` is the throughput
of the jobs of ``stacker_scaling_2_vs_1`` (bench_stacker.py: 8 jobs of 20 frames queued at
once, 2 stacker replicas with one numba thread each, a new shared file cache per run)
against a 3-node nats-server cluster on loopback with the stream replicated on every node
(``CALIB_STREAM_REPLICAS=3``), over that against the single server. S3 and MongoDB are
the same in both. Goal >= 0.9: clustering the bus costs little.

    uv run python bench/run.py bench_stacker_cluster
    CALIB_BENCH_QUICK=1 uv run python bench/bench_stacker_cluster.py   # small frames
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench_stacker import (  # noqa: E402
    E2E_FRAMES,
    E2E_SHAPE,
    QUICK_E2E_SHAPE,
    REPEATS,
    SCALING_JOBS,
    Rig,
    alternated_runs,
    cpu_note,
    jobs_note,
)

STACKERS = 2


def cluster_vs_single(rig: Rig, shape: tuple[int, int]) -> dict:
    frames = [frame for frame, _ in rig.add_frames(shape, E2E_FRAMES, seed=2000)]
    clustered = rig.start_nats_cluster()
    runs = alternated_runs(
        rig, frames, {"single": (STACKERS, rig.config), "cluster": (STACKERS, clustered)}
    )
    single, cluster = (SCALING_JOBS / runs.seconds[name] for name in ("single", "cluster"))
    return {
        "name": "stacker_scaling_cluster",
        "value": round(cluster, 3),
        "unit": "jobs/s",
        "reference": round(single, 3),
        "ratio": round(cluster / single, 2),
        "note": f"{jobs_note(frames)}, {STACKERS} stacker replicas each NUMBA_NUM_THREADS=1:"
        f" {runs.seconds['cluster']:.1f} s against a 3-node nats-server cluster on loopback"
        f" (stream and consumers R3) vs {runs.seconds['single']:.1f} s against one server (R1),"
        f" the same S3 and MongoDB; on {os.cpu_count()} CPUs shared with every server; best"
        f" of {REPEATS} alternated runs each; {runs.quiet_note}. CPU per job over all runs:"
        f" {cpu_note(runs.cpu)}; goal >= 0.9",
    }


def run() -> list[dict]:
    quick = os.environ.get("CALIB_BENCH_QUICK") == "1"
    with tempfile.TemporaryDirectory(prefix="calib-bench-stacker-cluster-") as tmp:
        rig = Rig(Path(tmp))
        try:
            return [cluster_vs_single(rig, QUICK_E2E_SHAPE if quick else E2E_SHAPE)]
        finally:
            rig.stop()


if __name__ == "__main__":
    for entry in run():
        print(entry)
