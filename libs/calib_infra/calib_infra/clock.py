"""The services' clock: UTC now, which tests can move forward without sleeping.

``CALIB_CLOCK_OFFSET_FILE`` (empty in production) names a file holding a number of
seconds. When it is set, ``Runtime.now()`` in every service is the real UTC time plus
that offset, read afresh on every call, so a test moves the clock of services running
as separate processes by rewriting one file (:func:`set_clock_offset`), and the next
request, message or timer tick sees the new time. A missing or empty file means no
offset. Only ages and deadlines move (expiry, retention, orphan age, the daily timers'
due check); waits (timeouts, poll intervals) stay in real time.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path


class Clock:
    def __init__(self, offset_file: str = ""):
        self.offset_file = Path(offset_file) if offset_file else None

    def offset(self) -> timedelta:
        if self.offset_file is None:
            return timedelta(0)
        try:
            text = self.offset_file.read_text().strip()
        except FileNotFoundError:
            return timedelta(0)
        return timedelta(seconds=float(text)) if text else timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset()


def set_clock_offset(offset_file: str | os.PathLike, offset: timedelta) -> None:
    """Move every service's clock to real time + ``offset`` (written atomically, so a
    reader never sees half a number)."""
    path = Path(offset_file)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(repr(offset.total_seconds()))
    os.replace(tmp, path)
