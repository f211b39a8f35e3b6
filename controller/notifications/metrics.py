"""The sender's figures for /metrics, by target (a target's name, never its URL)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.notifications.sender import SenderStats


class SenderCollector(Collector):
    def __init__(self, stats: SenderStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        delivered = CounterMetricFamily(
            "spot_controller_notifications_delivered",
            "Events delivered to a notification target",
            labels=["target"],
        )
        for target, n in sorted(s.delivered.items()):
            delivered.add_metric([target], n)
        attempts = CounterMetricFamily(
            "spot_controller_notification_attempts",
            "Delivery attempts by result code (ok, http_503, errcode_45009, timeout, connect...)",
            labels=["target", "code"],
        )
        for (target, code), n in sorted(s.attempts.items()):
            attempts.add_metric([target, code], n)
        dropped = CounterMetricFamily(
            "spot_controller_notifications_dropped",
            "Events dropped: queue_full (the oldest, past the queue bound) or refused",
            labels=["target", "reason"],
        )
        for (target, reason), n in sorted(s.dropped.items()):
            dropped.add_metric([target, reason], n)
        depth = GaugeMetricFamily(
            "spot_controller_notification_queue_depth",
            "Events waiting in the outbox for a target, at the sender's last look",
            labels=["target"],
        )
        failing = GaugeMetricFamily(
            "spot_controller_notification_target_failing",
            "1 while a target's last delivery attempt failed",
            labels=["target"],
        )
        for target, n in sorted(s.depth.items()):
            depth.add_metric([target], n)
            failing.add_metric([target], 1 if s.failing.get(target) else 0)
        yield from (delivered, attempts, dropped, depth, failing)
