"""The launcher: sends launches and terminations, and turns their answers into records.

It owns the work in flight (which launches and terminations are being sent) and what was
asked of the cloud (when each terminate was requested). Every call is preceded by a fence
check, so a replica that lost its lease sends nothing; an answer goes through the pure core
(:mod:`controller.core.launches`, the backoff book) to the ledger, then pokes the next pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from anyio.abc import TaskGroup

from controller.cloud.client import CvmClient
from controller.core import launches
from controller.core.backoff import BackoffBook
from controller.core.events import Event
from controller.core.launches import LaunchIntent
from controller.core.model import EndReason, Launch
from controller.errors import (
    Blocks,
    CloudError,
    InstanceNotFound,
    LeaseLost,
    OperationRejected,
    SpotControllerError,
    StoreError,
)
from controller.logs import get_logger
from controller.reconcile.clock import Clock
from controller.reconcile.desired import DesiredState
from controller.reconcile.fleet import FleetView
from controller.reconcile.hooks import EngineHooks
from controller.reconcile.lease import Leadership
from controller.reconcile.ledger import Ledger
from controller.reconcile.metrics import Counters
from controller.reconcile.triggers import Wakeup

log = get_logger()


class Launcher:
    def __init__(
        self,
        *,
        client: CvmClient,
        clock: Clock,
        leadership: Leadership,
        ledger: Ledger,
        fleet: FleetView,
        backoff: BackoffBook,
        desired: DesiredState,
        wakeup: Wakeup,
        counters: Counters,
        hooks: EngineHooks,
    ) -> None:
        self.hooks = hooks
        self.client, self.clock, self.leadership, self.ledger = client, clock, leadership, ledger
        self.fleet, self.backoff, self.desired = fleet, backoff, desired
        self.wakeup, self.counters = wakeup, counters
        self.launches_in_flight: set[str] = set()  # client tokens whose call is running
        self.terminating_in_flight: set[str] = set()  # instance ids
        self.terminate_requested: dict[str, datetime] = {}  # instance id -> when asked
        self._tg: TaskGroup | None = None

    def attach(self, tg: TaskGroup | None) -> None:
        """Calls run in ``tg``, which outlives the loops so answers are recorded at a stop."""
        self._tg = tg

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._tg is None:
            raise SpotControllerError("the engine is not running")
        self._tg.start_soon(fn, *args)

    # ----- launches -------------------------------------------------------------------------

    def start(self, intent: LaunchIntent) -> None:
        """After its intent is recorded: send the launch."""
        launch = intent.launch
        log.info(
            Event.LAUNCH_REQUESTED,
            env=self.desired.name(launch.env_id),
            env_id=launch.env_id,
            client_token=launch.client_token,
            count=launch.count,
            zone=launch.offering.zone,
            instance_type=launch.offering.instance_type,
            max_price=launch.request.max_price,
            charge_type=launch.request.charge_type,
            cause=intent.cause,
        )
        self._spawn(self.send, launch, False)

    def resend(self, launch: Launch) -> None:
        """An unanswered launch (a timeout, a restart): the same token and request again."""
        self._spawn(self.send, launch, True)

    async def send(self, launch: Launch, resend: bool) -> None:
        token = launch.client_token
        if token in self.launches_in_flight:
            return
        self.launches_in_flight.add(token)
        try:
            if resend:
                log.info(
                    Event.LAUNCH_RESENT,
                    env=self.desired.name(launch.env_id),
                    env_id=launch.env_id,
                    client_token=token,
                    count=launch.count,
                )
            await self.leadership.check()  # a replica that lost its lease must not launch
            self.hooks.before_launch(launch.request)
            try:
                result = await self.client.run_instances(launch.request)
            except CloudError as exc:
                self.hooks.after_launch(launch.request)
                await self._failed(launch, exc)
                return
            self.hooks.after_launch(launch.request)
            await self.succeeded(launch, result.instance_ids, result.request_id)
        except LeaseLost as exc:
            # The intent stays pending: the replica that holds the lease resolves it.
            log.warning(
                Event.LAUNCH_ABANDONED, env_id=launch.env_id, client_token=token, reason=str(exc)
            )
        except StoreError as exc:
            # Not recorded: the launch stays pending and is resolved again from its tags or its
            # token once the database is back.
            log.error(Event.RECORD_FAILED, env_id=launch.env_id, client_token=token, error=str(exc))
        finally:
            self.launches_in_flight.discard(token)
            self.wakeup.poke()

    async def succeeded(
        self, launch: Launch, instance_ids: Sequence[str], request_id: str | None
    ) -> None:
        """RunInstances answered, or every instance was found by its launch tag."""
        now = self.clock.now()
        mine = self.fleet.nodes_of_launch(launch.client_token)
        outcome = launches.resolve_success(launch, mine, instance_ids, now)
        await self.ledger.record_outcome(outcome, request_id, now)
        self.backoff.after_success(launch.env_id, launch.offering)
        self.counters.add("launches", launch.env_id, "succeeded")
        self.counters.add("launched", launch.env_id, "", len(outcome.instance_ids))
        log.info(
            Event.LAUNCH_SUCCEEDED,
            env=self.desired.name(launch.env_id),
            env_id=launch.env_id,
            client_token=launch.client_token,
            instance_ids=list(outcome.instance_ids),
            count=len(outcome.instance_ids),
            request_id=request_id,
        )

    async def _failed(self, launch: Launch, exc: CloudError) -> None:
        env = self.desired.name(launch.env_id)
        fields = {"env": env, "env_id": launch.env_id, "client_token": launch.client_token}
        if exc.blocks is Blocks.NOTHING:
            self.counters.add("launches", launch.env_id, "unresolved")
            # Outcome unknown: the same token is sent again after the next sweep.
            log.warning(
                Event.LAUNCH_UNRESOLVED,
                **fields,
                reason=exc.kind,
                code=exc.code,
                request_id=exc.request_id,
            )
            return
        now = self.clock.now()
        mine = self.fleet.nodes_of_launch(launch.client_token)
        outcome = launches.resolve_failure(launch, mine, exc, now)
        await self.ledger.record_outcome(outcome, exc.request_id, now)
        self.counters.add("launches", launch.env_id, exc.kind)
        log.warning(
            Event.LAUNCH_FAILED,
            **fields,
            count=launch.count,
            reason=exc.kind,
            code=exc.code,
            request_id=exc.request_id,
            zone=launch.offering.zone,
            instance_type=launch.offering.instance_type,
        )
        block = self.backoff.after_failure(launch.env_id, launch.offering, exc, now)
        if block is not None:
            log.info(
                Event.BACKOFF_SCHEDULED,
                env=env,
                env_id=launch.env_id,
                reason=exc.kind,
                pool=str(launch.offering),
                until=block.until.strftime("%Y-%m-%dT%H:%M:%SZ"),
                failures=block.failures,
            )

    # ----- terminations ---------------------------------------------------------------------

    def terminate(self, instance_ids: Iterable[str], reason: EndReason) -> None:
        """Send a TerminateInstances for the ids not already being sent."""
        ids = [i for i in instance_ids if i not in self.terminating_in_flight]
        if ids:
            self.terminating_in_flight.update(ids)
            self._spawn(self._terminate, ids, reason)

    async def _terminate(self, instance_ids: list[str], reason: EndReason) -> None:
        now = self.clock.now()
        try:
            await self.leadership.check()
        except StoreError as exc:
            log.warning(Event.TERMINATE_ABANDONED, instance_ids=instance_ids, reason=str(exc))
            self.terminating_in_flight.difference_update(instance_ids)
            return
        try:
            await self.client.terminate_instances(instance_ids)
            self._asked(instance_ids, now)
            log.info(
                Event.TERMINATE_REQUESTED,
                instance_ids=instance_ids,
                count=len(instance_ids),
                reason=reason.value,
            )
        except InstanceNotFound as exc:
            # The client already drops the ids Tencent names as gone; this error named none.
            log.info(
                Event.TERMINATE_NOT_FOUND, instance_ids=instance_ids, request_id=exc.request_id
            )
            if len(instance_ids) > 1:
                for iid in instance_ids:  # find the unknown one by trying each alone
                    await self._terminate_alone(iid)
        except OperationRejected as exc:
            log.info(
                Event.TERMINATE_DEFERRED,
                instance_ids=instance_ids,
                code=exc.code,
                request_id=exc.request_id,
            )
        except CloudError as exc:
            self._terminate_failed(instance_ids, exc)
        finally:
            self.terminating_in_flight.difference_update(instance_ids)
            self.wakeup.mark_dirty()  # a failed request is planned again

    async def _terminate_alone(self, instance_id: str) -> None:
        try:
            await self.client.terminate_instances([instance_id])
            self._asked([instance_id], self.clock.now())
        except CloudError as exc:
            self._terminate_failed([instance_id], exc)

    def _terminate_failed(self, instance_ids: list[str], exc: CloudError) -> None:
        log.warning(
            Event.TERMINATE_FAILED,
            instance_ids=instance_ids,
            reason=exc.kind,
            code=exc.code,
            request_id=exc.request_id,
        )

    def _asked(self, instance_ids: Iterable[str], now: datetime) -> None:
        for iid in instance_ids:
            self.terminate_requested[iid] = now

    def expire(self, now: datetime, ttl_s: float) -> None:
        cutoff = now - timedelta(seconds=ttl_s)
        self.terminate_requested = {i: t for i, t in self.terminate_requested.items() if t > cutoff}
