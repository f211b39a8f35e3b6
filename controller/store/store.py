"""The store: every database operation, named by its intent.

The CLI, the service and the engine never write SQL; they call these methods, grouped by who
calls them: :class:`~controller.store.environments.EnvironmentQueries` (the user's side),
:class:`~controller.store.records.EngineRecords` (the engine's reads and records),
:class:`~controller.store.lease.LeaseQueries` (the controller lease),
:class:`~controller.store.api_records.ApiQueries` (the API's keys, audit log, tokens),
:class:`~controller.store.outbox.OutboxQueries` (notification targets and their queues), over
:class:`~controller.store.connection.StoreBase` (the engine, transactions, the fence).
"""

from __future__ import annotations

from controller.store.api_records import ApiQueries
from controller.store.connection import Fence
from controller.store.environments import EnvironmentQueries
from controller.store.lease import LeaseQueries
from controller.store.outbox import OutboxQueries
from controller.store.records import EngineRecords

__all__ = ["Fence", "Store"]


class Store(EnvironmentQueries, EngineRecords, LeaseQueries, ApiQueries, OutboxQueries):
    """One database, every operation on it."""
