"""The Kubernetes manifests (deploy/k8s) are valid offline, against the Kubernetes schemas
(kubernetes-validate's) and KEDA's ScaledObject schema, and name what the code declares:
the services, stream and consumer of :mod:`calib_core.wiring`, the settings of
:class:`~calib_infra.config.Config`, the secrets of ``calib secrets``, the bus users and
auth configuration of :mod:`calib_infra.natsauth`."""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from calib_cli.main import deployment_secrets
from calib_core import wiring
from calib_infra import natsauth
from calib_infra.config import PREFIX, Config
from tests.support.kustomize import pod_spec, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/k8s"
CHARTS = K8S / "charts"
#: the oldest Kubernetes the manifests are meant for
KUBERNETES_VERSION = "1.29"
KEDA_SCHEMA = json.loads(
    (ROOT / "tests/support/schemas/keda-scaledobject-v1alpha1.json").read_text()
)
SECRETS = "calib-secrets"
SETTINGS = {PREFIX + name.upper() for name in Config.__struct_fields__}


@pytest.fixture(scope="module")
def secrets() -> dict[str, str]:
    return deployment_secrets()


@pytest.fixture(scope="module")
def documents(tmp_path_factory, secrets) -> list[dict[str, Any]]:
    """deploy/k8s rendered as ``kubectl apply -k`` would, with ``calib secrets`` output as
    deploy/README.md says."""
    directory = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, directory)
    (directory / "secrets.env").write_text(
        "".join(f"{name}={value}\n" for name, value in secrets.items())
    )
    return render(directory)


def of_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def container(document: dict[str, Any]) -> dict[str, Any]:
    [only] = pod_spec(document)["containers"]
    return only


def environment(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in container(document).get("env", [])}


def config_map(documents: list[dict[str, Any]]) -> dict[str, str]:
    return of_kind(documents, "ConfigMap")["calib-config"]["data"]


def chart_values(name: str) -> dict[str, Any]:
    return yaml.safe_load((CHARTS / name).read_text())


def test_every_manifest_is_valid_against_the_kubernetes_and_keda_schemas(documents):
    for document in documents:
        if document["kind"] == "ScaledObject":
            jsonschema.validate(document, KEDA_SCHEMA)
            for trigger in document["spec"]["triggers"]:
                assert trigger["type"] == "nats-jetstream"
                jsonschema.validate(
                    trigger["metadata"],
                    {"$defs": KEDA_SCHEMA["$defs"], "$ref": "#/$defs/natsJetstreamMetadata"},
                )
        else:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    assert {"Deployment", "Service", "PodDisruptionBudget", "Secret", "ScaledObject"} <= {
        document["kind"] for document in documents
    }


def test_a_deployment_per_service_runs_its_command_from_the_one_image(documents):
    deployments = of_kind(documents, "Deployment")
    assert set(deployments) == set(wiring.SERVICES)
    images = {
        container(d)["image"] for d in [*deployments.values(), *of_kind(documents, "Job").values()]
    }
    assert len(images) == 1
    for service, deployment in deployments.items():
        project = tomllib.loads((ROOT / f"services/{service}/pyproject.toml").read_text())
        assert container(deployment)["command"] == [f"calib-{service}"]
        assert f"calib-{service}" in project["project"]["scripts"]


def test_every_setting_named_is_one_the_code_reads(documents, secrets):
    assert set(config_map(documents)) <= SETTINGS
    for workload in [
        *of_kind(documents, "Deployment").values(),
        *of_kind(documents, "Job").values(),
    ]:
        env = environment(workload)
        assert set(env) <= SETTINGS, workload["metadata"]["name"]
        for variable in env.values():
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference and reference["name"] == SECRETS:
                assert reference["key"] in secrets, variable
    generated = of_kind(documents, "Secret")[SECRETS]["data"]
    assert set(generated) == set(secrets)


def test_each_service_is_its_own_bus_user(documents):
    for service, deployment in of_kind(documents, "Deployment").items():
        env = environment(deployment)
        assert env["CALIB_NATS_USER"]["value"] == service
        password = env["CALIB_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert password == {"name": SECRETS, "key": natsauth.compose_variable(service)}
    gateway = environment(of_kind(documents, "Deployment")["gateway"])
    assert {"CALIB_NATS_ISSUER_SEED", "CALIB_NATS_SYSTEM_PASSWORD"} <= set(gateway)


def test_probes_and_metrics_are_on_each_services_own_port(documents):
    health_port = int(config_map(documents)["CALIB_HEALTH_PORT"])
    for service, deployment in of_kind(documents, "Deployment").items():
        main = container(deployment)
        if service == "gateway":
            port = int(environment(deployment)["CALIB_GATEWAY_PORT"]["value"])
        else:
            port = health_port
        [named] = [p["name"] for p in main["ports"] if p["containerPort"] == port]
        assert main["livenessProbe"]["httpGet"] == {"path": "/livez", "port": named}
        assert main["startupProbe"]["httpGet"] == {"path": "/livez", "port": named}
        assert main["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": named}
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port), service
        assert annotations["prometheus.io/path"] == "/metrics"
        assert {"requests", "limits"} <= set(main["resources"]), service
    service = of_kind(documents, "Service")["gateway"]
    gateway_pods = of_kind(documents, "Deployment")["gateway"]["spec"]["template"]
    assert service["spec"]["selector"].items() <= gateway_pods["metadata"]["labels"].items()


def test_the_stacker_scales_on_its_consumers_lag_and_is_never_all_evicted(documents):
    stacker = of_kind(documents, "Deployment")["stacker"]
    assert "replicas" not in stacker["spec"]  # KEDA's to set
    scaler = of_kind(documents, "ScaledObject")["stacker"]["spec"]
    assert scaler["scaleTargetRef"]["name"] == "stacker"
    assert scaler["minReplicaCount"] == 1 <= scaler["maxReplicaCount"]
    [trigger] = scaler["triggers"]
    metadata = trigger["metadata"]
    assert metadata["stream"] == wiring.STREAM.name
    assert metadata["consumer"] == wiring.STACKER.durable
    assert wiring.STACKER.service == "stacker"
    assert metadata["account"] == natsauth.ACCOUNT
    monitor = chart_values("nats-values.yaml")["config"]["monitor"]
    assert monitor["enabled"] and metadata["natsServerMonitoringEndpoint"].endswith(
        f":{monitor['port']}"
    )

    budget = of_kind(documents, "PodDisruptionBudget")["stacker"]["spec"]
    pods = stacker["spec"]["template"]["metadata"]["labels"]
    assert budget["selector"]["matchLabels"].items() <= pods.items()
    assert budget["maxUnavailable"] == 1

    # the pod holds the job's pixels (CALIB_STACKER_MEMORY_LIMIT_MB) and the process
    limit_mb = int(environment(stacker)["CALIB_STACKER_MEMORY_LIMIT_MB"]["value"])
    assert mebibytes(container(stacker)["resources"]["limits"]["memory"]) >= limit_mb + 512


def test_the_file_cache_fits_its_volume(documents):
    for service, deployment in of_kind(documents, "Deployment").items():
        env = environment(deployment)
        if "CALIB_FILE_CACHE_DIR" not in env:
            continue
        [mount] = [
            m
            for m in container(deployment)["volumeMounts"]
            if m["mountPath"] == env["CALIB_FILE_CACHE_DIR"]["value"]
        ]
        [volume] = [v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"]]
        cache_mb = int(env["CALIB_FILE_CACHE_MB"]["value"])
        assert mebibytes(volume["emptyDir"]["sizeLimit"]) > cache_mb, service


def mebibytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()
    return int(number) * (1024 if unit == "Gi" else 1)


def test_the_nats_chart_gets_calibs_auth_configuration_and_its_secrets():
    values = chart_values("nats-values.yaml")
    included = values["config"]["merge"]["00$include"]
    auth = values["configMap"]["merge"]["data"][included]
    assert auth == natsauth.deployment_auth_config()
    variables = set(re.findall(r"\$(CALIB_\w+)", auth))
    env = values["container"]["env"]
    assert set(env) == variables
    for name, value in env.items():
        assert value["valueFrom"]["secretKeyRef"] == {"name": SECRETS, "key": name}
    assert values["config"]["cluster"] == {"enabled": True, "replicas": 3}
    assert values["config"]["jetstream"]["enabled"]


def test_mongodb_and_minio_charts_use_calibs_secrets_and_names(documents, secrets):
    uri = {
        environment(workload)["CALIB_MONGODB_URI"]["valueFrom"]["secretKeyRef"]["name"]
        for workload in [
            *of_kind(documents, "Deployment").values(),
            *of_kind(documents, "Job").values(),
        ]
    }
    mongodb = yaml.safe_load((CHARTS / "mongodb.yaml").read_text())["spec"]
    [user] = mongodb["users"]
    assert uri == {user["connectionStringSecretName"]}
    assert user["passwordSecretRef"]["name"] == SECRETS
    assert user["passwordSecretRef"]["key"] in secrets
    database = config_map(documents)["CALIB_MONGODB_DB"]
    assert {"name": "readWrite", "db": database} in user["roles"]

    minio = chart_values("minio-values.yaml")
    [bucket] = minio["buckets"]
    assert bucket["name"] == config_map(documents)["CALIB_S3_BUCKET"]
    [account] = minio["users"]
    assert account["accessKey"] == secrets["CALIB_S3_ACCESS_KEY"]
    assert (account["existingSecret"], account["existingSecretKey"]) == (
        SECRETS,
        "CALIB_S3_SECRET_KEY",
    )
