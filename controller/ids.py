"""Resource ids in Tencent's format: a prefix, a dash and 8 lowercase alphanumerics."""

from __future__ import annotations

import re
import secrets
import string

_ALPHABET = string.ascii_lowercase + string.digits
ID_PATTERN = re.compile(r"^[a-z]+-[a-z0-9]{8}$")


def new_id(prefix: str) -> str:
    """A fresh random id such as ``env-0a1b2c3d``."""
    return prefix + "-" + "".join(secrets.choice(_ALPHABET) for _ in range(8))


def new_env_id() -> str:
    return new_id("env")


def new_node_id() -> str:
    return new_id("node")


def new_activity_id() -> str:
    return new_id("act")
