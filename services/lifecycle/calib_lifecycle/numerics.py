"""The lifecycle's numerics, behind the ports :class:`calib_app.ports.LightCalibrator` and
:class:`calib_app.ports.MasterDescriber`: ``calib_stack`` run off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from calib_app.ports import InvalidImageError, MasterDescription
from calib_core.models import FrameType
from calib_stack.calibrate import calibrate_light
from calib_stack.fitsio import InvalidFitsError, read_image
from calib_stack.master import master_stats
from calib_stack.preview import preview_png

#: Memory for one band of the light, the masters and the output.
BAND_MEMORY_MB = 32


class StackNumerics:
    async def calibrate(
        self,
        light: Path,
        output: Path,
        *,
        bias: Path | None,
        dark: Path | None,
        flat: Path | None,
        dark_scale: float,
        flat_scale: float,
        cards: Sequence[tuple[str, Any, str]],
    ) -> None:
        try:
            await asyncio.to_thread(
                calibrate_light,
                light,
                output,
                bias=bias,
                dark=dark,
                flat=flat,
                dark_scale=dark_scale,
                flat_scale=flat_scale,
                cards=cards,
                memory_limit_mb=BAND_MEMORY_MB,
            )
        except InvalidFitsError as error:
            raise InvalidImageError(str(error)) from error

    async def describe(self, path: Path, frame_type: FrameType) -> MasterDescription:
        try:
            return await asyncio.to_thread(_describe, path, frame_type)
        except InvalidFitsError as error:
            raise InvalidImageError(str(error)) from error

    async def preview(self, path: Path) -> bytes:
        try:
            return await asyncio.to_thread(lambda: preview_png(read_image(path)))
        except InvalidFitsError as error:
            raise InvalidImageError(str(error)) from error


def _describe(path: Path, frame_type: FrameType) -> MasterDescription:
    image = read_image(path)
    return MasterDescription(
        stats=master_stats(image, frame_type.value), preview_png=preview_png(image)
    )
