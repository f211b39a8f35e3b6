"""deploy/kubernetes: the manifests run the released image, the right commands, probes and ports."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from controller import __version__
from controller.settings import Settings
from tests.deploy.helpers import (
    DEFAULT_SHUTDOWN_DEADLINE_S,
    HTTP_PORT,
    K8S,
    SETTINGS_ENV,
    dockerfile_instructions,
    k8s_objects,
    load_documents,
    pod_specs,
    yaml_files,
)

IMAGE = f"spot-controller:{__version__}"
SECRET_ENV = {"TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "SPOT_CONTROLLER_DATABASE_URL"}


def _kustomization() -> dict[str, Any]:
    [doc] = load_documents(K8S / "kustomization.yaml")
    assert isinstance(doc, dict)
    return doc


def _deployment() -> dict[str, Any]:
    return k8s_objects()[("Deployment", "spot-controller")]


def _container(kind: str, name: str) -> dict[str, Any]:
    [container] = k8s_objects()[(kind, name)]["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def _config_map() -> dict[str, str]:
    data: dict[str, str] = k8s_objects()[("ConfigMap", "spot-controller")]["data"]
    return data


def test_every_yaml_file_of_deploy_parses_into_mappings() -> None:
    files = yaml_files()
    assert len(files) >= 10, files
    for path in files:
        docs = load_documents(path)
        assert docs, f"{path} is empty"
        assert all(isinstance(doc, dict) for doc in docs), path


def test_kustomization_lists_every_manifest_but_the_optional_servicemonitor() -> None:
    listed = _kustomization()["resources"]
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk - {"servicemonitor.yaml"}
    # ... which is named, commented out, for Prometheus Operator users.
    assert "# - servicemonitor.yaml" in (K8S / "kustomization.yaml").read_text()


def test_every_workload_runs_the_released_image() -> None:
    images = {c["image"] for _, spec in pod_specs() for c in spec["containers"]}
    assert images == {IMAGE}
    [entry] = _kustomization()["images"]
    assert (entry["name"], entry["newTag"]) == ("spot-controller", __version__)


def test_deployment_runs_the_daemon_and_the_job_migrates_through_the_entrypoint() -> None:
    daemon = _container("Deployment", "spot-controller")
    migrate = _container("Job", "spot-controller-migrate")
    assert daemon["args"] == ["run"]
    assert migrate["args"] == ["db", "upgrade"]
    # args, not command: the image's ENTRYPOINT (spot-controller) stays in front.
    assert "command" not in daemon
    assert "command" not in migrate
    entrypoint = {w: a for w, a in dockerfile_instructions()}["ENTRYPOINT"]
    assert yaml.safe_load(entrypoint) == ["spot-controller"]


def test_two_replicas_stop_before_new_ones_start() -> None:
    spec = _deployment()["spec"]
    assert spec["replicas"] == 2
    # stop -> migrate -> start: two versions never share the database.
    assert spec["strategy"]["type"] == "Recreate"


def test_termination_grace_outlasts_the_shutdown_deadline() -> None:
    grace = _deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    configured = float(_config_map().get("SPOT_CONTROLLER_SHUTDOWN_DEADLINE_S", "0"))
    assert grace > DEFAULT_SHUTDOWN_DEADLINE_S
    assert grace > configured


def test_probes_hit_health_and_readiness_on_the_listener_port() -> None:
    container = _container("Deployment", "spot-controller")
    [port] = container["ports"]
    assert port["containerPort"] == HTTP_PORT
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["port"] in (port["name"], HTTP_PORT), probe
    host, _, listen = _config_map()["SPOT_CONTROLLER_HTTP_ADDR"].rpartition(":")
    assert (host, int(listen)) == ("0.0.0.0", HTTP_PORT)


def test_metrics_are_scrapeable_by_annotation_service_and_servicemonitor() -> None:
    objects = k8s_objects()
    annotations = _deployment()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(HTTP_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"
    [service_port] = objects[("Service", "spot-controller-metrics")]["spec"]["ports"]
    assert service_port["port"] == HTTP_PORT
    assert service_port["targetPort"] == "http"
    [endpoint] = objects[("ServiceMonitor", "spot-controller")]["spec"]["endpoints"]
    assert endpoint["port"] == service_port["name"]
    assert endpoint["path"] == "/metrics"


def test_service_pdb_and_monitor_select_the_daemon_pods_and_not_the_job() -> None:
    objects = k8s_objects()
    daemon_labels = _deployment()["spec"]["template"]["metadata"]["labels"]
    job_labels = objects[("Job", "spot-controller-migrate")]["spec"]["template"]["metadata"][
        "labels"
    ]
    selectors = {
        "Deployment": _deployment()["spec"]["selector"]["matchLabels"],
        "Service": objects[("Service", "spot-controller-metrics")]["spec"]["selector"],
        "PodDisruptionBudget": objects[("PodDisruptionBudget", "spot-controller")]["spec"][
            "selector"
        ]["matchLabels"],
    }
    for kind, selector in selectors.items():
        assert selector.items() <= daemon_labels.items(), kind
        assert not selector.items() <= job_labels.items(), kind
    monitor = objects[("ServiceMonitor", "spot-controller")]["spec"]["selector"]["matchLabels"]
    service_labels = objects[("Service", "spot-controller-metrics")]["metadata"]["labels"]
    assert monitor.items() <= service_labels.items()
    assert objects[("PodDisruptionBudget", "spot-controller")]["spec"]["maxUnavailable"] == 1


def test_pods_run_non_root_read_only_without_privileges_and_with_resources() -> None:
    user = {w: a for w, a in dockerfile_instructions()}["USER"]
    uid = int(user.split(":")[0])
    for where, spec in pod_specs():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["runAsUser"] == uid, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["automountServiceAccountToken"] is False, where
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            resources = container["resources"]
            assert resources["requests"]["cpu"], where
            assert resources["requests"]["memory"], where
            assert resources["limits"]["memory"], where


def test_settings_come_from_the_configmap_and_secrets_from_the_secret() -> None:
    objects = k8s_objects()
    secret = objects[("Secret", "spot-controller")]["stringData"]
    config = _config_map()
    assert set(secret) == SECRET_ENV
    assert not SECRET_ENV & set(config)
    assert set(config) <= SETTINGS_ENV
    # A template: placeholders, never a value that could be real.
    assert all("REPLACE_WITH" in value for value in secret.values())
    # Only the Job changes the schema; replicas must not race to migrate.
    assert config["SPOT_CONTROLLER_MIGRATE_ON_START"] == "false"
    # Every value is one the daemon accepts.
    Settings.from_env({**config, **secret})
    for where, spec in pod_specs():
        [container] = spec["containers"]
        refs = {next(iter(ref)): next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert refs == {"configMapRef": "spot-controller", "secretRef": "spot-controller"}, where


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed here")
def test_kustomize_renders_every_object_into_the_namespace() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "Deployment", "Job", "Secret", "ConfigMap"} <= kinds
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "spot-controller", doc["kind"]
