"""Calib's use cases: plain async functions over the ports in :mod:`calib_app.ports`.

Between the pure domain (``calib_core``) and the adapters (``calib_infra``): a use case
loads state through repositories, asks the domain what to do, persists and publishes.
It imports ``calib_core`` and nothing that does I/O; services bind it to adapters in
their composition roots, tests to the in-memory fakes in ``tests/unit/app/fakes.py``.
"""
