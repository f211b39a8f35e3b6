"""The one way a command prints rows: a table for people, ``--output json`` for programs.

Rows are plain data (a view's ``to_json()``, or the settings' description); a table shows
the columns a command picks, by (header, key), with None as an empty cell.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

Columns = Sequence[tuple[str, str]]  # (header, key of the row)
TABLE_WIDTH = 220

ENVIRONMENT_COLUMNS: Columns = (
    ("name", "name"),
    ("id", "id"),
    ("zone", "zone"),
    ("type", "instance_type"),
    ("max price", "max_price"),
    ("desired", "desired_count"),
    ("running", "running_count"),
    ("spot", "spot_running"),
    ("on-demand", "on_demand_running"),
    ("compensating", "compensating"),
    ("CNY/h", "hourly_spend"),
    ("pending", "pending_count"),
    ("launching", "launching_count"),
    ("status", "status"),
    ("reason", "status_reason"),
    ("next attempt", "next_attempt_at"),
)
COST_COLUMNS: Columns = (
    ("charge type", "charge_type"),
    ("instances", "instances"),
    ("instance-hours", "instance_hours"),
    ("spend (CNY)", "spend"),
    ("without a price", "unpriced"),
)
# The refreshing `status` view: what converges, and when the controller last looked.
STATUS_COLUMNS: Columns = (
    ("name", "name"),
    ("status", "status"),
    ("desired", "desired_count"),
    ("running", "running_count"),
    ("pending", "pending_count"),
    ("launching", "launching_count"),
    ("reason", "status_reason"),
    ("next attempt", "next_attempt_at"),
    ("last reconciled", "last_reconciled_at"),
)
ACTIVITY_COLUMNS: Columns = (
    ("activity", "id"),
    ("type", "activity_type"),
    ("state", "state"),
    ("node", "node_id"),
    ("instance", "instance_id"),
    ("cause", "cause"),
    ("reason", "state_reason"),
    ("start", "start_time"),
    ("end", "end_time"),
)
NODE_COLUMNS: Columns = (
    ("node", "id"),
    ("instance", "instance_id"),
    ("state", "state"),
    ("cloud state", "cloud_state"),
    ("zone", "zone"),
    ("type", "instance_type"),
    ("charge", "charge_type"),
    ("role", "role"),
    ("CNY/h", "hourly_price"),
    ("launched", "launched_at"),
    ("ended", "ended_at"),
    ("reason", "end_reason"),
)
SETTING_COLUMNS: Columns = (
    ("variable", "env"),
    ("value", "value"),
    ("unit", "unit"),
    ("meaning", "doc"),
)

OUTPUT_OPTION: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Columns, title: str | None = None) -> Table:
    shown = Table(*(header for header, _ in columns), title=title)
    for row in rows:
        shown.add_row(*(_cell(row[key]) for _, key in columns))
    return shown


def print_table(shown: Table) -> None:
    Console(width=TABLE_WIDTH).print(shown)


def emit(rows: Sequence[Mapping[str, Any]], output: str, columns: Columns) -> None:
    """Rows as a JSON array, or as a table of ``columns``."""
    if output == "json":
        click.echo(json.dumps(list(rows), indent=2, ensure_ascii=False))
    else:
        print_table(table(rows, columns))


def emit_one(row: Mapping[str, Any], output: str) -> None:
    """One record as a JSON object, or as a table of its fields and values."""
    if output == "json":
        click.echo(json.dumps(row, indent=2, ensure_ascii=False))
        return
    shown = Table("field", "value", show_header=False)
    for key, value in row.items():
        shown.add_row(key, _cell(value))
    print_table(shown)
