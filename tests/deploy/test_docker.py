"""deploy/docker: the image's shape, its health check, a compose file whose parts fit together."""

from __future__ import annotations

import fnmatch
import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import yaml

from controller import __version__
from controller.settings import SIMULATOR_SECRET_ID, SIMULATOR_SECRET_KEY
from tests.deploy.helpers import (
    COMPOSE,
    DEFAULT_SHUTDOWN_DEADLINE_S,
    DOCKERFILE,
    HTTP_PORT,
    ROOT,
    SETTINGS_ENV,
    compose,
    dockerfile_instructions,
    healthcheck_python,
)

IMAGE = f"spot-controller:{__version__}"
IMAGE_SERVICES = ("migrate", "simulator", "controller")


def _final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def _duration_s(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


# ----- the Dockerfile ---------------------------------------------------------------------------


def test_image_is_multi_stage_and_runs_the_daemon_as_non_root() -> None:
    froms = [args for word, args in dockerfile_instructions() if word == "FROM"]
    assert len(froms) >= 2
    assert " AS build" in froms[0]
    final = dict(_final_stage())
    assert yaml.safe_load(final["ENTRYPOINT"]) == ["spot-controller"]
    assert yaml.safe_load(final["CMD"]) == ["run"]
    assert final["EXPOSE"] == str(HTTP_PORT)
    uid, _, gid = final["USER"].partition(":")
    assert int(uid) > 0
    assert int(gid) > 0
    # The wheels come from the build stage; no compiler or sources in the final stage.
    assert not any(word == "COPY" and "--from" not in args for word, args in _final_stage())


def test_image_bakes_in_no_secret() -> None:
    for word, args in dockerfile_instructions():
        if word in ("ENV", "ARG"):
            assert not any(s in args.upper() for s in ("SECRET", "PASSWORD", "TOKEN")), args
    env = " ".join(args for word, args in _final_stage() if word == "ENV")
    assert f"SPOT_CONTROLLER_HTTP_ADDR=0.0.0.0:{HTTP_PORT}" in env


def test_build_context_holds_what_the_build_stage_copies() -> None:
    """Context = repository root, filtered by Dockerfile.dockerignore (BuildKit reads it)."""
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [p.strip() for p in ignore if p.strip() and not p.startswith("#")]

    def sent(path: str) -> bool:
        included = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            body = pattern[1:].rstrip("/") if negate else pattern.rstrip("/")
            if fnmatch.fnmatch(path, body) or path.startswith(body + "/"):
                included = negate
        return included

    copies = [args.split() for word, args in dockerfile_instructions() if word == "COPY"]
    sources = [src for args in copies if not args[0].startswith("--") for src in args[:-1]]
    assert {"pyproject.toml", "README.md", "controller", "migrations"} <= set(sources)
    for src in sources:
        assert (ROOT / src).exists(), src
        assert sent(src), f"{src} is excluded by Dockerfile.dockerignore"
    assert not sent(".venv")
    assert not sent("spot-controller.db")


@pytest.fixture
def health_server() -> Iterator[tuple[int, list[int]]]:
    """A stand-in /healthz whose answer the test sets (first item of the list)."""
    status = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status[0] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], status
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_passes_on_200_and_fails_on_503(health_server: tuple[int, list[int]]) -> None:
    port, status = health_server
    env = {"SPOT_CONTROLLER_HTTP_ADDR": f"0.0.0.0:{port}"}
    code = healthcheck_python()

    def check() -> int:
        return subprocess.run([sys.executable, "-c", code], env=env, timeout=30).returncode

    assert check() == 0
    status[0] = 503
    assert check() != 0


# ----- the compose file -------------------------------------------------------------------------


def test_compose_has_postgres_migrate_simulator_and_controller() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", *IMAGE_SERVICES}
    for name in IMAGE_SERVICES:
        service = services[name]
        assert service["image"] == IMAGE, name
        context = (COMPOSE.parent / service["build"]["context"]).resolve()
        assert context == ROOT, name
        assert (context / service["build"]["dockerfile"]).resolve() == DOCKERFILE, name
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["controller"]["command"] == ["run"]
    assert services["simulator"]["command"][:2] == ["simulator", "serve"]


def _simulator_address() -> tuple[str, int]:
    command = compose()["services"]["simulator"]["command"]
    host = command[command.index("--host") + 1]
    port = int(command[command.index("--port") + 1])
    return host, port


def test_controller_talks_to_the_simulator_service_with_the_same_credentials() -> None:
    services = compose()["services"]
    controller = services["controller"]["environment"]
    simulator = services["simulator"]["environment"]
    host, port = _simulator_address()
    assert host == "0.0.0.0"  # reachable from the controller's container
    assert controller["SPOT_CONTROLLER_CVM_ENDPOINT"] == f"http://simulator:{port}"
    for key in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_REGION"):
        assert controller[key] == simulator[key], key
    # The simulator's documented credentials: nothing in the file is a real secret.
    assert controller["TENCENTCLOUD_SECRET_ID"] == SIMULATOR_SECRET_ID
    assert controller["TENCENTCLOUD_SECRET_KEY"] == SIMULATOR_SECRET_KEY


def test_controller_and_migrate_share_the_postgres_service_database() -> None:
    services = compose()["services"]
    pg = services["postgres"]["environment"]
    assert set(services["simulator"]["environment"]) <= SETTINGS_ENV
    for name in ("migrate", "controller"):
        env = services[name]["environment"]
        assert set(env) <= SETTINGS_ENV, name
        url = urlsplit(env["SPOT_CONTROLLER_DATABASE_URL"])
        assert url.scheme == "postgresql", name
        assert (url.hostname, url.port) == ("postgres", 5432), name
        assert (url.username, url.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
        assert url.path == "/" + pg["POSTGRES_DB"], name
    # The migrate service is the only one that migrates.
    assert services["controller"]["environment"]["SPOT_CONTROLLER_MIGRATE_ON_START"] == "false"


def test_start_order_is_postgres_then_migrate_then_controller() -> None:
    services = compose()["services"]
    assert "healthcheck" in services["postgres"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    depends = services["controller"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["simulator"]["condition"] in ("service_started", "service_healthy")
    if depends["simulator"]["condition"] == "service_healthy":
        assert "healthcheck" in services["simulator"]
    # The image's HEALTHCHECK asks the controller's /healthz: the other services replace it.
    assert services["migrate"]["healthcheck"] == {"disable": True}


def test_controller_serves_health_on_8080_and_gets_time_to_shut_down() -> None:
    controller = compose()["services"]["controller"]
    assert controller["environment"]["SPOT_CONTROLLER_HTTP_ADDR"] == f"0.0.0.0:{HTTP_PORT}"
    assert any(p.endswith(f":{HTTP_PORT}:{HTTP_PORT}") for p in controller["ports"])
    assert _duration_s(controller["stop_grace_period"]) > DEFAULT_SHUTDOWN_DEADLINE_S
    assert controller.get("stop_signal", "SIGTERM") == "SIGTERM"
