"""Rich tables shared by commands (display only: floats are fine here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.table import Table

from bot.ledger import LedgerRow


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}" if len(address) > 12 else address


def _amount(value: float) -> str:
    return f"{value:,.2f}" if abs(value) >= 100 else f"{value:,.6g}"


def ledger_table(
    rows: Sequence[LedgerRow],
    *,
    base_unit: int,
    symbols: Mapping[str, str] | None = None,
    decimals: Mapping[str, int] | None = None,
    title: str = "PnL ledger",
) -> Table:
    """One line per plan: what it was worth at the oracle and what it realized
    ("=": the realized profit equals the prediction to the wei)."""
    sym = {k.lower(): v for k, v in (symbols or {}).items()}
    dec = {k.lower(): v for k, v in (decimals or {}).items()}

    def asset(a: str) -> str:
        return sym.get(a.lower(), _short(a))

    def usd(v: int) -> str:
        return f"{v / base_unit:,.2f}"

    t = Table(title=title)
    for col in (
        "#", "block", "user", "repay→seize", "calls", "bonus $", "fee $", "swap $",
        "flash $", "gas $", "net $", "profit", "realized", "outcome",
    ):  # fmt: skip
        left = col in ("user", "repay→seize", "outcome")
        t.add_column(col, justify="left" if left else "right", no_wrap=col != "outcome")
    for r in rows:
        unit = 10 ** dec.get(r.profit_asset.lower(), 0)
        seized = ",".join(dict.fromkeys(asset(c) for c in r.collateral_assets.split(",") if c))
        realized = _amount(r.realized_profit / unit) if r.outcome == "won" else "—"
        exact = r.outcome == "won" and r.realized_profit == r.predicted_profit
        reason = r.reason.removeprefix("simulation: ")
        t.add_row(
            str(r.id),
            str(r.block),
            _short(r.user),
            f"{asset(r.debt_asset)}→{seized}",
            str(r.steps),
            usd(r.bonus_base),
            usd(r.protocol_fee_base),
            usd(r.swap_cost_base),
            usd(r.flash_premium_base),
            usd(r.realized_gas_cost_base if r.outcome == "won" else r.predicted_gas_cost_base),
            usd(r.predicted_net_base),
            f"{_amount(r.predicted_profit / unit)} {asset(r.profit_asset)}",
            realized + (" =" if exact else ""),
            r.outcome + (f": {reason[:40]}" if reason and r.outcome != "won" else ""),
        )
    return t
