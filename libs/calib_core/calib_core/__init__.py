"""Calib domain: pure models and decisions (no I/O)."""

__version__ = "0.1.0"
