"""The Grafana dashboard (deploy/grafana) and the alerting rules (deploy/prometheus) query
only metrics the code declares; the dashboard shows every one of Calib's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

from calib_infra import metrics

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
DASHBOARD = DEPLOY / "grafana/calib-dashboard.json"
ALERTS = DEPLOY / "prometheus/calib-alerts.yaml"
#: the samples each type of metric family exposes, by suffix
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exposed() -> set[str]:
    """Every sample name this process can expose: Calib's (:mod:`calib_infra.metrics`)
    and the client library's own (``process_*``)."""
    names = {metrics.SUPERVISOR_RESTARTS}
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def metric_names(expressions: list[str]) -> set[str]:
    assert expressions
    return {name for expr in expressions for name in re.findall(r"\b(?:calib|process)_\w+", expr)}


def queried() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return metric_names(
        [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    )


def alerted() -> set[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return metric_names([rule["expr"] for group in rules["groups"] for rule in group["rules"]])


def test_the_dashboard_and_the_alerts_query_only_declared_metrics():
    assert queried() - exposed() == set()
    assert alerted() - exposed() == set()


def test_the_dashboard_shows_every_calib_metric():
    declared = {family.name for collector in metrics.DECLARED for family in collector.describe()}
    declared.add(metrics.SUPERVISOR_RESTARTS.removesuffix("_total"))
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in queried()}
    assert declared - shown == set()
