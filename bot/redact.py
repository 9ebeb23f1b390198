"""Mask secrets before anything is printed: credentials inside URLs and secret-named keys.

RPC providers put the API key in the URL (Infura ``/v3/<key>``, Alchemy ``/v2/<key>``,
QuickNode ``/<token>/``, ``?apikey=``, ``user:pass@``), so a URL is never shown whole:
userinfo, every query value and every long path token are replaced by ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# A path segment this long and token-like is a credential, not a route ("v3", "rpc", ...).
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]{16,}$")
_URL = re.compile(r"^[a-z][a-z0-9+.\-]*://", re.IGNORECASE)
# Keys whose whole value is secret (a future `alerts.webhook_token`, `api_key`, ...).
_SECRET_KEY = re.compile(r"(password|passwd|secret|token|api_?key|private_?key)$", re.IGNORECASE)
# Keys that *name* where a secret lives: the name itself is not secret.
_SECRET_KEY_ALLOWED = ("private_key_env", "password_file")


def mask_url(url: str) -> str:
    """``url`` without credentials; the scheme, host, port and short path parts stay."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # not parseable as a URL: show nothing of it
        return MASK
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = (f"{MASK}@" if parts.username or parts.password else "") + host
    if port is not None:
        netloc += f":{port}"
    path = "/".join(MASK if _TOKEN.match(seg) else seg for seg in parts.path.split("/"))
    query = urlencode([(k, MASK) for k, _ in parse_qsl(parts.query, keep_blank_values=True)])
    return urlunsplit((parts.scheme, netloc, path, query.replace("%2A", "*"), ""))


def mask_tree(value: Any, key: str = "") -> Any:
    """A JSON-like tree (``model_dump(mode="json")``) with every secret masked."""
    if isinstance(value, Mapping):
        return {k: mask_tree(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_tree(v, key) for v in value]
    if isinstance(value, str):
        if key not in _SECRET_KEY_ALLOWED and _SECRET_KEY.search(key):
            return MASK
        if _URL.match(value):
            return mask_url(value)
    return value
