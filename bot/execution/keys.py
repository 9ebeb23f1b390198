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
                "executor.private_key_env",
                "the key is not a 32-byte hex private key",
                fix="put a 0x-prefixed 64-hex-digit key in the variable it names",
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
                "executor.password_file",
                "a keystore needs a password file",
                fix="set executor.password_file to a file holding the keystore's password",
            )
        # Each file read on its own, so the error names the setting that points at it.
        try:
            blob = json.loads(keystore.read_text())
        except OSError as e:
            raise ConfigError(
                "executor.keystore",
                f"cannot read {keystore}: {e.strerror}",
                fix="point it at a readable JSON keystore (geth/`cast wallet new` format)",
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConfigError(
                "executor.keystore",
                f"{keystore} is not a JSON keystore",
                fix="point it at a JSON keystore (geth/`cast wallet new` format)",
            ) from None
        try:
            password = password_file.read_text().rstrip("\n")
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "not text"
            raise ConfigError(
                "executor.password_file",
                f"cannot read {password_file}: {why}",
                fix="point it at a readable file holding the keystore's password",
            ) from None
        # Neither message may echo the files' content.
        try:
            key = Account.decrypt(blob, password)
        except (KeyError, TypeError, AttributeError):
            raise ConfigError(
                "executor.keystore",
                f"{keystore} is not an encrypted key (no crypto section)",
                fix="point it at a JSON keystore (geth/`cast wallet new` format)",
            ) from None
        except ValueError:  # MAC mismatch: the wrong password
            raise ConfigError(
                "executor.password_file",
                f"the password does not decrypt keystore {keystore}",
                fix="put the keystore's password in this file (one line)",
            ) from None
        return Signer(Account.from_key(key))
    value = (os.environ if env is None else env).get(key_env)
    if not value:
        return None
    return Signer.from_key(value.strip())
