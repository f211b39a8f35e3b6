"""API keys: a SecretId/SecretKey pair per caller, the secret stored encrypted.

TC3-HMAC-SHA256 needs the secret itself to check a signature, so a one-way hash cannot serve.
Each secret is encrypted with AES-256-GCM under a key derived (HKDF-SHA256) from
SPOT_CONTROLLER_API_MASTER_KEY, the SecretId bound as associated data so a ciphertext cannot
be moved to another key's row. A copy of the database alone gives away no secret; the master
key alone opens nothing without the database.
"""

from __future__ import annotations

import base64
import os
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from controller.errors import ConfigError, ValidationFailed
from controller.secrets import Secret
from controller.store.store import Store

VERSION = "v1"
NONCE_BYTES = 12
SECRET_ID_PREFIX = "AKID"
_ALPHABET = string.ascii_letters + string.digits
KEY_NAME_MAX = 64
# `run --simulate` only: documented in the README, never to be used anywhere else.
DEMO_KEY_NAME = "demo"
DEMO_SECRET_ID = "AKIDspotcontrollerdemo00000000000000"
DEMO_SECRET_KEY = "spot-controller-demo-api-key-not-for-production"
DEMO_MASTER_KEY = "spot-controller-demo-master-key-not-for-production"


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: never its secret."""

    name: str
    secret_id: str
    read_only: bool
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ApiKey:
        return cls(
            row["name"],
            row["secret_id"],
            bool(row["read_only"]),
            row["created_at"],
            row["revoked_at"],
        )

    def to_json(self) -> dict[str, Any]:
        def when(t: datetime | None) -> str | None:
            return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")

        return {
            "name": self.name,
            "secret_id": self.secret_id,
            "read_only": self.read_only,
            "created_at": when(self.created_at),
            "revoked_at": when(self.revoked_at),
        }


class Cipher:
    """Encrypts and decrypts key secrets under the master key."""

    def __init__(self, master_key: Secret) -> None:
        if not master_key:
            raise ConfigError(
                "SPOT_CONTROLLER_API_MASTER_KEY must be set to create or check API keys "
                "(e.g. the output of `openssl rand -base64 32`)"
            )
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"spot-controller api keys v1"
        ).derive(master_key.reveal().encode("utf-8"))
        self._aead = AESGCM(derived)

    def encrypt(self, secret_id: str, secret_key: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret_key.encode("utf-8"), secret_id.encode("utf-8"))
        return f"{VERSION}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def decrypt(self, secret_id: str, stored: str) -> str | None:
        """The secret, or None if it was not sealed under this master key for this SecretId."""
        version, _, payload = stored.partition(":")
        if version != VERSION:
            return None
        try:
            raw = base64.b64decode(payload, validate=True)
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], secret_id.encode())
        except (InvalidTag, ValueError):
            return None
        return plain.decode("utf-8")


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _check_name(name: str) -> str:
    if not 1 <= len(name) <= KEY_NAME_MAX or not all(c.isalnum() or c in "-_." for c in name):
        raise ValidationFailed(
            "name", f"must be 1 to {KEY_NAME_MAX} letters, digits, '-', '_' or '.'"
        )
    return name


@dataclass(frozen=True)
class LiveKey:
    """A key that may call, with its secret: only ever held in memory, for one request."""

    name: str
    secret_id: str
    secret_key: Secret
    read_only: bool


class KeyRing:
    """The API keys of one database."""

    def __init__(self, store: Store, cipher: Cipher) -> None:
        self.store = store
        self.cipher = cipher

    async def create(
        self, name: str, *, read_only: bool = False, secret_id: str = "", secret_key: str = ""
    ) -> tuple[ApiKey, Secret]:
        """A new key and its secret (shown once: only the ciphertext is stored)."""
        _check_name(name)
        secret_id = secret_id or SECRET_ID_PREFIX + _random(32)
        secret_key = secret_key or _random(32)
        sealed = self.cipher.encrypt(secret_id, secret_key)
        row = await self.store.insert_api_key(name, secret_id, sealed, read_only=read_only)
        return ApiKey.from_row(row), Secret(secret_key)

    async def list(self) -> list[ApiKey]:
        return [ApiKey.from_row(r) for r in await self.store.list_api_keys()]

    async def revoke(self, name: str) -> None:
        if not await self.store.revoke_api_key(name):
            raise ValidationFailed("name", f"no live API key named {name!r}")

    async def find(self, secret_id: str) -> LiveKey | None:
        """The live key of ``secret_id``; None if unknown, revoked or not readable."""
        row = await self.store.api_key_by_secret_id(secret_id)
        if row is None or row["revoked_at"] is not None:
            return None
        secret_key = self.cipher.decrypt(secret_id, row["secret_key_encrypted"])
        if secret_key is None:
            return None
        return LiveKey(row["name"], secret_id, Secret(secret_key), bool(row["read_only"]))

    async def ensure_demo_key(self) -> bool:
        """`run --simulate`: the documented demo key, created if there is none; True if made."""
        if await self.store.api_key_by_secret_id(DEMO_SECRET_ID) is not None:
            return False
        await self.create(DEMO_KEY_NAME, secret_id=DEMO_SECRET_ID, secret_key=DEMO_SECRET_KEY)
        return True
