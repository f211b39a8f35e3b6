"""The console's tests: Playwright drives Debian's Chromium (never a downloaded browser)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from controller.service import Environments
from controller.store.store import Store
from tests.console.rig import asgi_console

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium_present() -> bool:
    return Path(CHROMIUM).exists()


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    if not _chromium_present():
        message = f"{CHROMIUM} missing: apt-get install -y chromium (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the pages' screenshots go: SPOT_CONTROLLER_TEST_SCREENSHOTS, else the test's tmp."""
    chosen = os.environ.get("SPOT_CONTROLLER_TEST_SCREENSHOTS")
    directory = Path(chosen) if chosen else tmp_path / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
async def envs(store: Store) -> Environments:
    return Environments(store, "ap-guangzhou")


@pytest.fixture
async def http(envs: Environments) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_console(envs) as client:
        yield client
