"""``liqbot config check``: the settings as ``liqbot run`` resolves them, then the checks
``liqbot run`` makes at start, each reported as ``ok`` / ``FAIL`` with its fix.

Secrets never appear: URLs are shown without their credentials, and the key only by its
address. Exit 0 when every check passes; 2 (one line on stderr, the first failure) else.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bot.commands._common import add_settings_arguments

    sub = parser.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = sub.add_parser(
        "check",
        help="print the resolved settings (secrets masked) and check them against the node",
        description="Load the settings exactly as `liqbot run` does (--config, --manifest, "
        "--preset, LIQBOT_* variables), print them as TOML with secrets masked, then check "
        "them against the node: chain id, contract code at every address, the liquidator's "
        "owner. Exit 0 when all pass, 2 otherwise.",
    )
    add_settings_arguments(check)
    check.add_argument(
        "--dry-run", action="store_true", help="check as `liqbot run --dry-run` (no key loaded)"
    )


def to_toml(tree: Mapping[str, Any]) -> str:
    """A settings tree as TOML: top-level values, then one table per section; unset values
    are shown commented out, so every key is visible."""
    lines: list[str] = []

    def emit(table: Mapping[str, Any], name: str) -> None:
        subtables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
        if name and len(subtables) < len(table):
            lines.extend(["", f"[{name}]"])
        for key, value in table.items():
            if key in subtables:
                continue
            if value is None:
                lines.append(f"# {key} =  (unset)")
            else:
                lines.append(f"{key} = {_value(value)}")
        for key, value in subtables.items():
            emit(value, f"{name}.{key}" if name else key)

    emit(tree, "")
    return "\n".join(lines).lstrip("\n") + "\n"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


async def run(args: argparse.Namespace) -> int:
    from bot.commands._common import load_settings
    from bot.errors import ConfigError, RpcError
    from bot.execution.keys import load_signer
    from bot.preflight import Check, preflight
    from bot.redact import mask_tree, mask_url
    from bot.wiring import rpc_client

    settings = load_settings(args)
    if args.dry_run:
        settings = settings.model_copy(
            update={"executor": settings.executor.model_copy(update={"mode": "dry-run"})}
        )
    print("# liqbot settings as `liqbot run` resolves them (secrets masked)")
    print(to_toml(mask_tree(settings.model_dump(mode="json"))), flush=True)

    checks: list[Check] = []
    ex = settings.executor
    signer = None
    key_setting = "executor.keystore" if ex.keystore else "executor.private_key_env"
    if ex.mode == "dry-run":
        checks.append(Check("executor.mode", "ok", "dry-run: no key loaded, nothing is sent"))
    else:
        try:
            signer = load_signer(
                key_env=ex.private_key_env, keystore=ex.keystore, password_file=ex.password_file
            )
        except ConfigError as e:
            checks.append(Check(e.key, "FAIL", e.problem, e.fix))
        else:
            where = f"keystore {ex.keystore}" if ex.keystore else f"${ex.private_key_env}"
            detail = (
                f"key of {signer.address} from {where}"
                if signer
                else f"no key in ${ex.private_key_env}: the bot will dry-run"
            )
            checks.append(Check(key_setting, "ok", detail))
    url = mask_url(settings.chain.rpc_url)
    try:
        async with rpc_client(settings) as rpc:
            checked = await preflight(rpc, settings, signer, history=True)
        checks += checked.checks
    except RpcError as e:
        why = str(e).replace(settings.chain.rpc_url, url)
        checks.append(
            Check("chain.rpc_url", "FAIL", f"{url} did not answer: {why}", "check the URL")
        )
    print(f"# checks against {url}")
    for c in checks:
        print(c.line())
    failures = [c for c in checks if c.status == "FAIL"]
    if failures:
        print(f"# {len(failures)} check(s) failed", flush=True)
        raise failures[0].error()
    print("# all checks passed", flush=True)
    return 0
