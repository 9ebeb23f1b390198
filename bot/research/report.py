"""The backtest summary: pure arithmetic over ledger rows (exact integers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.research.ledger import Opportunity


@dataclass(frozen=True, slots=True)
class Summary:
    opportunities: int
    planned: int  # a profitable plan existed
    simulated_ok: int  # and its simulation on the fork succeeded
    taken: int  # liquidated by someone else
    ours: int
    missed: int  # nobody liquidated it: recovered or still open at the end
    net_base: int  # sum of simulated net profit (successful simulations)
    net_base_taken: int  # of which on opportunities others took
    exact: int  # simulations whose profit equals the prediction to the wei

    @property
    def net_per_liquidation_base(self) -> int:
        return self.net_base // self.simulated_ok if self.simulated_ok else 0


def summarize(rows: Sequence[Opportunity]) -> Summary:
    ok = [r for r in rows if r.simulated == "ok"]
    return Summary(
        opportunities=len(rows),
        planned=sum(r.plan == "planned" for r in rows),
        simulated_ok=len(ok),
        taken=sum(r.status == "taken" for r in rows),
        ours=sum(r.status == "ours" for r in rows),
        missed=sum(r.status in ("recovered", "unresolved") for r in rows),
        net_base=sum(r.simulated_net_base for r in ok),
        net_base_taken=sum(r.simulated_net_base for r in ok if r.status == "taken"),
        exact=sum(r.simulated_profit == r.predicted_profit for r in ok),
    )


def format_summary(s: Summary, unit: int) -> str:
    """A plain-text summary; ``unit`` is the oracle's base currency unit (1e8 = USD)."""

    def usd(v: int) -> str:
        return f"${v / unit:,.2f}"

    return "\n".join(
        (
            f"opportunities          {s.opportunities}",
            f"  with a profitable plan {s.planned}, simulated ok {s.simulated_ok} "
            f"(profit = prediction to the wei: {s.exact})",
            f"  taken by others        {s.taken}",
            f"  ours                   {s.ours}",
            f"  missed by everyone     {s.missed}",
            f"our net profit (sim.)  {usd(s.net_base)} "
            f"({usd(s.net_per_liquidation_base)} per liquidation)",
            f"  on opportunities others took {usd(s.net_base_taken)}",
        )
    )
