"""Moving the services' clock from a test (see calib_infra.clock): no sleeping through days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from calib_infra.clock import Clock, set_clock_offset


class MovableClock:
    """The clock every service of one ``Services`` reads; ``now()`` is what they see."""

    def __init__(self, offset_file: str):
        self.offset_file = offset_file
        self.reader = Clock(offset_file)

    def now(self) -> datetime:
        return self.reader.now()

    def move_to(self, moment: datetime) -> None:
        set_clock_offset(self.offset_file, moment - datetime.now(UTC))

    def reset(self) -> None:
        set_clock_offset(self.offset_file, timedelta(0))
