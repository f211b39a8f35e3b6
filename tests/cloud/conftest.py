"""Fixtures of the cloud tests."""

from __future__ import annotations

import pytest

from tests.cloud.cloud_fakes import VirtualClock


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()
