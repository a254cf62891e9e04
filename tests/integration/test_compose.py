"""The compose file is valid for docker-compose (no engine needed to check it)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_docker_compose_config_is_valid():
    docker_compose = shutil.which("docker-compose")
    if docker_compose is None:
        pytest.fail("docker-compose is not installed (deploy/install-system-deps.sh installs it)")
    result = subprocess.run(
        [docker_compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env={**os.environ, "CALIB_BOOTSTRAP_ADMIN_TOKEN": "t"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for service in (
        "nats",
        "mongodb",
        "minio",
        "gateway",
        "registry",
        "stacker",
        "scheduler",
        "lifecycle",
    ):
        assert f"\n  {service}:" in result.stdout
    assert "replicas: 2" in result.stdout
    # every service waits for the one-shot schema step (calib init-db)
    assert "command:\n    - calib\n    - init-db" in result.stdout
    assert result.stdout.count("condition: service_completed_successfully") == 5
