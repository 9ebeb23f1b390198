"""Send signed transactions to a private relay (Flashbots, MEV-Share, a builder) instead
of the public mempool, where they could be front-run.

Two methods, as Flashbots documents them:

- ``eth_sendPrivateTransaction``: one request per transaction, ``{"tx", "maxBlockNumber",
  "preferences": {"fast": true}}``. Each goes in its own HTTP request (concurrently):
  Flashbots Protect does not accept JSON-RPC batches.
- ``eth_sendBundle``: all of a head's transactions, in nonce order, as one atomic bundle
  ``{"txs", "blockNumber"}``. A bundle is valid for one block only, so the same bundle is
  sent for each block of the window (one request per target block).

The window is ``head + 1 … head + blocks``; the executor passes its
``replace_after_blocks``, so a transaction stays eligible exactly until the executor
would replace it (and sends the replacement with a new window). Flashbots clamps
``maxBlockNumber`` to 25 blocks ahead.

Every request carries ``X-Flashbots-Signature: <address>:<signature>``, the EIP-191
(``personal_sign``) signature of the hex string of ``keccak256(body)`` by the auth key. The
auth key identifies the sender to the relay (its reputation); it never signs transactions.

Failures never raise: ``send`` returns, per transaction, the relay's answer or an
``RpcError``, like ``JsonRpcClient.batch``. A JSON-RPC error or a 4xx is a rejection; no
answer (timeout, 5xx, garbage) is an ``RpcTransportError``: the relay may have accepted
the transaction all the same.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from bot.errors import ConfigError, RpcError, RpcTransportError
from bot.redact import mask_url

log = logging.getLogger(__name__)

RelayMethod = Literal["eth_sendPrivateTransaction", "eth_sendBundle"]
SIGNATURE_HEADER = "X-Flashbots-Signature"
_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


@dataclass(frozen=True, slots=True)
class RelaySettings:
    url: str
    method: RelayMethod = "eth_sendPrivateTransaction"
    blocks: int = 3  # target window: head + 1 … head + blocks
    timeout_s: float = 10.0
    fast: bool = True  # eth_sendPrivateTransaction: share with every builder (Flashbots)


def auth_header(account: LocalAccount, body: str) -> str:
    """``<address>:<signature>`` over ``body`` as Flashbots verifies it."""
    digest = "0x" + keccak(body.encode()).hex()
    signature = account.sign_message(encode_defunct(text=digest)).signature
    return f"{account.address}:0x{bytes(signature).hex()}"


def load_auth_key(env_name: str, env: Mapping[str, str] | None = None) -> LocalAccount:
    """The relay auth key from the variable ``env_name``; errors never show its value."""
    key = "executor.relay_auth_key_env"
    if _HEX_KEY.match(env_name):
        raise ConfigError(key, "this looks like a key: it must name a variable holding one")
    value = (os.environ if env is None else env).get(env_name, "").strip()
    if not value:
        raise ConfigError(key, f"no key in ${env_name}", fix="set it, or unset this key")
    try:
        account: LocalAccount = Account.from_key(value)
    except Exception:  # eth-account raises several types; none may echo the value
        raise ConfigError(
            key, f"${env_name} is not a 32-byte hex private key", fix="put a 0x… key in it"
        ) from None
    return account


class Relay:
    """One relay endpoint. Use as an async context manager or call ``close()``."""

    def __init__(
        self,
        settings: RelaySettings,
        auth: LocalAccount,
        *,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.settings = settings
        self._auth = auth
        self._session = session
        self._owns_session = session is None
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"Relay({mask_url(self.settings.url)}, {self.settings.method})"

    @property
    def auth_address(self) -> str:
        return str(self._auth.address)

    async def __aenter__(self) -> Relay:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s)
            )
            self._owns_session = True
        return self._session

    async def send(self, raws: Sequence[bytes], head: int) -> list[Any]:
        """Send ``raws`` (signed, in nonce order) for the blocks after ``head``; per
        transaction, the relay's result or an ``RpcError``."""
        if not raws:
            return []
        s = self.settings
        txs = ["0x" + raw.hex() for raw in raws]
        last = hex(head + s.blocks)
        if s.method == "eth_sendPrivateTransaction":
            params = [
                {"tx": tx, "maxBlockNumber": last, "preferences": {"fast": s.fast}} for tx in txs
            ]
            return list(await asyncio.gather(*(self._request(s.method, p) for p in params)))
        # A bundle is all or nothing: every transaction shares its answer. It counts as
        # accepted when the relay accepted it for at least one target block.
        answers = await asyncio.gather(
            *(
                self._request(s.method, {"txs": txs, "blockNumber": hex(head + k)})
                for k in range(1, s.blocks + 1)
            )
        )
        ok = [a for a in answers if not isinstance(a, RpcError)]
        if ok:
            return [ok[0]] * len(txs)
        # Rejected only when every request was: one that got no answer may have been taken.
        final = next((a for a in answers if isinstance(a, RpcTransportError)), answers[0])
        return [final] * len(txs)

    async def _request(self, method: str, params: Mapping[str, Any]) -> Any:
        body = json.dumps(
            {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": [params]},
            separators=(",", ":"),
        )
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: auth_header(self._auth, body),
        }
        try:
            async with self._http().post(self.settings.url, data=body, headers=headers) as resp:
                text = (await resp.read()).decode("utf-8", errors="replace")
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as e:
            # The exception's text can hold the URL (and a key in it): its type only.
            return self._failed(RpcTransportError(method, f"no answer ({type(e).__name__})"))
        if status in (408, 429) or status >= 500:
            return self._failed(RpcTransportError(method, f"HTTP {status}: {text[:120]}"))
        if status != 200:  # 400 (bad bundle), 401/403 (signature): a rejection
            return self._failed(RpcError(method, f"HTTP {status}: {text[:120]}"))
        try:
            answer = json.loads(text)
        except json.JSONDecodeError:
            return self._failed(RpcTransportError(method, f"invalid JSON answer: {text[:120]}"))
        if not isinstance(answer, dict):
            return self._failed(RpcTransportError(method, f"malformed answer: {text[:120]}"))
        if answer.get("error") is not None:
            err = answer["error"] if isinstance(answer["error"], dict) else {}
            message = str(err.get("message", answer["error"]))
            return self._failed(RpcError(method, message, code=err.get("code")))
        return answer.get("result")

    def _failed(self, error: RpcError) -> RpcError:
        log.warning(
            "relay send failed",
            extra={"relay": mask_url(self.settings.url), "method": error.method, "err": str(error)},
        )
        return error
