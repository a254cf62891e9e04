"""The stacker's numerics (``calib_stack``) behind the :class:`calib_app.ports.MasterBuilder`
port. Each CPU-heavy step runs in a worker thread, so the event loop keeps renewing the
job's claim and acknowledging its message while a master is stacked."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calib_app.ports import StackingError, WrittenMaster
from calib_core.models import FrameType
from calib_core.quality import FrameMeasurement
from calib_core.stacking_rules import StackRecipe
from calib_stack import imagestats
from calib_stack.framestats import measure_frame
from calib_stack.kernels import METHODS, combine
from calib_stack.master import master_stats, write_master_fits
from calib_stack.preview import preview_png
from calib_stack.stacking import StackResult, stack_files

#: The kernels in two parts, which a cold cache can have compiled at once in two
#: processes (the test session does: a minute of compiling on one core).
KERNEL_PARTS = ("stacking", "statistics")


def load_kernels(parts: Sequence[str] = KERNEL_PARTS) -> None:
    """Load the compiled stacking and statistics kernels (numba's on-disk cache, compiled
    into it on first use) before taking jobs, so that the first job is not slower."""
    if "stacking" in parts:
        sample = np.zeros((3, 1, 8), dtype=np.float32)
        for method in METHODS:
            combine(sample, method)
    if "statistics" in parts:
        imagestats.warm_up()


def _size_and_sha256(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
        size = handle.tell()
    return size, digest.hexdigest()


class ThreadedMasterBuilder:
    """Stacks band by band within ``memory_limit_mb`` (see :func:`stack_files`)."""

    def __init__(self, memory_limit_mb: int):
        self.memory_limit_mb = memory_limit_mb

    async def measure(self, sources: Sequence[Path]) -> list[FrameMeasurement]:
        try:
            return await asyncio.to_thread(lambda: [measure_frame(p) for p in sources])
        except ValueError as error:  # unreadable files
            raise StackingError(str(error)) from error

    async def stack(
        self,
        sources: Sequence[Path],
        recipe: StackRecipe,
        *,
        subtract: Path | Sequence[Path] | None,
        dark_rate: Path | None,
        progress: Callable[[float], Awaitable[None]],
    ) -> StackResult:
        loop = asyncio.get_running_loop()

        def report(fraction: float) -> None:  # called from the stacking thread
            asyncio.run_coroutine_threadsafe(progress(fraction), loop)

        try:
            return await asyncio.to_thread(
                stack_files,
                sources,
                method=recipe.method,
                sigma=recipe.sigma,
                maxiters=recipe.maxiters,
                memory_limit_mb=self.memory_limit_mb,
                subtract=subtract,
                dark_rate=dark_rate,
                exposures=recipe.exposures,
                normalise=recipe.normalise,
                progress=report,
            )
        except ValueError as error:  # unreadable or odd-sized files, unusable values
            raise StackingError(str(error)) from error

    async def write(
        self,
        image: StackResult,
        frame_type: FrameType,
        cards: Sequence[tuple[str, Any, str]],
        fits_path: Path,
        preview_path: Path,
    ) -> WrittenMaster:
        stats, preview = await asyncio.gather(  # side by side: the kernels and zlib release the GIL
            asyncio.to_thread(master_stats, image.image, frame_type.value),
            asyncio.to_thread(preview_png, image.image),
        )
        # only then: astropy byte-swaps the image in place while it writes it
        await asyncio.to_thread(write_master_fits, fits_path, image.image, cards)
        await asyncio.to_thread(preview_path.write_bytes, preview)
        size_bytes, sha256 = await asyncio.to_thread(_size_and_sha256, fits_path)
        return WrittenMaster(stats=stats, size_bytes=size_bytes, sha256=sha256)
