"""The compose file is valid for docker-compose (no engine needed to check it)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from calib_cli.main import deployment_secrets
from calib_infra.natsauth import compose_variable, deployment_config

ROOT = Path(__file__).resolve().parents[2]


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    docker_compose = shutil.which("docker-compose")
    if docker_compose is None:
        pytest.fail("docker-compose is not installed (deploy/install-system-deps.sh installs it)")
    return subprocess.run(
        [docker_compose, "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("CALIB_")} | env,
        check=False,
    )


def test_compose_refuses_to_run_without_generated_secrets():
    result = compose_config({})
    assert result.returncode != 0
    assert "run calib secrets > .env" in result.stderr


def test_docker_compose_config_is_valid():
    secrets = deployment_secrets()
    result = compose_config(secrets)
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
    # each service is a bus user of its own, in production mode
    for service in ("gateway", "registry", "stacker", "scheduler", "lifecycle"):
        user = f"CALIB_NATS_USER: {service}"
        password = f"CALIB_NATS_PASSWORD: {secrets[compose_variable(service)]}"
        assert user in result.stdout and password in result.stdout, service
    assert result.stdout.count("CALIB_MODE: production") == 6  # the services and the schema


def test_the_compose_nats_configuration_is_the_one_calib_generates():
    """deploy/nats/nats.conf cannot drift from the embedded server's configuration."""
    assert (ROOT / "deploy/nats/nats.conf").read_text() == deployment_config()
