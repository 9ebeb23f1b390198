"""The PnL ledger (exact amounts, outcomes, CSV) and key handling (never shown)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sqlite3
from pathlib import Path

import pytest
from eth_account import Account

from bot.api import LiquidationPlan, LiquidationStep, SwapLeg
from bot.db.api import open_database
from bot.errors import ConfigError
from bot.execution.keys import Signer, load_signer
from bot.ledger import Ledger, Outcome

USER = "0x" + "11" * 20
WETH = "0x" + "22" * 20
DAI = "0x" + "33" * 20
BIG = 2**200 + 12345  # beyond SQLite's integers: must round-trip exactly


def plan(profit: int = BIG) -> LiquidationPlan:
    step = LiquidationStep(USER, WETH, DAI, 10**21, 5 * 10**17, 10**15, 10_500)
    return LiquidationPlan(
        protocol="aave-v3",
        user=USER,
        debt_asset=DAI,
        health_factor=97 * 10**16,
        steps=(step, step),
        swaps=(SwapLeg("0x" + "44" * 20, WETH, DAI, 10**18, 2 * 10**21),),
        flash_amount=2 * 10**21,
        flash_premium=10**18,
        profit=profit,
        profit_base=500 * 10**8,
        bonus_base=60 * 10**8,
        protocol_fee_base=6 * 10**8,
        swap_cost_base=5 * 10**8,
        flash_premium_base=10**8,
        gas_units=600_000,
        gas_price_wei=10**9,
        gas_cost_base=2 * 10**8,
        net_profit_base=498 * 10**8,
    )


def test_ledger_records_settles_and_exports(tmp_path: Path) -> None:
    with Ledger(tmp_path / "bot.db") as ledger:
        sent = ledger.record(plan(), 100, Outcome.SENT)
        raced = ledger.record(plan(7), 101, Outcome.RACED, reason="simulation: 45")
        ledger.update(sent, Outcome.WON, tx_hash="0xabc", realized_profit=BIG, gas_used=550_000)
        with pytest.raises(ValueError, match="unknown ledger columns"):
            ledger.update(sent, Outcome.WON, bogus=1)
    with Ledger(tmp_path / "bot.db") as ledger:  # persisted, reopened
        rows = ledger.rows()
        assert [r.id for r in rows] == [sent, raced]
        won = rows[0]
        assert (won.outcome, won.tx_hash, won.gas_used) == ("won", "0xabc", 550_000)
        assert won.predicted_profit == won.realized_profit == BIG
        assert won.steps == 2 and won.debt_repaid == 2 * 10**21
        assert won.collateral_assets == f"{WETH},{WETH}"
        assert rows[1].outcome == "raced" and rows[1].reason == "simulation: 45"
        out = io.StringIO()
        assert ledger.export_csv(out) == 2
    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert int(parsed[0]["realized_profit"]) == BIG
    assert parsed[1]["outcome"] == "raced"


def test_a_keep_row_counts_its_profit_in_the_collateral(tmp_path: Path) -> None:
    kept = dataclasses.replace(plan(5 * 10**17), swaps=(), flash_premium=0, keep=True)
    with Ledger(tmp_path / "bot.db") as ledger:
        ledger.record(plan(), 100, Outcome.SENT)
        ledger.record(kept, 100, Outcome.SENT)
        assert [r.profit_asset for r in ledger.rows()] == [DAI, WETH]


def test_a_ledger_from_before_keep_plans_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    with Ledger(path) as ledger:
        row = ledger.record(plan(), 100, Outcome.SENT)
    with sqlite3.connect(path) as db:  # as an older liqbot left it
        db.execute("ALTER TABLE ledger DROP COLUMN profit_asset")
    with Ledger(open_database(str(path), read_only=True)) as reader:  # `liqbot ledger`
        assert [r.profit_asset for r in reader.rows()] == [DAI]
    with Ledger(path) as ledger:
        (old,) = ledger.rows()
        assert (old.id, old.profit_asset, old.predicted_profit) == (row, DAI, BIG)
        ledger.update(row, Outcome.WON, realized_profit=BIG)
        kept = dataclasses.replace(plan(5 * 10**17), swaps=(), keep=True)
        ledger.record(kept, 101, Outcome.SENT)
        assert [(r.outcome, r.profit_asset) for r in ledger.rows()] == [
            ("won", DAI),
            ("sent", WETH),
        ]


def test_signer_from_env_never_shows_the_key() -> None:
    account = Account.create()
    key = account.key.hex()
    signer = load_signer(key_env="K", env={"K": key})
    assert signer is not None and signer.address == account.address
    assert key.removeprefix("0x") not in repr(signer) + str(signer)
    assert load_signer(key_env="K", env={}) is None  # no key: dry run
    with pytest.raises(ConfigError) as info:
        load_signer(key_env="K", env={"K": "0x1234not-a-key"})
    assert "1234not" not in str(info.value)


def test_signer_from_keystore(tmp_path: Path) -> None:
    account = Account.create()
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "pw", iterations=2)))
    password = tmp_path / "pw.txt"
    password.write_text("pw\n")
    signer = load_signer(key_env="K", keystore=keystore, password_file=password, env={})
    assert signer is not None and signer.address == account.address
    password.write_text("wrong")
    with pytest.raises(ConfigError, match="does not decrypt"):
        load_signer(key_env="K", keystore=keystore, password_file=password, env={})
    with pytest.raises(ConfigError, match="password file"):
        load_signer(key_env="K", keystore=keystore, env={})


def test_signed_transaction_recovers_to_the_signer() -> None:
    account = Account.create()
    signer = Signer(account)
    raw = signer.sign(
        {
            "type": 2,
            "chainId": 31337,
            "nonce": 0,
            "to": WETH,
            "data": b"",
            "value": 0,
            "gas": 21_000,
            "maxFeePerGas": 2 * 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
    )
    assert Account.recover_transaction(raw) == account.address
