"""Stacking benchmarks: sigma-clip kernel speed against astropy and ccdproc, and
the peak memory of stacking 50 full-size frames from FITS files.

    uv run python bench/bench_stacking.py          # 6248x4176 frames (26 MP)
    CALIB_BENCH_QUICK=1 uv run python ...          # 1024x1024 smoke test

``run()`` returns entries ``{"name", "value", "unit", "reference", "ratio", "note"}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import ccdproc
import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.stats import sigma_clip

from calib_stack.kernels import combine

FULL_SHAPE = (6248, 4176)  # (height, width) of a 26 MP sensor
QUICK_SHAPE = (1024, 1024)
CLIP_FRAMES = 20
RSS_FRAMES = 50
MEMORY_LIMIT_MB = 1024
CCDPROC_FULL_ROWS = 1024  # ccdproc needs ~75 s and >10 GB for a whole 26 MP stack
SIGMA = 3.0
MAXITERS = 5

_STACK_CHILD = """
import json, sys, time
from calib_stack.stacking import stack_files
paths, limit = json.loads(sys.argv[1]), int(sys.argv[2])
start = time.perf_counter()
result = stack_files(paths, method="sigma_clip", sigma=3.0, maxiters=5, memory_limit_mb=limit)
print(json.dumps({"seconds": time.perf_counter() - start, "shape": list(result.shape)}))
"""

# A child's ru_maxrss starts at its parent's RSS when forked (Linux carries the
# high-water mark across exec), so the stacking process is started by a small
# launcher and measured there with RUSAGE_CHILDREN, not from this big process.
_LAUNCHER = """
import json, resource, subprocess, sys
done = subprocess.run([sys.executable, "-c", sys.argv[1], *sys.argv[2:]],
                      check=True, capture_output=True, text=True)
report = json.loads(done.stdout)
report["maxrss_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps(report))
"""


def run() -> list[dict]:
    quick = os.environ.get("CALIB_BENCH_QUICK") == "1"
    shape = QUICK_SHAPE if quick else FULL_SHAPE
    cube = synthetic_frames(CLIP_FRAMES, shape, seed=1).astype(np.float32)
    entries = [
        bench_vs_astropy(cube, repeats=3 if quick else 1),
        bench_vs_ccdproc(cube, rows=shape[0] if quick else CCDPROC_FULL_ROWS),
    ]
    del cube
    entries.append(bench_peak_rss(shape))
    return entries


def synthetic_frames(n: int, shape: tuple[int, int], seed: int) -> np.ndarray:
    """uint16 bias-like frames: 1000 ADU + 10 ADU Gaussian noise, 0.05 % hits at 60000."""
    rng = np.random.default_rng(seed)
    frames = np.empty((n, *shape), dtype=np.uint16)
    for frame in frames:
        noise = rng.standard_normal(shape, dtype=np.float32)
        np.rint(noise * 10 + 1000, out=noise)
        frame[...] = noise
        hits = rng.integers(0, frame.size, frame.size // 2000)
        frame.reshape(-1)[hits] = 60000
    return frames


def bench_vs_astropy(cube: np.ndarray, repeats: int) -> dict:
    def reference():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clipped = sigma_clip(
                cube, sigma=SIGMA, maxiters=MAXITERS, axis=0, cenfunc="median", stdfunc="std"
            )
            return np.ma.filled(clipped.mean(axis=0), np.nan)

    combine(cube[:, :2], "sigma_clip", SIGMA, MAXITERS)  # load compiled kernels
    ours, ours_s = _best_time(lambda: combine(cube, "sigma_clip", SIGMA, MAXITERS), 3)
    expected, reference_s = _best_time(reference, repeats)
    difference = _max_relative_difference(ours.image, expected)
    return _entry(
        "sigma_clip_vs_astropy",
        ours_s,
        reference_s,
        f"{cube.shape[0]} frames of {cube.shape[2]}x{cube.shape[1]}, sigma {SIGMA},"
        f" {MAXITERS} iterations; astropy fast path (sigma_clip(...).mean(axis=0));"
        f" max relative difference {difference:.1e}; best of 3 (ours) / {repeats} (astropy)",
    )


def bench_vs_ccdproc(cube: np.ndarray, rows: int) -> dict:
    subset = np.ascontiguousarray(cube[:, :rows])
    ccds = [CCDData(frame, unit="adu") for frame in subset]

    def reference():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ccdproc.combine(
                ccds,
                method="average",
                sigma_clip=True,
                sigma_clip_low_thresh=SIGMA,
                sigma_clip_high_thresh=SIGMA,
                sigma_clip_func=np.ma.median,
                sigma_clip_dev_func=np.ma.std,
            )

    _, ours_s = _best_time(lambda: combine(subset, "sigma_clip", SIGMA, MAXITERS), 3)
    _, reference_s = _best_time(reference, 1)
    cropped = rows < cube.shape[1]
    return _entry(
        "sigma_clip_vs_ccdproc",
        ours_s,
        reference_s,
        f"{subset.shape[0]} frames of {subset.shape[2]}x{subset.shape[1]}"
        + (
            f" (first {rows} rows of the {cube.shape[2]}x{cube.shape[1]} frames; both timed"
            " on this crop)"
            if cropped
            else ""
        )
        + f"; ccdproc does 1 clipping pass (its default), ours up to {MAXITERS}",
    )


def bench_peak_rss(shape: tuple[int, int]) -> dict:
    with tempfile.TemporaryDirectory(prefix="calib-bench-") as tmp:
        paths = []
        for index in range(RSS_FRAMES):
            path = Path(tmp) / f"frame{index:03d}.fits"
            fits.PrimaryHDU(synthetic_frames(1, shape, seed=100 + index)[0]).writeto(path)
            paths.append(str(path))
        completed = subprocess.run(
            [
                sys.executable,
                "-c",
                _LAUNCHER,
                _STACK_CHILD,
                json.dumps(paths),
                str(MEMORY_LIMIT_MB),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    report = json.loads(completed.stdout)
    peak_mb = report["maxrss_kb"] / 1024
    return {
        "name": f"stack_{RSS_FRAMES}x{_megapixels(shape)}mp_peak_rss_mb",
        "value": round(peak_mb, 1),
        "unit": "MB",
        "reference": MEMORY_LIMIT_MB,
        "ratio": round(peak_mb / MEMORY_LIMIT_MB, 3),
        "note": f"stack_files sigma_clip of {RSS_FRAMES} uint16 FITS files {shape[1]}x{shape[0]}"
        f" with memory_limit_mb={MEMORY_LIMIT_MB} in a subprocess (RUSAGE_CHILDREN ru_maxrss"
        f" seen by a small launcher; includes the interpreter and libraries); took {report['seconds']:.1f} s;"
        f" goal <= {MEMORY_LIMIT_MB + 300} MB",
    }


def _megapixels(shape: tuple[int, int]) -> int:
    return round(shape[0] * shape[1] / 1e6)


def _best_time(function: Callable[[], object], repeats: int) -> tuple[object, float]:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return result, best


def _max_relative_difference(actual: np.ndarray, expected: np.ndarray) -> float:
    finite = np.isfinite(expected)
    return float(np.max(np.abs(actual[finite] - expected[finite]) / np.abs(expected[finite])))


def _entry(name: str, ours_s: float, reference_s: float, note: str) -> dict:
    return {
        "name": name,
        "value": round(ours_s, 4),
        "unit": "s",
        "reference": round(reference_s, 4),
        "ratio": round(reference_s / ours_s, 2),
        "note": note,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
