"""The deployment manifest: everything the bot and the tests need to find a market.

Written by ``liqbot devnet up`` as JSON; the bot reads addresses only from here (or from
config), never from code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from eth_utils import is_address, to_checksum_address
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from bot.adapters.morpho_blue.types import MarketParams
from bot.errors import ConfigError


def _checksum(value: str) -> str:
    if not is_address(value):
        raise ValueError(f"not an address: {value!r}")
    return to_checksum_address(value)


Address = Annotated[str, AfterValidator(_checksum)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReserveInfo(_Frozen):
    symbol: str
    address: Address
    decimals: int
    a_token: Address
    variable_debt_token: Address
    stable_debt_token: Address
    price_feed: Address
    emode_category: int = 0


class EModeInfo(_Frozen):
    id: int
    label: str
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int


class AaveInfo(_Frozen):
    pool_addresses_provider: Address
    pool: Address
    pool_configurator: Address
    oracle: Address
    data_provider: Address
    acl_manager: Address
    treasury: Address


class UniswapInfo(_Frozen):
    factory: Address
    router: Address
    pairs: dict[str, Address]  # "WETH/USDC" -> pair address

    def pair(self, a: str, b: str) -> str:
        return self.pairs.get(f"{a}/{b}") or self.pairs[f"{b}/{a}"]


class BorrowerInfo(_Frozen):
    address: Address
    kind: str
    target_health_factor_wad: int


class MorphoMarketInfo(_Frozen):
    id: str  # MarketParamsLib.id, 0x-prefixed lower-case hex
    loan_symbol: str
    collateral_symbol: str
    loan_token: Address
    collateral_token: Address
    oracle: Address
    irm: Address
    lltv: int  # WAD
    fee: int = 0  # WAD
    initial_price: int  # oracle price at deployment (loan units per collateral unit, 1e36)

    @property
    def params(self) -> MarketParams:
        return MarketParams(
            self.loan_token, self.collateral_token, self.oracle, self.irm, self.lltv
        )


class MorphoBorrowerInfo(_Frozen):
    address: Address
    market_id: str
    target_ltv_share_wad: int  # debt / borrowing limit at the seeding price


class MorphoInfo(_Frozen):
    morpho: Address
    irm: Address
    owner: Address
    fee_recipient: Address
    deploy_block: int
    liquidity_provider: Address
    markets: tuple[MorphoMarketInfo, ...]
    borrowers: tuple[MorphoBorrowerInfo, ...] = ()

    def market(self, loan: str, collateral: str) -> MorphoMarketInfo:
        for m in self.markets:
            if (m.loan_symbol, m.collateral_symbol) == (loan, collateral):
                return m
        raise KeyError(f"no Morpho market {collateral}/{loan} in manifest")


class Manifest(_Frozen):
    version: int = 1
    chain_id: int
    rpc_url: str
    deploy_block: int
    deployer: Address
    multicall3: Address
    aave: AaveInfo
    uniswap: UniswapInfo
    reserves: tuple[ReserveInfo, ...]
    emode_categories: tuple[EModeInfo, ...]
    liquidity_provider: Address
    borrowers: tuple[BorrowerInfo, ...] = ()
    morpho: MorphoInfo | None = None  # only with `liqbot devnet up --morpho`

    def reserve(self, symbol: str) -> ReserveInfo:
        for r in self.reserves:
            if r.symbol == symbol:
                return r
        raise KeyError(f"no reserve {symbol!r} in manifest")

    def with_rpc_url(self, url: str) -> Manifest:
        return self.model_copy(update={"rpc_url": url})

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            return cls.model_validate_json(path.read_text())
        except FileNotFoundError:
            raise ConfigError(
                "manifest", f"file {path} not found", fix="run `liqbot devnet up`"
            ) from None
        except ValidationError as e:
            first = e.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            raise ConfigError(key, first["msg"], source=str(path)) from None
