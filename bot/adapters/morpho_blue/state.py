"""In-memory Morpho Blue state, as the indexer maintains it from events.

Exactly the storage ``Morpho.sol`` keeps that its math reads: per market the params and the
``Market`` struct, per (market, user) the ``Position`` struct, and the fee recipient.
Applying the same effects in the same order gives the contract's values to the wei; a
delta that would go negative means an event was missed and raises.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.adapters.morpho_blue.events import (
    FeeRecipientSet,
    FeeSet,
    InterestAccrued,
    MarketCreated,
    PositionChange,
)
from bot.adapters.morpho_blue.math import zero_floor_sub
from bot.adapters.morpho_blue.types import Market, MarketParams, Position
from bot.errors import AdapterError

ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True, slots=True)
class MarketState:
    params: MarketParams
    market: Market


def _timestamp(effect: MarketCreated | FeeSet | InterestAccrued | PositionChange) -> int:
    if effect.timestamp is None:
        raise AdapterError(f"unresolved block timestamp reached apply(): {effect}")
    return effect.timestamp


def _nonneg(value: int, what: str, where: str) -> int:
    if value < 0:
        raise AdapterError(f"{what} would go negative in {where}: an event was missed")
    return value


class MorphoBook:
    def __init__(self) -> None:
        self.markets: dict[str, MarketState] = {}
        self.positions: dict[str, dict[str, Position]] = {}  # market id -> user -> position
        self.fee_recipient = ZERO_ADDRESS

    def market(self, market_id: str) -> MarketState:
        try:
            return self.markets[market_id]
        except KeyError:
            raise AdapterError(f"Morpho market {market_id} is not indexed") from None

    def position(self, market_id: str, user: str) -> Position:
        return self.positions.get(market_id, {}).get(user, Position())

    def put_market(self, market_id: str, state: MarketState) -> None:
        self.markets[market_id] = state

    def put_position(self, market_id: str, user: str, position: Position) -> None:
        users = self.positions.setdefault(market_id, {})
        if position.empty:
            users.pop(user, None)
        else:
            users[user] = position

    def borrowers(self, market_id: str) -> list[str]:
        return [u for u, p in self.positions.get(market_id, {}).items() if p.borrow_shares]

    # -- effects -----------------------------------------------------------------------
    def create_market(self, e: MarketCreated) -> None:
        if e.id in self.markets:
            raise AdapterError(f"Morpho market {e.id} created twice")
        self.markets[e.id] = MarketState(e.params, Market(last_update=_timestamp(e)))

    def set_fee(self, e: FeeSet) -> None:
        ms = self.market(e.id)
        market = replace(ms.market, fee=e.fee, last_update=_timestamp(e))
        self.markets[e.id] = replace(ms, market=market)

    def set_fee_recipient(self, e: FeeRecipientSet) -> None:
        self.fee_recipient = e.recipient

    def accrue(self, e: InterestAccrued) -> None:
        ms = self.market(e.id)
        m = ms.market
        market = replace(
            m,
            total_supply_assets=m.total_supply_assets + e.interest,
            total_borrow_assets=m.total_borrow_assets + e.interest,
            total_supply_shares=m.total_supply_shares + e.fee_shares,
            last_update=_timestamp(e),
        )
        self.markets[e.id] = replace(ms, market=market)
        if e.fee_shares:
            if e.fee_recipient is None:
                raise AdapterError(f"unresolved fee recipient reached apply(): {e}")
            pos = self.position(e.id, e.fee_recipient)
            self.put_position(
                e.id,
                e.fee_recipient,
                replace(pos, supply_shares=pos.supply_shares + e.fee_shares),
            )

    def change(self, e: PositionChange) -> None:
        ms = self.market(e.id)
        m = ms.market
        where = f"market {e.id}"
        borrow_assets = (
            zero_floor_sub(m.total_borrow_assets, -e.borrow_assets)
            if e.floor_borrow_assets
            else m.total_borrow_assets + e.borrow_assets
        )
        market = Market(
            _nonneg(m.total_supply_assets + e.supply_assets, "supply assets", where),
            _nonneg(m.total_supply_shares + e.supply_shares, "supply shares", where),
            _nonneg(borrow_assets, "borrow assets", where),
            _nonneg(m.total_borrow_shares + e.borrow_shares, "borrow shares", where),
            _timestamp(e) if e.accrues else m.last_update,
            m.fee,
        )
        self.markets[e.id] = replace(ms, market=market)
        pos = self.position(e.id, e.user)
        where = f"{e.user}'s position in {where}"
        self.put_position(
            e.id,
            e.user,
            Position(
                _nonneg(pos.supply_shares + e.supply_shares, "supply shares", where),
                _nonneg(pos.borrow_shares + e.borrow_shares, "borrow shares", where),
                _nonneg(pos.collateral + e.collateral, "collateral", where),
            ),
        )
