"""The quality gates must not slow stacking: the gates' measurement of 20 full-size frames
plus their stacking, against the stacking alone, from the same FITS files.

    uv run python bench/bench_gates.py          # 20 frames of 6248x4176 (26 MP)
    CALIB_BENCH_QUICK=1 uv run python ...       # 1024x1024 smoke test

What the stacker does for a job (``calib_app.stacking``): measure every frame
(:func:`calib_stack.framestats.measure_frame`), judge them (:func:`calib_core.quality.
gate_failures`), then stack. Runs alternate, best of each; the ratio is with / without
(goal <= 1.10).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stacking import (  # noqa: E402
    CLIP_FRAMES,
    FULL_SHAPE,
    MAXITERS,
    MEMORY_LIMIT_MB,
    QUICK_SHAPE,
    SIGMA,
    synthetic_frames,
    write_frames,
)

from calib_core.quality import gate_failures  # noqa: E402
from calib_core.settings import CalibrationSettings  # noqa: E402
from calib_stack.framestats import measure_frame  # noqa: E402
from calib_stack.stacking import stack_files  # noqa: E402

REPEATS = 2


def _stack(paths: list[Path]) -> None:
    stack_files(
        paths, method="sigma_clip", sigma=SIGMA, maxiters=MAXITERS, memory_limit_mb=MEMORY_LIMIT_MB
    )


def _gated(paths: list[Path]) -> None:
    failures = gate_failures("bias", [measure_frame(p) for p in paths], CalibrationSettings())
    assert not failures, failures  # the synthetic frames are all good
    _stack(paths)


def run() -> list[dict]:
    quick = os.environ.get("CALIB_BENCH_QUICK") == "1"
    shape = QUICK_SHAPE if quick else FULL_SHAPE
    with tempfile.TemporaryDirectory(prefix="calib-bench-gates-") as tmp:
        paths = write_frames(synthetic_frames(CLIP_FRAMES, shape, seed=3), Path(tmp))
        _gated(paths[:3])  # kernels loaded, files in the page cache
        without = with_gates = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            _stack(paths)
            without = min(without, time.perf_counter() - start)
            start = time.perf_counter()
            _gated(paths)
            with_gates = min(with_gates, time.perf_counter() - start)
        start = time.perf_counter()
        for path in paths:
            measure_frame(path)
        measuring = time.perf_counter() - start
    megapixels = round(shape[0] * shape[1] / 1e6)
    return [
        {
            "name": "stack_with_gates_vs_without",
            "value": round(with_gates, 4),
            "unit": "s",
            "reference": round(without, 4),
            "ratio": round(with_gates / without, 3),
            "note": (
                f"{CLIP_FRAMES} x {megapixels} MP uint16 frames, sigma clip, best of {REPEATS}"
                f" alternated runs; ratio = with gates / without (goal <= 1.10); measuring"
                f" the {CLIP_FRAMES} frames alone took {measuring:.3f} s"
            ),
        }
    ]


if __name__ == "__main__":
    for entry in run():
        print(entry)
