"""The manifests against the published schemas: Kubernetes' OpenAPI and the Compose spec.

Both validators are optional (kubernetes-validate ships every Kubernetes version's schemas, about
100 MB; check-jsonschema vendors the Compose spec): without them these tests are skipped, and the
structural tests of test_kubernetes.py and test_docker.py still run.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.deploy.helpers import COMPOSE, K8S, load_documents

# The oldest Kubernetes the manifests are meant for (policy/v1 PDB, batch/v1 Job, restricted PSA).
KUBERNETES_VERSION = "1.30.0"


def test_kubernetes_manifests_match_the_api_schemas_strictly() -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate to check API schemas"
    )
    checked = 0
    for path in sorted(K8S.glob("*.yaml")):
        if path.name in ("kustomization.yaml", "servicemonitor.yaml"):
            continue  # not API objects / a CRD the package has no schema for
        for doc in load_documents(path):
            # strict: an unknown field (a typo) is an error, not silently dropped by the server.
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            checked += 1
    assert checked >= 8


@pytest.mark.skipif(
    importlib.util.find_spec("check_jsonschema") is None,
    reason="pip install check-jsonschema to check the Compose spec",
)
def test_compose_file_matches_the_compose_spec() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
