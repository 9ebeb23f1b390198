"""PNG figures for backtests and price shocks (matplotlib, Agg: no display needed).

Values arrive as exact integers and become floats here, for drawing only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported: files only, no display
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator, StrMethodFormatter

from bot.research.ledger import Opportunity

WAD = 10**18
_SIZE = (8, 4.5)
_DPI = 120


def _save(fig: plt.Figure, path: Path) -> Path:
    for ax in fig.axes:
        # Whole units with thousands separators: no "1e6" offset to decode at a glance.
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def cumulative_profit(rows: Sequence[Opportunity], unit: int, path: Path) -> Path:
    ok = sorted((r for r in rows if r.simulated == "ok"), key=lambda r: r.block)
    xs, ys, total = [], [], 0
    for r in ok:
        total += r.simulated_net_base
        xs.append(r.block)
        ys.append(total / unit)
    fig, ax = plt.subplots(figsize=_SIZE)
    ax.step(xs, ys, where="post", color="tab:green", linewidth=2)
    ax.set_title("Cumulative net profit liqbot would have made")
    ax.set_xlabel("block number")
    ax.set_ylabel("cumulative net profit (USD)")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def profit_histogram(rows: Sequence[Opportunity], unit: int, path: Path) -> Path:
    values = [r.simulated_net_base / unit for r in rows if r.simulated == "ok"]
    fig, ax = plt.subplots(figsize=_SIZE)
    ax.hist(values, bins=min(30, max(5, len(values))), color="tab:blue", edgecolor="white")
    ax.set_title(f"Net profit per liquidation ({len(values)} simulated)")
    ax.set_xlabel("net profit after gas (USD)")
    ax.set_ylabel("liquidations")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def health_at_liquidation(rows: Sequence[Opportunity], path: Path) -> Path:
    values = [
        r.health_factor_at_liquidation / WAD
        for r in rows
        if r.status in ("taken", "ours") and r.health_factor_at_liquidation
    ]
    fig, ax = plt.subplots(figsize=_SIZE)
    ax.hist(values, bins=min(30, max(5, len(values))), color="tab:red", edgecolor="white")
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="HF = 1")
    ax.set_title(f"Health factor just before each on-chain liquidation ({len(values)})")
    ax.set_xlabel("health factor (dimensionless)")
    ax.set_ylabel("liquidations")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def liquidation_delay(rows: Sequence[Opportunity], path: Path) -> Path:
    values = [r.delay_blocks for r in rows if r.status in ("taken", "ours")]
    fig, ax = plt.subplots(figsize=_SIZE)
    if values:
        edges = range(min(values), max(values) + 2)
        ax.hist(values, bins=list(edges), color="tab:purple", edgecolor="white", align="left")
    ax.set_title(f"Blocks from liquidatable to liquidated ({len(values)} liquidations)")
    ax.set_xlabel("delay (blocks)")
    ax.set_ylabel("liquidations")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def backtest_figures(rows: Sequence[Opportunity], unit: int, out: Path) -> list[Path]:
    return [
        cumulative_profit(rows, unit, out / "cumulative_profit.png"),
        profit_histogram(rows, unit, out / "profit_histogram.png"),
        health_at_liquidation(rows, out / "health_at_liquidation.png"),
        liquidation_delay(rows, out / "liquidation_delay.png"),
    ]


def liquidation_curve(
    symbol: str, prices: Sequence[float], debt: Sequence[float], profit: Sequence[float], path: Path
) -> Path:
    """Liquidatable debt (and our profit after swap impact) against the shocked price."""
    fig, ax = plt.subplots(figsize=_SIZE)
    ax.plot(prices, debt, marker="o", color="tab:red", label="debt liquidatable")
    ax.plot(prices, profit, marker="s", color="tab:green", label="profit after swap impact")
    ax.set_title(f"Liquidation curve: {symbol} price shock")
    ax.set_xlabel(f"{symbol} oracle price (USD)")
    ax.set_ylabel("USD")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)
