"""The interfaces of liqbot, in one place, with the domain types they exchange.

Implementations depend on these and on the shared types, never on each other: the
indexer core drives any ``IndexedProtocol``, the runner any ``LiquidationAdapter``;
adapters (``bot/adapters/*``, or a third-party package registered under the
``liqbot.adapters`` entry point group) implement both and are found by
``AdapterPlugin.name`` (the config's ``market.protocol``). See docs/adapters.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.multicall import Multicall


@dataclass(frozen=True, slots=True)
class BlockRef:
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    base_fee: int = 0  # EIP-1559 base fee per gas (0 before London / when not given)
    gas_limit: int = 0  # the block's gas limit (0 when not given)

    @classmethod
    def from_json(cls, j: Mapping[str, Any]) -> BlockRef:
        """From an ``eth_getBlockByNumber`` or ``newHeads`` header."""
        return cls(
            int(j["number"], 16),
            j["hash"],
            j["parentHash"],
            int(j["timestamp"], 16),
            int(j.get("baseFeePerGas") or "0x0", 16),
            int(j.get("gasLimit") or "0x0", 16),
        )


@dataclass(frozen=True, slots=True)
class RawLog:
    """One log as returned by ``eth_getLogs``, in its raw hex form (decoding is lazy)."""

    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    address: str  # lower-case hex
    topics: tuple[str, ...]  # lower-case hex, topic0 first
    data: str  # hex with 0x

    @classmethod
    def from_json(cls, j: Mapping[str, Any]) -> RawLog:
        return cls(
            int(j["blockNumber"], 16),
            j["blockHash"],
            j["transactionHash"],
            int(j["logIndex"], 16),
            j["address"].lower(),
            tuple(map(str.lower, j["topics"])),
            j["data"],
        )


@dataclass(frozen=True, slots=True)
class LogFilter:
    addresses: tuple[str, ...]
    topics0: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A protocol event kept as history (e.g. liquidations), emitted among an adapter's
    effects; the indexer stores it with the state it belongs to."""

    block: int
    log_index: int
    tx: str
    kind: str
    payload: str  # JSON


Row = str  # an adapter's serialized state row
Key = tuple[str, str]  # (namespace, key)


class IndexedProtocol(ABC):
    """A protocol's event side: which logs to fetch and how they change its state.

    State lives in the adapter, in memory, and persists as rows ``(namespace, key) → Row``
    the indexer core stores with its checkpoint in one transaction.
    """

    name: str

    @abstractmethod
    def log_filter(self) -> LogFilter:
        """Addresses and topic0s of every event this protocol needs."""

    @abstractmethod
    def decode(self, logs: Sequence[RawLog]) -> list[Any]:
        """Pure: logs (in chain order) → effects, the protocol's own change records."""

    @abstractmethod
    async def resolve(self, effects: list[Any]) -> list[Any]:
        """Complete effects that need a chain read (may return them unchanged)."""

    @abstractmethod
    def apply(self, effects: Sequence[Any]) -> set[Key]:
        """Apply effects to the in-memory state; return the keys whose rows changed."""

    @abstractmethod
    def keys(self, effects: Sequence[Any]) -> set[Key]:
        """The keys ``effects`` would change (to load just those rows before applying)."""

    @abstractmethod
    def rows(self, keys: Iterable[Key]) -> dict[Key, Row | None]:
        """Current rows for ``keys`` (None: the row no longer exists)."""

    @abstractmethod
    def load(self, rows: Iterable[tuple[Key, Row]]) -> None:
        """Replace the in-memory state with the given persisted rows."""

    @abstractmethod
    def fresh(self) -> IndexedProtocol:
        """An empty instance with the same configuration (to apply effects to stored rows)."""


class HeadSource(ABC):
    """New chain heads, newest first: a subscription or polling."""

    @abstractmethod
    async def next_head(self) -> BlockRef:
        """Wait for a head newer than the last one returned."""

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections (subscriptions)."""


# --- Liquidation plans: what a strategy proposes and the executor and ledger consume ---


@dataclass(frozen=True, slots=True)
class LiquidationStep:
    """One ``liquidationCall``: repay ``debt_to_cover`` of ``user``'s debt, seize collateral."""

    user: str
    collateral_asset: str
    debt_asset: str
    # Passed as debtToCover. The pool takes exactly this, except when the user's collateral
    # balance caps the seizure: it then recomputes the debt from the balance (a few units
    # less). ``LiquidationPlan.flash_amount`` is always the exact total taken.
    debt_to_cover: int
    collateral_seized: int  # underlying sent to the liquidator (protocol fee excluded)
    protocol_fee: int  # collateral sent to the treasury
    bonus_bps: int  # liquidation bonus applied (10_500 = 5%)


@dataclass(frozen=True, slots=True)
class SwapLeg:
    """Selling seized collateral on a Uniswap V2 pair, with its exact output."""

    pair: str
    token_in: str
    token_out: str
    amount_in: int
    amount_out: int


@dataclass(frozen=True, slots=True)
class LiquidationPlan:
    """A transaction's worth of liquidations of one user, repaid in one debt asset.

    Token amounts are base units of the asset named; ``*_base`` values are in the
    oracle's base currency (e.g. USD with 8 decimals) at the planning block's prices.
    ``profit`` is exactly what the liquidator contract sends to its owner: units of
    ``profit_asset``.

    A ``keep`` plan repays with the owner's own debt tokens (``flash_amount`` of them,
    taken from the owner, no premium) and hands the owner the seized collateral unsold:
    ``profit`` is then the collateral seized and ``profit_base`` what it is worth above
    the debt repaid (``bonus_base``), at the oracle's prices.
    """

    protocol: str
    user: str
    debt_asset: str
    health_factor: int  # WAD, before the first step
    steps: tuple[LiquidationStep, ...]
    swaps: tuple[SwapLeg, ...]
    flash_amount: int  # debt asset borrowed: exactly the total the steps repay
    flash_premium: int  # debt asset paid for the flash loan
    profit: int  # debt asset left after repaying the flash loan and its premium
    profit_base: int
    bonus_base: int  # oracle value of collateral seized minus debt repaid
    protocol_fee_base: int
    swap_cost_base: int  # oracle value given up by selling on the pool instead of at the oracle
    flash_premium_base: int
    gas_units: int
    gas_price_wei: int
    gas_cost_base: int
    net_profit_base: int  # profit_base - gas_cost_base
    keep: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.protocol, self.user.lower())

    @property
    def profit_asset(self) -> str:
        """The token ``profit`` is counted in: the debt asset, or the collateral kept."""
        return self.steps[0].collateral_asset if self.keep else self.debt_asset


# --- The per-head liquidation side of a protocol: what the runner drives ---------------


@dataclass(frozen=True, slots=True)
class Scan:
    """A head's exact health verdicts, from ``LiquidationAdapter.scan``.

    ``liquidatable`` holds position keys (an adapter's own naming: the borrower's address
    on Aave V3, ``<market id>:<borrower>`` on Morpho Blue); only exact verdicts, never a
    screen's. ``snapshot`` is the adapter's market state at the head, handed back to
    ``planning_input`` unchanged.
    """

    block: int
    liquidatable: frozenset[str]
    native_price_base: int  # base-currency value of 1e18 wei of the gas token (0: unknown)
    snapshot: Any
    evaluated: int = 0  # positions evaluated exactly at this head
    set_aside: frozenset[str] = frozenset()  # liquidatable, but priced by an untrusted feed


@dataclass(frozen=True, slots=True)
class PlanTerms:
    """The execution terms of one planning round, the same for every protocol."""

    ts: int  # block.timestamp the transactions will execute at
    gas_price_wei: int
    native_price_base: int
    min_profit_base: int
    # The owner's tokens (lower-case address -> units) plans may repay with and keep the
    # collateral, as ``inventory_use`` ("off", "fallback", "best": ``strategy.inventory``)
    # allows; a protocol whose strategies cannot keep collateral ignores both.
    inventory: Mapping[str, int] = field(default_factory=dict)
    inventory_use: str = "off"


class LiquidationAdapter(ABC):
    """A protocol's liquidation side: which positions are liquidatable at a head, what a
    strategy needs to plan them, and the liquidator contract's calldata for a plan.

    The runner calls, each head: ``positions_of`` (the keys the indexer changed) →
    ``scan`` → ``planning_input`` (for the targets not in flight) → the strategy →
    ``calldata`` for each plan it simulates and sends.
    """

    name: str  # equals the plugin's name and the plans' ``protocol``
    indexing: IndexedProtocol
    base_unit: int  # one unit of the base currency ``*_base`` values are in (1e8: USD)
    # The Multicall3 reader ``scan`` reads the head with, if any: the runner reads the
    # swap pools through it in the same turn, so both share one eth_call.
    multicall: Multicall | None = None

    @abstractmethod
    def positions_of(self, keys: Iterable[Key]) -> set[str]:
        """Position keys whose health the changed index rows ``keys`` can have moved."""

    @abstractmethod
    def positions(self) -> Mapping[str, Any]:
        """Every indexed position the adapter may liquidate, by position key (Aave V3: every
        indexed account; Morpho Blue: every borrow)."""

    @abstractmethod
    def assets(self) -> Sequence[str]:
        """Every token a plan may repay or seize (swap pairs are found between them)."""

    def prefetch(self, head: BlockRef) -> None:  # noqa: B027 (optional: a no-op by default)
        """Start the reads ``scan(head)`` will need, before the indexer's sync of ``head``
        (whose eth_getLogs they then overlap); ``scan`` must still be right when the sync
        changed what they depend on (new reserves, new e-mode categories)."""

    @abstractmethod
    async def scan(self, head: BlockRef, changed: set[str]) -> Scan:
        """Exact health at ``head``; ``changed`` positions must be re-evaluated. The first
        scan evaluates every position (the runner and the conformance kit rely on it)."""

    @abstractmethod
    def planning_input(
        self,
        scan: Scan,
        targets: Sequence[str],
        pairs: Mapping[frozenset[str], Any],
        terms: PlanTerms,
    ) -> Any:
        """The strategy's input for ``targets`` (position keys of ``scan.liquidatable``).

        Its type is the one the adapter's strategies take; it must have ``ts``,
        ``positions`` (keyed by position key) and ``pairs`` fields, which plan
        sequencing replaces to re-plan one position against moved pools."""

    @abstractmethod
    def calldata(self, plan: LiquidationPlan, min_profit: int) -> bytes:
        """The liquidator contract call executing ``plan``; it must revert unless the
        owner receives at least ``min_profit`` of ``plan.debt_asset``."""


class AdapterPlugin(ABC):
    """What the ``liqbot.adapters`` entry point of a protocol names: how to connect an
    adapter to a chain for a ``[market]`` config section.

    ``market`` is that section: a typed model for the built-in protocols, and for any
    other ``market.protocol`` a model whose ``model_dump()`` holds every key given, which
    the plugin validates itself (raising ``ConfigError`` naming the bad key)."""

    name: str  # the ``market.protocol`` value that selects it
    default_strategy: str  # a ``liqbot.strategies`` entry point name

    @abstractmethod
    def identity(self, market: Any) -> str:
        """What a database is bound to besides the chain (e.g. the market's address)."""

    @abstractmethod
    def contracts(self, market: Any) -> Mapping[str, str]:
        """Config key → address of the contracts that must have code on the chain."""

    @abstractmethod
    async def connect(
        self, rpc: Any, market: Any, context: Mapping[str, Any]
    ) -> LiquidationAdapter:
        """The adapter for ``market`` on the chain behind ``rpc``. ``context`` carries the
        shared settings an adapter may need (``native_asset``, ``max_price_age_s``,
        ``close_factor_rules``, ``funded``, ``block_time_s``)."""
