"""Parameters of the devnet's Aave V3 market: mainnet-like reserves and one e-mode category.

Values follow Aave V3 Ethereum's published risk parameters closely enough to behave like
it; percentages are Aave's basis points (10_000 = 100%), rates are RAY.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RAY = 10**27
BPS = 10_000


@dataclass(frozen=True, slots=True)
class RateStrategy:
    optimal_usage_ratio: int  # RAY
    base_variable_borrow_rate: int
    variable_rate_slope1: int
    variable_rate_slope2: int


@dataclass(frozen=True, slots=True)
class ReserveParams:
    symbol: str
    decimals: int
    price_usd_8: int  # initial oracle answer, 8 decimals
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int  # 10_500 = seizes 105% of the debt value
    reserve_factor: int
    liquidation_protocol_fee: int  # share of the bonus taken by the protocol
    rates: RateStrategy
    emode_category: int = 0


@dataclass(frozen=True, slots=True)
class EModeParams:
    category_id: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    label: str


@dataclass(frozen=True, slots=True)
class MarketParams:
    market_id: str
    reserves: tuple[ReserveParams, ...]
    emodes: tuple[EModeParams, ...] = field(default_factory=tuple)
    flash_loan_premium_total: int = 5  # bps, as on Aave V3 Ethereum
    flash_loan_premium_to_protocol: int = 0

    def reserve(self, symbol: str) -> ReserveParams:
        for r in self.reserves:
            if r.symbol == symbol:
                return r
        raise KeyError(symbol)


_VOLATILE = RateStrategy(int(0.80 * RAY), 0, int(0.038 * RAY), int(0.80 * RAY))
_BTC = RateStrategy(int(0.45 * RAY), 0, int(0.04 * RAY), int(3.00 * RAY))
_STABLE = RateStrategy(int(0.90 * RAY), 0, int(0.04 * RAY), int(0.60 * RAY))

STABLECOINS_EMODE = 1

DEFAULT_MARKET = MarketParams(
    market_id="liqbot devnet",
    reserves=(
        ReserveParams("WETH", 18, 2_000 * 10**8, 8_050, 8_300, 10_500, 1_500, 1_000, _VOLATILE),
        ReserveParams("WBTC", 8, 40_000 * 10**8, 7_300, 7_800, 10_500, 2_000, 1_000, _BTC),
        ReserveParams(
            "USDC", 6, 10**8, 7_700, 8_000, 10_450, 1_000, 1_000, _STABLE, STABLECOINS_EMODE
        ),
        ReserveParams("DAI", 18, 10**8, 6_300, 7_700, 10_500, 1_000, 0, _STABLE, STABLECOINS_EMODE),
    ),
    emodes=(EModeParams(STABLECOINS_EMODE, 9_300, 9_500, 10_100, "Stablecoins"),),
)
