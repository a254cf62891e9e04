"""Stacking benchmarks: sigma-clip kernel speed against astropy and ccdproc, FITS-to-master
stacking speed against Siril, and the peak memory of stacking 50 full-size frames from
FITS files. Siril (Debian package ``siril``) is installed with apt-get when ``siril-cli``
is missing.

    uv run python bench/bench_stacking.py          # 6248x4176 frames (26 MP)
    CALIB_BENCH_QUICK=1 uv run python ...          # 1024x1024 smoke test

``run()`` returns entries ``{"name", "value", "unit", "reference", "ratio", "note"}``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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
from calib_stack.master import write_master_fits
from calib_stack.stacking import stack_files

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
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
report["maxrss_kb"] = usage.ru_maxrss
report["cpu_s"] = usage.ru_utime + usage.ru_stime
print(json.dumps(report))
"""


def run() -> list[dict]:
    quick = os.environ.get("CALIB_BENCH_QUICK") == "1"
    shape = QUICK_SHAPE if quick else FULL_SHAPE
    frames = synthetic_frames(CLIP_FRAMES, shape, seed=1)
    with tempfile.TemporaryDirectory(prefix="calib-bench-") as tmp:
        paths = write_frames(frames, Path(tmp))
        cube = frames.astype(np.float32)
        del frames
        entries = [
            bench_vs_astropy(cube, repeats=3 if quick else 1),
            bench_vs_ccdproc(cube, rows=shape[0] if quick else CCDPROC_FULL_ROWS),
        ]
        del cube
        entries.append(bench_vs_siril(paths))
    entries.extend(bench_peak_rss(shape))
    return entries


def write_frames(frames: np.ndarray, folder: Path) -> list[Path]:
    """The frames as uint16 FITS files (BITPIX 16, BZERO 32768), as a camera writes them."""
    paths = []
    for index, frame in enumerate(frames):
        path = folder / f"frame_{index:03d}.fits"
        fits.PrimaryHDU(frame).writeto(path)
        paths.append(path)
    return paths


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


def ensure_siril() -> str:
    """``siril-cli``, installed from Debian's ``siril`` package when it is missing."""
    found = shutil.which("siril-cli")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    print("   installing siril (apt-get)", flush=True)
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "siril"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    found = shutil.which("siril-cli")
    if found is None:
        raise RuntimeError("siril-cli is still missing after installing the siril package")
    return found


def siril_script(folder: Path, lines: list[str]) -> str:
    """Run a Siril script in ``folder``; its log."""
    script = folder / "bench.ssf"
    script.write_text("\n".join(["requires 1.0.0", *lines]) + "\n")
    done = subprocess.run(
        [ensure_siril(), "-d", str(folder), "-s", str(script)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


_SIRIL_TIME = re.compile(r"Execution time: (?:(\d+) min )?([\d.]+) (ms|s)")


def siril_stack_seconds(log: str) -> float:
    """The time Siril reports for its ``stack`` command (read, combine, save the result)."""
    tail = log.split("Stacked sequence successfully", 1)
    match = _SIRIL_TIME.search(tail[1]) if len(tail) == 2 else None
    if match is None:
        raise RuntimeError(f"no stacking time in Siril's log:\n{log[-2000:]}")
    minutes, value, unit = match.groups()
    return int(minutes or 0) * 60 + float(value) / (1000 if unit == "ms" else 1)


def bench_vs_siril(paths: list[Path], repeats: int = 2) -> dict:
    """FITS files to master FITS: Siril's ``stack <seq> rej s 3 3 -nonorm`` against
    stack_files + write_master_fits, same files, both on every core, page cache warm."""
    folder = paths[0].parent
    siril_script(folder, ["convert frame -out=seq"])  # a sequence of links to the files
    siril_s = min(
        siril_stack_seconds(
            siril_script(
                folder / "seq", [f"stack frame rej s {SIGMA} {SIGMA} -nonorm -out=siril{attempt}"]
            )
        )
        for attempt in range(repeats)
    )

    def ours() -> np.ndarray:
        result = stack_files(
            paths,
            method="sigma_clip",
            sigma=SIGMA,
            maxiters=MAXITERS,
            memory_limit_mb=MEMORY_LIMIT_MB,
        )
        write_master_fits(folder / "ours.fits", result.image, [])
        return result.image

    ours_image, ours_s = _best_time(ours, repeats)
    siril_image = (
        fits.getdata(folder / "seq" / "siril0.fit").astype(np.float64) * 65535
    )  # Siril: 0-1
    relative = np.abs(siril_image - ours_image) / np.abs(ours_image)
    height, width = ours_image.shape
    return _entry(
        "sigma_clip_vs_siril",
        ours_s,
        siril_s,
        f"{len(paths)} uint16 FITS files {width}x{height} to a float32 master FITS,"
        f" best of {repeats}:"
        f" Siril {_siril_version()} 'stack seq rej s {SIGMA} {SIGMA} -nonorm'"
        " (its own reported stacking"
        f" time: read, combine, save; conversion to a sequence not counted) vs stack_files +"
        f" write_master_fits (memory_limit_mb={MEMORY_LIMIT_MB}; Siril sizes its blocks to the"
        " machine's free memory). Not the same rejection: Siril iterates until nothing"
        " changes, ours"
        f" stops after {MAXITERS} passes (astropy's rule); the masters differ by at most"
        f" {float(relative.max()):.1e} relative (median {float(np.median(relative)):.1e})",
    )


def _siril_version() -> str:
    done = subprocess.run([ensure_siril(), "--version"], capture_output=True, text=True)
    return done.stdout.strip().split()[-1] if done.stdout.strip() else "?"


def bench_peak_rss(shape: tuple[int, int]) -> list[dict]:
    """The peak memory of a whole stacking job, and its CPU time per frame-megapixel (the
    figure deploy/README.md sizes stackers with)."""
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
    frame_megapixels = RSS_FRAMES * shape[0] * shape[1] / 1e6
    cpu_ms = 1000 * report["cpu_s"] / frame_megapixels
    wall_ms = 1000 * report["seconds"] / frame_megapixels
    memory = {
        "name": f"stack_{RSS_FRAMES}x{_megapixels(shape)}mp_peak_rss_mb",
        "value": round(peak_mb, 1),
        "unit": "MB",
        "reference": MEMORY_LIMIT_MB,
        "ratio": round(peak_mb / MEMORY_LIMIT_MB, 3),
        "note": f"stack_files sigma_clip of {RSS_FRAMES} uint16 FITS files {shape[1]}x{shape[0]}"
        f" with memory_limit_mb={MEMORY_LIMIT_MB} in a subprocess (RUSAGE_CHILDREN ru_maxrss"
        " seen by a small launcher; includes the interpreter and libraries);"
        f" took {report['seconds']:.1f} s;"
        f" goal <= {MEMORY_LIMIT_MB + 300} MB",
    }
    cpu = {
        "name": "stack_cpu_ms_per_frame_mp",
        "value": round(cpu_ms, 2),
        "unit": "ms",
        "reference": round(wall_ms, 2),
        "ratio": round(cpu_ms / wall_ms, 2),
        "note": f"CPU time (user + system, every thread) of the same stack of {RSS_FRAMES}"
        f" frames of {_megapixels(shape)} MP, per frame-megapixel; reference: its wall time"
        " per frame-megapixel (the ratio is the cores it kept busy); sizing in deploy/README.md",
    }
    return [memory, cpu]


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
