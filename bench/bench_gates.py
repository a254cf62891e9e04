"""The quality gates must not slow stacking: the gates' measurement of 20 full-size frames
plus their stacking, against the stacking alone, from the same FITS files.

    uv run python bench/bench_gates.py          # 20 frames of 6248x4176 (26 MP)
    CALIB_BENCH_QUICK=1 uv run python ...       # 1024x1024 smoke test

What the stacker does for a job (``calib_app.stacking``): measure every frame
(:func:`calib_stack.framestats.measure_frame`), judge them (:func:`calib_core.quality.
gate_failures`), then stack. The gates and the stacking are timed apart (best of several
runs each, alternated) and added: on a machine shared with other work, the noise of one
stacking run (seconds) is far larger than the gates' cost (a fraction of a second). The
ratio is with / without (goal <= 1.10).
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

REPEATS = 3
GATE_REPEATS = 3


def _stack(paths: list[Path]) -> None:
    stack_files(
        paths, method="sigma_clip", sigma=SIGMA, maxiters=MAXITERS, memory_limit_mb=MEMORY_LIMIT_MB
    )


def _gates(paths: list[Path]) -> None:
    failures = gate_failures("bias", [measure_frame(p) for p in paths], CalibrationSettings())
    assert not failures, failures  # the synthetic frames are all good


def run() -> list[dict]:
    quick = os.environ.get("CALIB_BENCH_QUICK") == "1"
    shape = QUICK_SHAPE if quick else FULL_SHAPE
    with tempfile.TemporaryDirectory(prefix="calib-bench-gates-") as tmp:
        paths = write_frames(synthetic_frames(CLIP_FRAMES, shape, seed=3), Path(tmp))
        _gates(paths[:3])  # kernels loaded
        stacking = gates = end_to_end = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            _stack(paths)
            stacking = min(stacking, time.perf_counter() - start)
            for _ in range(GATE_REPEATS):
                start = time.perf_counter()
                _gates(paths)
                gates = min(gates, time.perf_counter() - start)
            start = time.perf_counter()
            _gates(paths)
            _stack(paths)
            end_to_end = min(end_to_end, time.perf_counter() - start)
    megapixels = round(shape[0] * shape[1] / 1e6)
    return [
        {
            "name": "stack_with_gates_vs_without",
            "value": round(stacking + gates, 4),
            "unit": "s",
            "reference": round(stacking, 4),
            "ratio": round((stacking + gates) / stacking, 3),
            "note": (
                f"{CLIP_FRAMES} x {megapixels} MP uint16 frames, sigma clip; value = stacking"
                f" (best of {REPEATS}) + the gates, measuring and judging every frame (best of"
                f" {REPEATS * GATE_REPEATS}, {gates:.3f} s): the stacker runs them one after the"
                f" other; ratio = with / without (goal <= 1.10). Gates then stacking in one"
                f" go, best of {REPEATS}: {end_to_end:.2f} s (noisy on a shared machine)"
            ),
        }
    ]


if __name__ == "__main__":
    for entry in run():
        print(entry)
