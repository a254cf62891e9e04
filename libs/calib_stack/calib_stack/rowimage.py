"""What every frame file read band by band shares (:class:`~calib_stack.fitsio.FitsImage`,
:class:`~calib_stack.xisfio.XisfImage`): a context manager, and whole rows as float32."""

from __future__ import annotations

from typing import Self

import numpy as np


class RowImage:
    """A 2-D image of ``shape`` (height, width) whose rows are read on request."""

    shape: tuple[int, int]

    def close(self) -> None:
        raise NotImplementedError

    def read_rows_into(self, y0: int, y1: int, out: np.ndarray) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def read_rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``y0`` to ``y1`` (exclusive) as float32 (see :meth:`read_rows_into`)."""
        out = np.empty((max(y1 - y0, 0), self.shape[1]), dtype=np.float32)
        self.read_rows_into(y0, y1, out)
        return out
