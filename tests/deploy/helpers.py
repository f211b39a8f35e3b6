"""Shared readers for the deployment files: paths, YAML documents, the unit file, the Dockerfile."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from controller.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
COMPOSE = DEPLOY / "docker" / "docker-compose.yml"
UNIT = DEPLOY / "systemd" / "spot-controller.service"
ENV_EXAMPLE = DEPLOY / "systemd" / "env.example"
CAM_POLICY = DEPLOY / "tencentcloud" / "cam-policy.json"
GUIDE = ROOT / "docs" / "operations.md"

HTTP_PORT = 8080
SETTINGS_ENV = frozenset(row["env"] for row in Settings().describe())
DEFAULT_SHUTDOWN_DEADLINE_S = Settings().shutdown_deadline_s


def yaml_files() -> list[Path]:
    return sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])


def load_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every Kubernetes object of deploy/kubernetes, by (kind, name); kustomization excluded."""
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_documents(path):
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod template spec) of every workload that runs the image."""
    for (kind, name), obj in k8s_objects().items():
        if kind in ("Deployment", "Job"):
            yield f"{kind}/{name}", obj["spec"]["template"]["spec"]


def compose() -> dict[str, Any]:
    [doc] = load_documents(COMPOSE)
    assert isinstance(doc, dict)
    return doc


def unit_entries(path: Path = UNIT) -> dict[str, list[tuple[str, str]]]:
    """systemd's INI dialect: sections of (key, value) in order; keys may repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path.name}: {line!r} before any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r} is not KEY=VALUE"
        current.append((key.strip(), value.strip()))
    return sections


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def healthcheck_python() -> str:
    """The Python code the image's HEALTHCHECK runs with ``python -c``."""
    [check] = [args for word, args in dockerfile_instructions() if word == "HEALTHCHECK"]
    _, sep, exec_form = check.partition(" CMD ")
    assert sep, f"HEALTHCHECK without CMD: {check}"
    argv = json.loads(exec_form)
    assert argv[:2] == ["python", "-c"], f"not CMD [python, -c, code]: {argv}"
    code: str = argv[2]
    return code


def env_file_values(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """Active VARIABLE=value lines of an EnvironmentFile."""
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
