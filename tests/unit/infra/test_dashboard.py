"""The Grafana dashboard (deploy/grafana) queries only metrics the code declares, and shows
every one of Calib's."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

from calib_infra import metrics

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy/grafana/calib-dashboard.json"
#: the samples each type of metric family exposes, by suffix
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exposed() -> set[str]:
    """Every sample name this process can expose: Calib's (:mod:`calib_infra.metrics`)
    and the client library's own (``process_*``)."""
    names = {metrics.SUPERVISOR_RESTARTS}
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def queried() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert expressions
    return {name for expr in expressions for name in re.findall(r"\b(?:calib|process)_\w+", expr)}


def test_the_dashboard_queries_only_declared_metrics():
    assert queried() - exposed() == set()


def test_the_dashboard_shows_every_calib_metric():
    declared = {family.name for collector in metrics.DECLARED for family in collector.describe()}
    declared.add(metrics.SUPERVISOR_RESTARTS.removesuffix("_total"))
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in queried()}
    assert declared - shown == set()
