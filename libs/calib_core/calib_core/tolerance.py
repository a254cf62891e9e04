"""Comparing measured values within a tolerance: temperatures on a line, rotations on a circle.

A missing value only matches another missing value (frames without a temperature form
their own group, and a master without one only calibrates frames without one)."""

from __future__ import annotations

EPSILON = 1e-9


def within(a: float | None, b: float | None, tolerance: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tolerance + EPSILON


def angle_between(a: float, b: float) -> float:
    """Degrees between two rotations around the circle (359.8° is 0.4° from 0.2°)."""
    difference = abs(a - b) % 360.0
    return min(difference, 360.0 - difference)


def angle_within(a: float | None, b: float | None, tolerance: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return angle_between(a, b) <= tolerance + EPSILON
