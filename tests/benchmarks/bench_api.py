"""How long the BatchCompute-compatible API takes to answer, through Tencent's batch SDK.

Serves the API over loopback on a fresh database (a SQLite file, or a PostgreSQL database
created next to ``--database-url`` and dropped afterwards) with
``--environments`` environments of ``--nodes`` live node records each, then times ``--calls``
sequential calls of each action with the official SDK (a new HTTP connection is not opened per
call: the SDK keeps one). Prints median and 95th percentile per action.

    .venv/bin/python tests/benchmarks/bench_api.py --environments 100 --calls 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from controller import logs
from controller.settings import Settings
from controller.store.schema import compute_nodes
from controller.store.store import Store
from tests.api.rig import Batch, api_endpoint, api_settings, new_key, signed_post
from tests.benchmarks.rig import database


async def seed(store: Store, environments: int, nodes: int) -> str:
    first = ""
    rows = []
    for i in range(environments):
        env = await store.insert_environment(
            {
                "name": f"bench-{i:05d}",
                "zone": "ap-guangzhou-3",
                "instance_type": "S2.MEDIUM4",
                "image_id": "img-pmqg1cw7",
                "max_price": "0.6",
                "desired_count": nodes,
            }
        )
        first = first or env["id"]
        for n in range(nodes):
            rows.append(
                {
                    "id": f"node-{i:04d}{n:04d}",
                    "env_id": env["id"],
                    "instance_id": f"ins-{i:04d}{n:04d}",
                    "state": "RUNNING",
                    "zone": "ap-guangzhou-3",
                    "instance_type": "S2.MEDIUM4",
                    "created_at": datetime.now(UTC),
                }
            )
    if rows:
        async with store.engine.begin() as conn:
            await conn.execute(compute_nodes.insert(), rows)
    return first


async def main(args: argparse.Namespace) -> None:
    logs.configure("console", "warning")  # the audit line of every Modify is not the figure
    with tempfile.TemporaryDirectory() as tmp:
        async with database(args.database_url or None, Path(tmp)) as url:
            await run(args, url)


async def run(args: argparse.Namespace, url: str) -> None:
    settings = api_settings(Settings.from_env({}, database_url=url), api_rate_limit=1e6)
    store = await Store.open(url, migrate_schema=True)
    try:
        env_id = await seed(store, args.environments, args.nodes)
        async with api_endpoint(settings, store) as (endpoint, _):
            key = await new_key(store, "bench")
            batch = Batch(endpoint, *key)
            calls = {
                "DescribeComputeEnvs": {"Limit": 100},
                "DescribeComputeEnv": {"EnvId": env_id},
                "ModifyComputeEnv": {"EnvId": env_id, "DesiredComputeNodeCount": args.nodes},
            }
            print(
                f"{args.environments} environments x {args.nodes} nodes, {args.calls} calls "
                f"each, database {url.split(':')[0]}"
            )
            for action, params in calls.items():
                times = []
                for _ in range(args.calls):
                    start = time.perf_counter()
                    await batch(action, params)
                    times.append(time.perf_counter() - start)
                times.sort()
                p95 = times[int(0.95 * (len(times) - 1))]
                print(
                    f"{action:22s} median {statistics.median(times) * 1000:6.1f} ms  "
                    f"p95 {p95 * 1000:6.1f} ms  (batch SDK)"
                )
            # The same calls in one write each (httpx): the SDK's requests sends headers and
            # body apart, and waits out the peer's delayed ACK (about 40 ms on Linux).
            for action, params in calls.items():
                body = json.dumps(params).encode()
                times = []
                for _ in range(args.calls):
                    start = time.perf_counter()
                    answer = await signed_post(endpoint, *key, action, body)
                    times.append(time.perf_counter() - start)
                    assert "Error" not in answer, answer
                times.sort()
                p95 = times[int(0.95 * (len(times) - 1))]
                print(
                    f"{action:22s} median {statistics.median(times) * 1000:6.1f} ms  "
                    f"p95 {p95 * 1000:6.1f} ms  (httpx, a new connection per call)"
                )
    finally:
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--environments", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--database-url", default="")
    anyio.run(main, parser.parse_args())
