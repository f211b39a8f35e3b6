"""The optional HTTP listener: /healthz, /readyz and /metrics (Prometheus text format).

It reads the engine's public view at request time and never changes it. /healthz is the loop's
heartbeat (a stuck loop turns it red, the failure mode kopf users report); /readyz says whether
this replica can do its job (database reachable and migrated, first observation done).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import anyio
import uvicorn
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controller import listening
from controller.console import Console
from controller.console import off as console_off
from controller.core.model import NodeState
from controller.core.placement import stock_level
from controller.errors import SpotControllerError
from controller.store import migrate
from controller.store.database import check_connection

if TYPE_CHECKING:
    from controller.reconcile.engine import EngineView

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
READY_CHECK_TIMEOUT_S = 2.0


def stale_after_s(poll_interval_s: float) -> float:
    """How long without a finished pass before the loop counts as stuck."""
    return max(30.0, 10 * poll_interval_s)


def _capacity_metrics(v: EngineView) -> Iterator[Metric]:
    """Running instances by charge type and role, hourly spend, instance-hours and spend."""
    running = GaugeMetricFamily(
        "spot_controller_environment_running_by_charge",
        "RUNNING instances by charge type and role (base, on_demand, spot, compensation)",
        labels=["env", "env_id", "charge_type", "role"],
    )
    spend = GaugeMetricFamily(
        "spot_controller_environment_hourly_spend_cny",
        "Hourly spend of the RUNNING instances, CNY per hour (spot at its price, else its bid)",
        labels=["env", "env_id"],
    )
    per_env: dict[str, float] = {}
    for env_id, charge_type, role, count, charged in v.capacity():
        running.add_metric([v.env_name(env_id), env_id, charge_type, role], count)
        per_env[env_id] = per_env.get(env_id, 0.0) + float(charged)
    for env_id, total in sorted(per_env.items()):
        spend.add_metric([v.env_name(env_id), env_id], total)
    hours = CounterMetricFamily(
        "spot_controller_instance_hours",
        "Instance-hours RUNNING since the daemon started, by charge type",
        labels=["env_id", "charge_type"],
    )
    paid = CounterMetricFamily(
        "spot_controller_spend_cny",
        "Spend in CNY since the daemon started, by charge type",
        labels=["env_id", "charge_type"],
    )
    for env_id, charge_type, seconds, cny in v.usage():
        hours.add_metric([env_id, charge_type], seconds / 3600)
        paid.add_metric([env_id, charge_type], cny)
    yield from (running, spend, hours, paid)


def _offering_metrics(v: EngineView) -> Iterator[Metric]:
    """The offering cache: price, stock class and unavailability per offering."""
    labels = ["zone", "instance_type", "charge_type"]
    price = GaugeMetricFamily(
        "spot_controller_offering_price_cny",
        "Hourly price of an offering as DescribeZoneInstanceConfigInfos last gave it",
        labels=labels,
    )
    stock = GaugeMetricFamily(
        "spot_controller_offering_stock_class",
        "Stock class of an offering: 3 EnoughStock, 2 NormalStock, 1 UnderStock, 0 WithoutStock "
        "or sold out",
        labels=labels,
    )
    unavailable = GaugeMetricFamily(
        "spot_controller_offering_unavailable_until_seconds",
        "Unix time before which a failed launch keeps the offering unavailable (0: open)",
        labels=labels,
    )
    for row in v.offerings():
        key = [row.offering.zone, row.offering.instance_type, row.offering.charge_type]
        if row.offer.price is not None:
            price.add_metric(key, float(row.offer.price))
        stock.add_metric(key, stock_level(row.offer))
        until = row.unavailable_until
        unavailable.add_metric(key, until.timestamp() if until is not None else 0.0)
    yield from (price, stock, unavailable)


class EngineCollector(Collector):
    """Prometheus metrics computed from the engine's view at scrape time."""

    def __init__(self, view: EngineView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        v = self.view
        env_labels = ["env", "env_id"]
        desired = GaugeMetricFamily(
            "spot_controller_environment_desired",
            "Desired instances per environment",
            labels=env_labels,
        )
        states = {
            NodeState.RUNNING: GaugeMetricFamily(
                "spot_controller_environment_running", "RUNNING instances", labels=env_labels
            ),
            NodeState.CREATING: GaugeMetricFamily(
                "spot_controller_environment_pending", "PENDING instances", labels=env_labels
            ),
            NodeState.SUBMITTED: GaugeMetricFamily(
                "spot_controller_environment_launching",
                "Instances asked for, RunInstances not answered yet",
                labels=env_labels,
            ),
            NodeState.DELETING: GaugeMetricFamily(
                "spot_controller_environment_terminating",
                "Instances being terminated",
                labels=env_labels,
            ),
        }
        counts = v.node_counts()
        for env_id, spec in v.environments.items():
            labels = [spec.name, env_id]
            desired.add_metric(labels, spec.desired_count)
            for state, family in states.items():
                family.add_metric(labels, counts.get((env_id, state), 0))
        yield desired
        yield from states.values()

        status = GaugeMetricFamily(
            "spot_controller_environment_status",
            "1 for the environment's current status",
            labels=[*env_labels, "status"],
        )
        for env_id, env_status in v.statuses().items():
            status.add_metric([v.env_name(env_id), env_id, env_status.value], 1)
        yield status

        families = {
            "launches": CounterMetricFamily(
                "spot_controller_launches",
                "RunInstances calls by result",
                labels=["env_id", "result"],
            ),
            "launched": CounterMetricFamily(
                "spot_controller_instances_launched", "Instances launched", labels=["env_id"]
            ),
            "ended": CounterMetricFamily(
                "spot_controller_instances_ended",
                "Instances ended, by reason (interrupted, released, scale_in, ...)",
                labels=["env_id", "reason"],
            ),
        }
        for (metric, env_id, label), value in v.counters():
            labels = [env_id] if metric == "launched" else [env_id, label]
            families[metric].add_metric(labels, value)
        yield from families.values()

        calls = CounterMetricFamily(
            "spot_controller_cloud_calls",
            "CVM API calls by action and result code",
            labels=["action", "code"],
        )
        for (action, code), value in v.cloud_calls():
            calls.add_metric([action, code], value)
        yield calls

        backoff = GaugeMetricFamily(
            "spot_controller_pool_backoff_until_seconds",
            "Unix time before which a pool is not tried (0 once expired)",
            labels=["env_id", "zone", "instance_type", "kind", "charge_type"],
        )
        for blocked, offering, block, active in v.blocks():
            until = block.until.timestamp() if active else 0.0
            labels = [blocked or "", offering.zone, offering.instance_type, block.kind]
            backoff.add_metric([*labels, offering.charge_type], until)
        yield backoff
        yield from _capacity_metrics(v)
        yield from _offering_metrics(v)

        yield GaugeMetricFamily(
            "spot_controller_pass_duration_seconds",
            "Duration of the last reconcile pass",
            value=v.last_pass_duration_s,
        )
        yield CounterMetricFamily("spot_controller_passes", "Reconcile passes", value=v.passes)
        yield CounterMetricFamily(
            "spot_controller_passes_skipped",
            "Passes that found nothing changed since the last plan and planned nothing",
            value=v.passes_skipped,
        )
        yield GaugeMetricFamily(
            "spot_controller_lease_leader",
            "1 while this replica holds the controller lease and acts",
            value=1 if v.leader else 0,
        )
        yield GaugeMetricFamily(
            "spot_controller_lease_epoch",
            "Epoch (fencing token) of the lease this replica holds; 0 when standby",
            value=v.epoch or 0,
        )
        yield GaugeMetricFamily(
            "spot_controller_observed",
            "1 once the first complete sweep is done",
            value=1 if v.observed else 0,
        )


def build_app(
    view: EngineView, console: Console | None = None, collectors: Sequence[Collector] = ()
) -> Starlette:
    """The listener's app; the console under /console/ when one is given (else a 404 there
    saying how to turn it on); ``collectors``: more metrics (the notification sender's)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(view))
    for collector in collectors:
        registry.register(collector)
    stale_s = stale_after_s(view.poll_interval_s)

    async def healthz(_: Request) -> Response:
        now = view.monotonic()
        # A leader proves life by finishing passes; a standby by its lease loop turning.
        beat = view.last_lease_tick_at if view.standby else view.last_pass_at
        last = beat if beat is not None else view.started_at
        age = now - last
        body = {
            "status": "ok" if age <= stale_s else "stuck",
            "last_pass_age_s": round(age, 3),
            "passes": view.passes,
            "stale_after_s": stale_s,
        }
        return JSONResponse(body, status_code=200 if age <= stale_s else 503)

    async def readyz(_: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            with anyio.fail_after(READY_CHECK_TIMEOUT_S):
                await check_connection(view.store.engine)
                checks["database"] = "ok"
                at_head = await migrate.is_at_head(view.store.engine)
                checks["migrations"] = "ok" if at_head else "not at head"
        except (SpotControllerError, TimeoutError) as exc:
            checks["database"] = f"unreachable: {exc or 'timeout'}"
        except Exception as exc:  # any failure of the check is "not ready"
            checks["database"] = f"error: {type(exc).__name__}"
        standby = view.standby
        if standby:
            checks["observation"] = "ok"  # a standby is ready to take over; it observes then
        else:
            checks["observation"] = "ok" if view.observed else "waiting for first sweep"
        ready = all(v == "ok" for v in checks.values())
        body = {"ready": ready, "role": "standby" if standby else "leader", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=PROMETHEUS_CONTENT_TYPE)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            console.mount() if console is not None else console_off(),
        ]
    )


def bind(addr: str) -> socket.socket:
    """Bind ``host:port`` now, so a taken port is a clear one-line error at start."""
    return listening.bind(addr, "SPOT_CONTROLLER_HTTP_ADDR")


async def serve(
    view: EngineView,
    sock: socket.socket,
    stop: anyio.Event,
    console: Console | None = None,
    collectors: Sequence[Collector] = (),
) -> None:
    """Serve the listener on a bound socket until ``stop`` is set."""
    app = build_app(view, console, collectors)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = listening.QuietServer(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: server.serve(sockets=[sock]))
        if console is not None:
            tg.start_soon(console.run, stop)
        await stop.wait()
        server.should_exit = True
    sock.close()
