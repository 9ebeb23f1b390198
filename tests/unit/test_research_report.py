"""Backtest summary arithmetic and figures (no chain)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from bot.research import plots
from bot.research.ledger import Opportunity, ResearchLedger
from bot.research.plots import backtest_figures, liquidation_curve
from bot.research.report import summarize
from bot.research.shock import levels

WAD = 10**18
BASE = Opportunity("0xa", 10, 120, WAD - 1, 0, 0, plan="planned", simulated="ok")


def rows() -> list[Opportunity]:
    return [
        replace(
            BASE,
            user="0xa",
            simulated_net_base=300,
            predicted_profit=5,
            simulated_profit=5,
            status="taken",
            delay_blocks=3,
            health_factor_at_liquidation=WAD * 9 // 10,
        ),
        replace(
            BASE,
            user="0xb",
            simulated_net_base=100,
            predicted_profit=7,
            simulated_profit=6,
            status="recovered",
        ),
        replace(BASE, user="0xc", plan="no-plan", simulated="", status="unresolved"),
        replace(
            BASE,
            user="0xd",
            simulated_net_base=50,
            status="ours",
            delay_blocks=1,
            health_factor_at_liquidation=WAD * 99 // 100,
        ),
    ]


def test_summary_counts_and_exact_sums() -> None:
    s = summarize(rows())
    assert (s.opportunities, s.planned, s.simulated_ok) == (4, 3, 3)
    assert (s.taken, s.ours, s.missed) == (1, 1, 2)
    assert s.net_base == 450 and s.net_base_taken == 300
    assert s.net_per_liquidation_base == 150
    assert s.exact == 2  # 0xb's simulation differs from its prediction


def test_levels_are_inclusive_and_even() -> None:
    assert levels(-500, -5_000, 10) == [
        -500,
        -1_000,
        -1_500,
        -2_000,
        -2_500,
        -3_000,
        -3_500,
        -4_000,
        -4_500,
        -5_000,
    ]
    assert levels(-500, -500, 1) == [-500]


def test_ledger_upserts_by_user_and_block(tmp_path: Path) -> None:
    with ResearchLedger(tmp_path / "b.db") as ledger:
        ledger.commit_block(10, rows()[:2])
        ledger.commit_block(11, [replace(rows()[0], status="taken", end_block=11)])
        assert ledger.last_block == 11
        assert [(r.user, r.status) for r in ledger.rows()] == [
            ("0xa", "taken"),
            ("0xb", "recovered"),
        ]


def test_figures_are_non_empty_pngs_with_titles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = backtest_figures(rows(), 10**8, tmp_path)
    paths.append(
        liquidation_curve("WETH", [1800.0, 1500.0], [0.0, 1e6], [0.0, 2e4], tmp_path / "c.png")
    )
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000
    titles: list[str] = []
    original = plots._save

    def spy(fig: Figure, path: Path) -> Path:
        titles.append(fig.axes[0].get_title())
        return original(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    plots.cumulative_profit(rows(), 10**8, tmp_path / "x.png")
    plots.liquidation_delay(rows(), tmp_path / "y.png")
    assert titles == [
        "Cumulative net profit liqbot would have made",
        "Blocks from liquidatable to liquidated (2 liquidations)",
    ]
