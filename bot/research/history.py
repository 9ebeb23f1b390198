"""Generate a realistic chain history on a devnet: the "mainnet" backtests replay.

Over a few thousand blocks (mostly empty ones, mined in bulk, 12 s apart so interest
accrues): WETH and WBTC follow a random walk with one crash episode, borrowers arrive
(opening positions at the prices of the day) and leave (repaying and withdrawing), and an
independent competitor -- a plain funded account calling ``Pool.liquidationCall``
directly -- watches every borrower's on-chain health factor and liquidates some of the
positions that fall below 1, a few blocks later.

Everything is drawn from one ``random.Random(seed)``, and block timestamps advance by a
fixed interval, so a seed gives the same transactions in the same blocks on a fresh devnet.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eth_utils import keccak, to_checksum_address

from bot.abi import load_abi
from bot.devnet.anvil_rpc import AnvilRpc
from bot.devnet.manifest import BorrowerInfo, Manifest
from bot.devnet.market import DEFAULT_MARKET, MarketParams
from bot.devnet.scenario import Scenario
from bot.devnet.seed import BorrowerPlan, plan_borrowers, plan_transactions
from bot.rpc import JsonRpcClient

log = logging.getLogger(__name__)

WAD = 10**18
MAX_UINT = 2**256 - 1
VARIABLE = 2
_POOL = load_abi("Pool")
_ERC20 = load_abi("ERC20")
_WALKED = ("WETH", "WBTC")
_ARRIVAL_SEED = 1_000_000  # arrival batches use seeds above this: addresses never collide


@dataclass(frozen=True, slots=True)
class HistorySpec:
    blocks: int = 2_000  # length of the history, in blocks
    seed: int = 7
    arrivals: int = 24  # borrowers opening positions during the history
    exits: int = 8  # borrowers repaying everything and leaving
    price_updates: int = 30  # random-walk oracle updates (besides the crash)
    volatility_bps: int = 120  # standard deviation of one update's log return
    crash_bps: int = 6_800  # WETH falls to this share of its price during the crash...
    crash_steps: int = 4  # ...in this many updates, a few blocks apart
    competitor_share_bps: int = 7_000  # share of liquidatable positions the competitor takes
    competitor_delay: tuple[int, int] = (2, 8)  # blocks from HF < 1 to its liquidation
    block_time_s: int = 12


@dataclass(frozen=True, slots=True)
class CompetitorLiquidation:
    block: int
    user: str
    collateral: str  # symbols
    debt: str
    tx: str


@dataclass(slots=True)
class History:
    """What was generated: the block range, the actors and the competitor's liquidations."""

    spec: HistorySpec
    from_block: int
    to_block: int
    competitor: str
    arrivals: int = 0
    exits: int = 0
    price_updates: int = 0
    liquidations: list[CompetitorLiquidation] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def competitor_address(seed: int) -> str:
    return to_checksum_address(keccak(f"liqbot/competitor/{seed}".encode())[12:])


@dataclass(order=True, slots=True)
class _Action:
    block: int
    kind: str  # "price" | "arrive" | "exit"
    symbol: str = ""
    bps: int = 10_000  # price multiplier


def plan_actions(spec: HistorySpec, start: int, rng: random.Random) -> list[_Action]:
    """Pure: when each price update, arrival and exit happens (block numbers)."""
    end = start + spec.blocks
    lo, hi = start + 5, end - 3 * spec.competitor_delay[1] - 20
    if hi - lo < spec.price_updates + spec.arrivals + spec.exits + 50:
        raise ValueError(f"a history of {spec.blocks} blocks is too short for its actions")
    actions = []
    sigma = spec.volatility_bps / 10_000
    for _ in range(spec.price_updates):
        symbol = rng.choice(_WALKED)
        bps = int(10_000 * math.exp(rng.gauss(0.0, sigma)))
        actions.append(_Action(rng.randrange(lo, hi), "price", symbol, bps))
    # The crash: WETH falls in steps a few blocks apart, WBTC follows halfway, somewhere
    # in the middle third so borrowers have arrived and the aftermath is long enough.
    crash = rng.randrange(start + spec.blocks // 3, start + 2 * spec.blocks // 3)
    step = round(10_000 * (spec.crash_bps / 10_000) ** (1 / spec.crash_steps))
    for i in range(spec.crash_steps):
        actions.append(_Action(crash + 3 * i, "price", "WETH", step))
    actions.append(_Action(crash + 1, "price", "WBTC", (10_000 + spec.crash_bps) // 2))
    for _ in range(spec.arrivals):
        actions.append(_Action(rng.randrange(lo, hi), "arrive"))
    for _ in range(spec.exits):
        actions.append(_Action(rng.randrange(lo, hi), "exit"))
    return sorted(actions, key=lambda a: (a.block, a.kind, a.symbol))


@dataclass(slots=True)
class _Borrower:
    address: str
    plan: BorrowerPlan


class HistoryGenerator:
    """Drives one devnet through a history; see the module docstring."""

    def __init__(
        self,
        rpc: JsonRpcClient,
        manifest: Manifest,
        spec: HistorySpec,
        market: MarketParams = DEFAULT_MARKET,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.sc = Scenario(rpc, manifest)
        self.chain: AnvilRpc = self.sc.chain
        self.manifest = manifest
        self.spec = spec
        self.market = market
        self.rng = random.Random(spec.seed)
        self.progress = progress
        self.competitor = competitor_address(spec.seed)
        self.active: dict[str, _Borrower] = {}
        self.arrived: list[BorrowerInfo] = []
        self.due: dict[str, int] = {}  # user -> block the competitor liquidates it at
        self.passed: set[str] = set()  # liquidatable users the competitor leaves alone

    async def run(self) -> tuple[History, Manifest]:
        spec = self.spec
        chain = self.chain
        await chain.rpc.call("anvil_setBlockTimestampInterval", [spec.block_time_s])
        try:
            start = await chain.block_number() + 1
            history = History(spec, start, start + spec.blocks, self.competitor)
            await self._setup_competitor()
            prices = {r.symbol: r.price_usd_8 for r in self.market.reserves}
            for act in plan_actions(spec, start, self.rng):
                await self._advance_to(act.block, history)
                if act.kind == "price":
                    prices[act.symbol] = prices[act.symbol] * act.bps // 10_000
                    await self.sc.set_price(act.symbol, prices[act.symbol])
                    history.price_updates += 1
                elif act.kind == "arrive":
                    await self._arrive(prices, history)
                else:
                    await self._exit(history)
                await self._watch()
            await self._advance_to(history.to_block, history)
            history.to_block = await chain.block_number()
        finally:
            await chain.rpc.call("anvil_removeBlockTimestampInterval")
        borrowers = self.manifest.borrowers + tuple(self.arrived)
        return history, self.manifest.model_copy(update={"borrowers": borrowers})

    # -- the clock and the competitor --------------------------------------------------
    async def _advance_to(self, block: int, history: History) -> None:
        """Mine empty blocks up to ``block - 1`` (the next transaction lands in ``block``),
        stopping wherever the competitor has a liquidation due."""
        while True:
            head = await self.chain.block_number()
            due = min(self.due.values(), default=math.inf)
            target = int(min(block, due))
            if target - 1 > head:
                await self.chain.mine(target - 1 - head, self.spec.block_time_s)
                head = target - 1
            if self.progress is not None:
                self.progress(head - history.from_block + 1, self.spec.blocks)
            ready = sorted(u for u, b in self.due.items() if b <= head + 1)
            if not ready:
                return
            for user in ready:
                del self.due[user]
                await self._liquidate(user, history)
            await self._watch()

    async def _setup_competitor(self) -> None:
        who = self.competitor
        await self.sc.fund_eth(who, 1_000 * WAD)
        for r in self.manifest.reserves:
            usd = 500_000_000
            await self.sc.fund(
                who, r.symbol, usd * 10**r.decimals * 10**8 // self._price0(r.symbol)
            )
            await self.sc.send(
                who, r.address, _ERC20.fn("approve"), self.manifest.aave.pool, MAX_UINT
            )

    def _price0(self, symbol: str) -> int:
        return self.market.reserve(symbol).price_usd_8

    async def _health(self, users: list[str]) -> dict[str, int]:
        fn = _POOL.fn("getUserAccountData")
        pool = self.manifest.aave.pool
        out = await self.chain.rpc.batch_strict(
            [("eth_call", [{"to": pool, "data": fn.encode_hex(u)}, "latest"]) for u in users]
        )
        return {u: int(fn.decode(raw)[5]) for u, raw in zip(users, out, strict=True)}

    async def _watch(self) -> None:
        """The competitor's scan: schedule some of the newly liquidatable positions."""
        users = sorted(u for u in self.active if u not in self.due and u not in self.passed)
        if not users:
            return
        head = await self.chain.block_number()
        lo, hi = self.spec.competitor_delay
        for user, hf in (await self._health(users)).items():
            if hf >= WAD:
                continue
            if self.rng.randrange(10_000) < self.spec.competitor_share_bps:
                self.due[user] = head + self.rng.randint(lo, hi)
            else:
                self.passed.add(user)

    async def _liquidate(self, user: str, history: History) -> None:
        if (await self._health([user]))[user] >= WAD:
            return  # recovered (a price move) before the competitor got to it
        # Choose from what the user holds now: an earlier liquidation may have repaid one
        # debt entirely or taken all of one collateral.
        held: dict[str, tuple[int, int]] = {}
        for r in self.manifest.reserves:
            coll = await self.chain.call(r.a_token, _ERC20.fn("balanceOf"), user)
            debt = await self.chain.call(r.variable_debt_token, _ERC20.fn("balanceOf"), user)
            price = await self.sc.price(r.symbol)
            held[r.symbol] = (coll * price // 10**r.decimals, debt * price // 10**r.decimals)
        collateral = max(held, key=lambda s: held[s][0])
        debt = max(held, key=lambda s: held[s][1])
        if held[collateral][0] == 0:
            self.passed.add(user)  # bad debt: nothing left to seize
            return
        receipt = await self.sc.send(
            self.competitor,
            self.manifest.aave.pool,
            _POOL.fn("liquidationCall"),
            self.manifest.reserve(collateral).address,
            self.manifest.reserve(debt).address,
            user,
            MAX_UINT,
            False,
        )
        block = int(receipt["blockNumber"], 16)
        history.liquidations.append(
            CompetitorLiquidation(block, user, collateral, debt, receipt["transactionHash"])
        )
        log.debug("competitor liquidated", extra={"user": user, "block": block})

    # -- borrowers ---------------------------------------------------------------------
    async def _arrive(self, prices: dict[str, int], history: History) -> None:
        n = self.rng.randint(1, 3)
        seed = _ARRIVAL_SEED + self.spec.seed * 10_000 + history.arrivals
        plans = plan_borrowers(n, self.market, prices, seed=seed)
        await self.chain.auto_impersonate(True)
        await self.chain.set_balances([p.address for p in plans], 10 * WAD)
        await self.chain.send_many(plan_transactions(plans, self.manifest))
        for p in plans:
            self.active[p.address] = _Borrower(p.address, p)
            self.arrived.append(
                BorrowerInfo(
                    address=p.address,
                    kind=p.kind,
                    target_health_factor_wad=p.target_health_factor_wad,
                )
            )
        history.arrivals += n

    async def _exit(self, history: History) -> None:
        """A healthy borrower repays every debt and withdraws every collateral."""
        candidates = sorted(u for u in self.active if u not in self.due)
        if not candidates:
            return
        health = await self._health(candidates)
        healthy = [u for u in candidates if health[u] > WAD * 105 // 100]
        if not healthy:
            return
        user = self.rng.choice(healthy)
        plan = self.active.pop(user).plan
        pool = self.manifest.aave.pool
        for symbol, _ in plan.debt:
            r = self.manifest.reserve(symbol)
            owed = await self.sc.balance(user, symbol)  # what it borrowed, still in hand...
            debt = await self.chain.call(r.variable_debt_token, _ERC20.fn("balanceOf"), user)
            if debt > owed:  # ...plus the interest, minted for it
                await self.sc.fund(user, symbol, (debt - owed) * 2 + 1)
            await self.sc.send(user, r.address, _ERC20.fn("approve"), pool, MAX_UINT)
            await self.sc.send(user, pool, _POOL.fn("repay"), r.address, MAX_UINT, VARIABLE, user)
        for symbol, _ in plan.collateral:
            r = self.manifest.reserve(symbol)
            await self.sc.send(user, pool, _POOL.fn("withdraw"), r.address, MAX_UINT, user)
        history.exits += 1


async def generate_history(
    url: str,
    manifest: Manifest,
    spec: HistorySpec,
    *,
    devnet_seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[History, Manifest]:
    """Run ``spec`` on the devnet at ``url``, whose borrowers were seeded with
    ``devnet_seed`` (``DevnetSpec.seed``); returns the history and the manifest with the
    arriving borrowers added. The seeded borrowers take part (they can be liquidated and
    can leave) alongside the arrivals."""
    async with JsonRpcClient(url) as rpc:
        gen = HistoryGenerator(rpc, manifest.with_rpc_url(url), spec, progress=progress)
        prices = {r.symbol: r.price_usd_8 for r in DEFAULT_MARKET.reserves}
        seeded = plan_borrowers(len(manifest.borrowers), DEFAULT_MARKET, prices, seed=devnet_seed)
        for p in seeded:
            gen.active[p.address] = _Borrower(p.address, p)
        return await gen.run()
