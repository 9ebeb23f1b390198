"""The bot's signing key: from an environment variable or an encrypted keystore.

The key never appears in a log line, an exception message or a ``repr``: ``Signer`` shows
its address only, and load errors say where the key was looked for, never what was there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from bot.errors import ConfigError


class Signer:
    """Signs transactions for one account."""

    __slots__ = ("_account", "address")

    def __init__(self, account: LocalAccount) -> None:
        self._account = account
        self.address: str = account.address

    def __repr__(self) -> str:
        return f"Signer({self.address})"

    __str__ = __repr__

    def sign(self, tx: Mapping[str, Any]) -> bytes:
        """The raw signed transaction (EIP-1559 when ``tx`` has ``maxFeePerGas``)."""
        signed = self._account.sign_transaction(dict(tx))
        return bytes(signed.raw_transaction)

    @classmethod
    def from_key(cls, key: str) -> Signer:
        try:
            return cls(Account.from_key(key))
        except Exception:
            raise ConfigError(
                "executor.private_key_env", "the key is not a 32-byte hex private key"
            ) from None


def load_signer(
    *,
    key_env: str,
    keystore: Path | None = None,
    password_file: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Signer | None:
    """The configured signer, or None when no key is configured (the bot then dry-runs).

    A keystore (with its password file) wins over the environment variable.
    """
    if keystore is not None:
        if password_file is None:
            raise ConfigError(
                "executor.password_file", "a keystore needs a password file", fix="set it"
            )
        try:
            blob = json.loads(keystore.read_text())
            password = password_file.read_text().rstrip("\n")
        except FileNotFoundError as e:
            raise ConfigError("executor.keystore", f"{e.filename} not found") from None
        except json.JSONDecodeError:
            raise ConfigError("executor.keystore", f"{keystore} is not a JSON keystore") from None
        try:
            key = Account.decrypt(blob, password)
        except ValueError:
            raise ConfigError(
                "executor.password_file", f"wrong password for keystore {keystore}"
            ) from None
        return Signer(Account.from_key(key))
    value = (os.environ if env is None else env).get(key_env)
    if not value:
        return None
    return Signer.from_key(value.strip())
