"""deploy/prometheus and deploy/grafana: the rules are valid, each alert has its runbook, and
every metric an alert or a panel names is one a real daemon exports on /metrics."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml

from controller.notifications.service import Targets
from controller.service import Environments
from controller.store.store import Store
from tests.deploy.helpers import DEPLOY, GUIDE, free_port
from tests.notifications.receiver import receiving
from tests.reliability.fleet import daemon_environ
from tests.reliability.helpers import running_daemon
from tests.support.polling import wait_until
from tests.support.world import ENVIRONMENT, fast_simulator, simulator_server

RULES = DEPLOY / "prometheus" / "alerts.yaml"
OPERATOR_RULES = DEPLOY / "prometheus" / "prometheusrule.yaml"
DASHBOARD = DEPLOY / "grafana" / "spot-controller.json"
METRIC_RE = re.compile(r"\bspot_controller_[a-z_]+\b")


def _groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _groups() for rule in group["rules"]]


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is needed: apt-get install prometheus (.ci/run installs it)"
    return found


def _expressions() -> list[str]:
    exprs = [rule["expr"] for rule in _rules()]
    dashboard = json.loads(DASHBOARD.read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return exprs


def test_rules_pass_promtool(tmp_path: Path) -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The operator's copy, as Prometheus would load its groups.
    [doc] = [d for d in yaml.safe_load_all(OPERATOR_RULES.read_text()) if d]
    copy = tmp_path / "operator.yaml"
    copy.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
    result = subprocess.run(
        [_promtool(), "check", "rules", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheusrule_carries_the_same_groups() -> None:
    [doc] = [d for d in yaml.safe_load_all(OPERATOR_RULES.read_text()) if d]
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert doc["spec"]["groups"] == _groups()


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces to dashes."""
    found = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return found


def test_every_alert_links_its_runbook_section() -> None:
    anchors = _anchors(GUIDE.read_text())
    for rule in _rules():
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == "docs/operations.md", rule["alert"]
        assert anchor == f"runbook-{rule['alert'].lower()}", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no section {anchor} in docs/operations.md"
        assert rule["labels"]["severity"] in ("warning", "critical")


def test_the_dashboard_shows_what_the_issue_asks() -> None:
    text = " ".join(_expressions())
    for metric in (
        "spot_controller_environment_desired",
        "spot_controller_environment_running",
        "spot_controller_launches_total",
        "spot_controller_instances_ended_total",
        "spot_controller_pool_backoff_until_seconds",
        "spot_controller_pass_duration_seconds",
        "spot_controller_cloud_calls_total",
        "spot_controller_spend_cny_total",
    ):
        assert metric in text, metric


def _exported(text: str) -> set[str]:
    """Names on /metrics: sample names, and each family's (a counter's with _total)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "counter":
                names.add(name + "_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


async def _seed(url: str, hook: str) -> None:
    store = await Store.open(url, migrate_schema=True)
    try:
        await Environments(store, "ap-guangzhou").create({**ENVIRONMENT})
        await Targets(store, "default").add("hook", hook, "webhook", [], [], "k")
    finally:
        await store.close()


def test_every_metric_named_is_exported_by_a_real_daemon(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/metrics.db"
    port = free_port()
    with receiving() as rec, simulator_server(fast_simulator()) as sim_url:
        asyncio.run(_seed(url, rec.url))
        variables = daemon_environ(url, sim_url, http_addr=f"127.0.0.1:{port}")
        with running_daemon(variables, tmp_path) as daemon:
            text = ""

            def scraped() -> bool:
                nonlocal text
                try:
                    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                except httpx.HTTPError:
                    return False
                return "spot_controller_notifications_delivered_total" in text

            assert wait_until(scraped, 30), daemon.stderr()
            assert daemon.stop() == 0, daemon.stderr()
    exported = _exported(text)
    named = {m for expr in _expressions() for m in METRIC_RE.findall(expr)}
    missing = sorted(named - exported)
    assert not missing, missing
