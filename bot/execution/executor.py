"""Send liquidation plans safely: simulate, price the gas, sign, track, settle.

One head's plans are simulated together, in one request, in the order they will be sent:
``eth_simulateV1`` runs them one after another on the pending block (so our own in-flight
transactions are accounted for, and each plan sees the pools the earlier ones leave), with
the timestamp the plans were priced at. Nodes without it get one JSON-RPC batch of
``eth_call`` + ``eth_estimateGas`` per plan instead. A failing simulation is recorded and
never sent. A lost race (the position is no longer liquidatable: someone got there
first) costs one simulation and puts the user on cooldown; it is never retried in a loop.
The plans that pass are signed with consecutive nonces from a local counter and sent in
one batch, each recorded in the ledger with its transaction hash before it leaves, so a
crash never forgets a transaction it may have sent; a batch goes only as far as the
account's ETH (read in the simulation's request) covers its worst-case gas (the rest is
recorded as not sent). Fees are
EIP-1559 (base fee of the head times two plus the priority fee, under a cap); with
``bid_share_bps`` the priority fee bids that share of what the plan earns above its
base-fee gas, so that a competitor with a plain tip is ordered after us in the block. A
transaction still pending after ``replace_after_blocks``, at a head that mined none of
ours (our queue stalled), is replaced once per head with fees bumped by 12.5% (what nodes
require), as long as the worst-case gas cost stays below the expected profit; past that it
is cancelled (the same nonce, a transfer to ourselves), so that it stops holding back our
later transactions, and its user is planned afresh. ``gas_room`` bounds what we keep in
flight to a few blocks' gas (``gas_in_flight_bps``).

With a private relay (``bot.execution.relay``) every send goes there instead of to the
node's mempool; receipts are still read from the node. A relay does not include a
transaction that reverts, so one that is still pending when it would be replaced, whose
nonce is unused and which reverts at the head (a lost race), is given up: its nonce is
free again and it cost no gas. A send the relay did not answer (timeout, 5xx) may have
been accepted: it is tracked as sent, not treated as rejected.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from eth_utils import keccak

from bot.api import BlockRef, LiquidationPlan
from bot.errors import ExecutionReverted, RpcError, RpcTransportError
from bot.execution.guards import KillSwitch, LossGuard
from bot.execution.keys import Signer
from bot.execution.liquidator import LIQUIDATOR_ABI, decode_revert, encode_liquidate
from bot.execution.relay import Relay
from bot.ledger import Ledger, Outcome
from bot.rpc import JsonRpcClient, to_int

log = logging.getLogger(__name__)

WEI_PER_NATIVE = 10**18
# A replacement must raise both fee fields by at least 10% (geth) / 12.5% (others).
REPLACEMENT_BUMP_BPS = 11_250
CANCEL_GAS = 21_000  # a plain transfer: what a cancellation costs
# Reverts that mean "not liquidatable any more": Aave's HEALTH_FACTOR_NOT_BELOW_THRESHOLD,
# COLLATERAL_CANNOT_BE_LIQUIDATED, SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER.
RACE_REASONS = ("'45'", "'46'", "'47'")
_PROFIT_EVENTS = (
    (LIQUIDATOR_ABI.event("Liquidated"), "profit"),
    (LIQUIDATOR_ABI.event("Kept"), "seized"),
)
_HASHES = re.compile(r"0x[0-9a-fA-F]{64}")
_DISPLACES = "displaces row"
_PROFIT = LIQUIDATOR_ABI.fn("liquidate")


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    liquidator: str | None  # the Liquidator contract; None: plans are recorded, not simulated
    owner: str | None = None  # simulate as this address when there is no signer (dry run)
    funded: bool = False
    priority_fee_wei: int = 1_500_000_000
    max_fee_wei: int = 500 * 10**9
    # Priority fee as a share of what the plan earns above its base-fee gas (a gas
    # auction bid, as searchers make); 0: the fixed ``priority_fee_wei`` only.
    bid_share_bps: int = 0
    gas_margin_bps: int = 12_500  # gas limit = eth_estimateGas * margin
    # eth_simulateV1 reports gas used after refunds (up to a fifth back) and without the
    # 1/64 of each call's gas the EVM withholds; the limit must cover the gross.
    simulated_gas_margin_bps: int = 15_000
    replace_after_blocks: int = 3
    # Our transactions in flight take at most this share of a block's gas limit (their
    # expected gas); 0: no limit. See ``Executor.gas_room``.
    gas_in_flight_bps: int = 40_000
    cooldown_blocks: int = 5
    min_profit_base: int = 0
    simulate_tag: str = "pending"
    max_daily_loss_base: int | None = None  # stop sending past this realized loss in 24h
    kill_switch: Path | None = None  # stop sending while this file exists


@dataclass(frozen=True, slots=True)
class GasContext:
    """What gas costs at this head, in wei and in the oracle's base currency."""

    base_fee_wei: int
    native_price_base: int  # base-currency value of 1e18 wei


@dataclass(frozen=True, slots=True)
class _Fees:
    max_fee: int  # wei per gas
    priority: int


@dataclass(slots=True)
class InFlight:
    """One nonce of ours not yet mined: the plan's transaction (or its replacement)."""

    row: int
    user: str  # lower-case
    profit: int  # expected, profit-asset units
    profit_base: int
    nonce: int
    tx_hash: str
    sent_block: int
    gas_limit: int
    max_fee: int
    priority_fee: int
    data: bytes
    gas: int = 0  # expected gas used (the simulation's): its share of a block
    replaced: int = 0
    # Every hash sent for this nonce, newest last: after a replacement either may be mined.
    hashes: list[str] = field(default_factory=list)
    plan: LiquidationPlan | None = None  # None when adopted after a restart
    stuck: bool = False  # a bump was refused (over the fee cap); said once
    # Replaced by a transfer to ourselves (it no longer paid a fee bump); the hashes of
    # those transfers, which settle the row as cancelled when mined.
    cancelled: bool = False
    cancels: list[str] = field(default_factory=list)
    # The flight whose nonce this one took (``Executor.preempt``) while that one may
    # still be mined instead: until one of the two is, both are watched.
    displaces: InFlight | None = None

    @property
    def signed_gas(self) -> int:
        """The gas limit it is signed with: a cancellation's is a plain transfer's."""
        return CANCEL_GAS if self.cancelled else self.gas_limit

    @property
    def block_gas(self) -> int:
        """The gas it is expected to take of the block that includes it."""
        return CANCEL_GAS if self.cancelled else self.gas or self.gas_limit

    def value(self, tokens: int) -> int:
        """Base-currency value of ``tokens`` of the debt asset, at the plan's price."""
        return _value(self.profit, self.profit_base, tokens)

    def net(self, gas: GasContext) -> int:
        """What it is expected to earn at ``gas``'s base fee and its own tip."""
        return self.profit_base - _base(
            self.block_gas * (gas.base_fee_wei + self.priority_fee), gas
        )


@dataclass(frozen=True, slots=True)
class Poll:
    """The node's answers about our transactions in flight (``Executor.poll``)."""

    flights: list[InFlight]
    asked: list[tuple[InFlight, str]]  # (flight, hash) per receipt asked, in order
    answers: list[Any]  # the receipts, then (without a relay) each flight's transaction


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the executor did with a plan."""

    outcome: Outcome
    row: int
    tx_hash: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Simulation:
    """A plan's transaction as the node ran it: ``profit`` (profit-asset units the owner
    would receive) and ``gas`` when it succeeds, the decoded revert reason when not."""

    plan: LiquidationPlan
    data: bytes
    profit: int | None
    gas: int = 0  # expected gas used
    gas_limit: int = 0  # what the transaction is sent with
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.profit is not None


@dataclass(slots=True)
class _Nonces:
    """The next nonce, counted locally once read from the node."""

    rpc: JsonRpcClient
    address: str
    _next: int | None = field(default=None)

    async def take(self, n: int = 1, floor: int = 0) -> int:
        """The first of ``n`` consecutive nonces, never below ``floor`` (the nonces of our
        transactions in flight are taken whatever the node's count says: after a reorg a
        node may count only the transactions it can mine right now)."""
        if self._next is None:
            self._next = to_int(
                await self.rpc.call("eth_getTransactionCount", [self.address, "pending"])
            )
        self._next = max(self._next, floor)
        nonce = self._next
        self._next += n
        return nonce

    def reset(self) -> None:
        self._next = None


class Executor:
    def __init__(
        self,
        rpc: JsonRpcClient,
        ledger: Ledger,
        settings: ExecutorSettings,
        signer: Signer | None,
        chain_id: int,
        calldata: Callable[[LiquidationPlan, int], bytes] | None = None,
        *,
        relay: Relay | None = None,
    ) -> None:
        """``calldata``: the liquidator call for a plan and its minProfit (the protocol
        adapter's); by default Aave's flash-loan ``liquidate`` (``liquidateFunded`` when
        ``settings.funded``). ``relay``: send there instead of to the node's mempool."""
        self.rpc = rpc
        self.relay = relay
        self.calldata = calldata or (
            lambda plan, min_profit: encode_liquidate(plan, min_profit, funded=settings.funded)
        )
        self.ledger = ledger
        self.settings = settings
        self.signer = signer
        self.chain_id = chain_id
        self._nonces = _Nonces(rpc, signer.address) if signer else None
        self._in_flight: dict[int, InFlight] = {}  # by ledger row
        # Settled while a reorg could still undo them: (flight, block hash, block, net).
        self._settled: list[tuple[InFlight, str, int, int]] = []
        self._cooldown: dict[str, int] = {}  # user -> first block it may be tried again
        self._overrides = True  # until the node rejects eth_call block overrides
        self._simulate_v1 = True  # until the node rejects eth_simulateV1
        # Our balance, read in the last simulation's batch; taken by the next submit.
        self._balance: int | None = None
        self.losses = LossGuard(settings.max_daily_loss_base)
        self.kill_switch = KillSwitch(settings.kill_switch)

    def held(self, now: int) -> str | None:
        """Why sending is stopped right now (kill switch, loss cap), or None."""
        return self.kill_switch.engaged() or self.losses.tripped(now)

    @property
    def dry_run(self) -> bool:
        return self.signer is None or self.settings.liquidator is None

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def pending_plans(self) -> list[LiquidationPlan]:
        """The plans of our transactions not yet mined, in nonce order: they execute
        before anything sent now, so new plans are priced after their swaps."""
        flights = sorted(self._in_flight.values(), key=lambda f: f.nonce)
        return [f.plan for f in flights if f.plan is not None and not f.cancelled]

    def gas_room(self, head: BlockRef) -> int | None:
        """The gas new transactions may take after ``head``: ``gas_in_flight_bps`` of its
        block gas limit, less what our transactions in flight are expected to use. None:
        no limit (none set, or the header has no gas limit).

        A node mines one sender's transactions in nonce order, so what we send queues
        behind our earlier ones. At a crash with hundreds of targets (20,000 borrowers)
        that queue was 8 to 14 blocks deep: the full blocks raised the base fee 12.5%
        each, the queue's tail fell under it, and each stuck nonce held back every later
        one while a competitor with its own key overtook them. A fee cap of twice the base
        fee outlasts five full blocks (1.125^5 < 2), so the default, four blocks, keeps the
        whole queue mineable; the plans past it leave on later heads, priced at their
        fees and pools. A queue of one block only was worse: a competitor's transactions
        reached the mempool before our later plans, and the pending state then showed
        those positions as taken (2,000 borrowers: 70% of the planned users won, against
        100% with four blocks).
        """
        share = self.settings.gas_in_flight_bps
        if not share or not head.gas_limit:
            return None
        used = sum(f.block_gas for f in self._in_flight.values())
        return head.gas_limit * share // 10_000 - used

    def front(self, head: BlockRef) -> list[InFlight]:
        """The nonces ``preempt`` may give to more valuable plans: our unmined
        liquidations at the lowest nonces, as many as the next block admits, when more of
        ours queue behind them (a plan sent now would wait past the next block). In nonce
        order, up to the first that is a cancellation, adopted without its plan, itself
        displacing another, or sent at this head. Empty with a relay (bundles are
        re-sent whole) or without a key.

        At 20,000 borrowers an oracle update landed on a queue four blocks deep, holding
        the previous update's leftovers ($389 to $2,054 each); its own plans (up to
        $40,825, median $5,178) waited five blocks behind them while a competitor took half
        of its users.
        """
        if self.dry_run or self.relay is not None or not head.gas_limit:
            return []
        if self.held(head.timestamp):
            return []  # nothing is sent while held, a displacing plan neither
        flights = sorted(self._in_flight.values(), key=lambda f: f.nonce)
        # A queue one block deep by the gas it uses can still spill into a second.
        nxt = admitted([(f.signed_gas, f.block_gas) for f in flights], head.gas_limit)
        if nxt == len(flights):
            return []  # all of it fits the next block: a plan sent now joins it
        out: list[InFlight] = []
        for f in flights[:nxt]:
            if f.cancelled or f.plan is None or f.displaces is not None:
                break
            if f.sent_block >= head.number:
                break
            out.append(f)
        return out

    async def preempt(
        self,
        sims: Sequence[Simulation],
        slots: Sequence[InFlight],
        head: BlockRef,
        gas: GasContext,
    ) -> list[Attempt]:
        """Send ``sims`` (simulated in order before anything of ours in the pool) with the
        nonces of ``slots`` (``front``), one each in order, while each earns more than
        the flight it displaces, at fees that outbid that flight's by the replacement bump.
        A failed simulation is recorded as ``submit`` records it and takes no nonce.
        Returns the attempts of ``sims``' first ones; the rest are not recorded (later
        batches and heads plan them afresh).

        A displaced flight's row settles as ``displaced``; its user is planned again once
        the nonce is mined. Should the node mine the displaced transaction after all (it
        was in the block being built), the plan that was to take its nonce is recorded as
        not sent, and the displaced one settles as usual.
        """
        s = self.settings
        attempts: list[Attempt] = []
        go: list[tuple[int, Simulation, _Fees, InFlight]] = []
        balance, committed = await self._eth()
        left = balance - committed
        free = iter(slots)
        for sim in sims:
            if not sim.ok:
                attempts.append(self._refused(sim.plan, head, sim.reason))
                continue
            f = next(free, None)
            if f is None:
                break
            assert sim.profit is not None
            value = _value(sim.plan.profit, sim.plan.profit_base, sim.profit)
            own = self._fees(value, sim.gas, gas)
            fees = _Fees(
                max(own.max_fee, _bumped(f.max_fee)), max(own.priority, _bumped(f.priority_fee))
            )
            gas_base = _base(sim.gas * (gas.base_fee_wei + fees.priority), gas)
            net = value - gas_base
            extra = sim.gas_limit * fees.max_fee - f.max_fee * f.signed_gas
            if fees.max_fee > s.max_fee_wei or net < s.min_profit_base or net <= f.net(gas):
                break
            if extra > left:
                break
            left -= extra
            go.append((len(attempts), self._guarded(sim, fees, gas_base), fees, f))
            attempts.append(Attempt(Outcome.SENT, 0))  # replaced below, once recorded
        signed: list[tuple[int, InFlight, bytes]] = []
        for i, sim, fees, f in go:
            flight, raw = self._recorded(sim, fees, f.nonce, head, displaces=f)
            signed.append((i, flight, raw))
        results = await self._send_raw([raw for _, _, raw in signed], head.number) if signed else []
        for (i, flight, _), result in zip(signed, results, strict=True):
            f = flight.displaces
            assert f is not None
            if isinstance(result, RpcError) and not self._maybe_sent(result):
                # The displaced one stays: its nonce was mined meanwhile, or the node
                # kept it. This plan is not cooled down: a later head plans it afresh.
                why = f"not sent: nonce {f.nonce} not taken ({result}) ({flight.tx_hash})"
                self.ledger.update(flight.row, Outcome.REVERTED, tx_hash="", reason=why)
                attempts[i] = Attempt(Outcome.REVERTED, flight.row, reason=why)
                continue
            del self._in_flight[f.row]
            self._in_flight[flight.row] = flight
            self._displaced(f.row, flight.tx_hash, flight.row)
            attempts[i] = Attempt(Outcome.SENT, flight.row, flight.tx_hash)
            log.info(
                "preempted",
                extra={
                    "user": flight.user,
                    "displaced": f.user,
                    "nonce": f.nonce,
                    "tx": flight.tx_hash,
                    "net": flight.net(gas),
                    "displaced_net": f.net(gas),
                },
            )
        return attempts

    def _displaced(self, row: int, by_hash: str, by_row: int) -> None:
        self.ledger.update(row, Outcome.DISPLACED, reason=f"displaced by {by_hash} (row {by_row})")

    def idle(self, users: Iterable[str], block: int) -> list[str]:
        """``users``, in their order, without a transaction in flight (theirs, or one that
        displaced theirs and may still lose its nonce to it) and not cooling down after a
        failure. One pass over what is in flight: a crash head asks for 1,660 users with
        200 transactions in flight (44 ms asked user by user)."""
        flying = {f.user for f in self._in_flight.values()}
        flying |= {f.displaces.user for f in self._in_flight.values() if f.displaces}
        cool = self._cooldown
        return [u for u in users if u.lower() not in flying and cool.get(u.lower(), 0) <= block]

    def busy(self, user: str, block: int) -> bool:
        """A transaction for ``user`` is in flight, or it is cooling down after a failure."""
        return not self.idle([user], block)

    def changed(self, users: Iterable[str]) -> None:
        """These positions changed on chain: a failure on their old state says nothing
        about the new one (a competitor's partial liquidation, a replayed tip), so their
        cooldown ends. The cooldown exists to stop retries of an unchanged question."""
        for u in users:
            self._cooldown.pop(u.lower(), None)

    def _cool(self, user: str, block: int) -> None:
        self._cooldown[user.lower()] = block + self.settings.cooldown_blocks

    # --- plans ---

    async def execute(
        self, plan: LiquidationPlan, head: BlockRef, gas: GasContext, ts: int | None = None
    ) -> Attempt:
        """``plan`` alone: simulate it and, when it pays and a key is configured, send it."""
        (attempt,) = await self.submit(await self.simulate([plan], ts), head, gas)
        return attempt

    async def simulate(
        self, plans: Sequence[LiquidationPlan], ts: int | None = None, tag: str | None = None
    ) -> list[Simulation]:
        """Run ``plans``' transactions, in order, on the simulation block, in one request.

        ``ts``: the timestamp the plans were priced at; the simulation runs at it where the
        node supports block overrides, so each profit is the plan's to the wei. ``tag``:
        the block to run on instead of ``simulate_tag`` ("latest": before anything of ours
        still in the pool, where ``preempt`` puts its plans).
        """
        s = self.settings
        if s.liquidator is None or not plans:
            return [Simulation(p, b"", None, reason="no liquidator") for p in plans]
        sender = self.signer.address if self.signer else s.owner
        txs = []
        for plan in plans:
            data = self.calldata(plan, self._min_profit(plan))
            tx: dict[str, Any] = {"to": s.liquidator, "data": "0x" + data.hex()}
            if sender:
                tx["from"] = sender
            txs.append((plan, data, tx))
        if self._simulate_v1:
            try:
                return await self._simulate_v1_calls(txs, ts, tag or s.simulate_tag)
            except ExecutionReverted:
                raise
            except RpcError as e:
                log.info("no eth_simulateV1: simulating plan by plan", extra={"err": str(e)})
                self._simulate_v1 = False
        return await self._simulate_each(txs, ts, tag or s.simulate_tag)

    def _min_profit(self, plan: LiquidationPlan) -> int:
        return _break_even_tokens(plan, plan.gas_cost_base + self.settings.min_profit_base)

    async def _simulate_v1_calls(
        self,
        txs: Sequence[tuple[LiquidationPlan, bytes, dict[str, Any]]],
        ts: int | None,
        tag: str,
    ) -> list[Simulation]:
        block: dict[str, Any] = {"calls": [tx for _, _, tx in txs]}
        if ts is not None:
            block["blockOverrides"] = {"time": hex(ts)}
        answers = await self.rpc.batch(
            [
                (
                    "eth_simulateV1",
                    [{"blockStateCalls": [block], "validation": False}, tag],
                ),
                *self._balance_call(),
            ]
        )
        self._keep_balance(answers[1:])
        if isinstance(answers[0], RpcError):
            raise answers[0]
        (result,) = answers[0]
        calls = result["calls"]
        if len(calls) != len(txs):
            raise RpcError("eth_simulateV1", f"{len(calls)} results for {len(txs)} calls")
        out = []
        for (plan, data, _), call in zip(txs, calls, strict=True):
            if to_int(call["status"]) == 1:
                profit = _PROFIT.decode_one(call["returnData"])
                limit = to_int(call["gasUsed"]) * self.settings.simulated_gas_margin_bps // 10_000
                out.append(Simulation(plan, data, profit, to_int(call["gasUsed"]), limit))
            else:
                err = call.get("error") or {}
                revert = err.get("data") or call.get("returnData") or "0x"
                reason = decode_revert(revert) if revert != "0x" else str(err.get("message", ""))
                out.append(Simulation(plan, data, None, reason=reason))
        return out

    async def _simulate_each(
        self,
        txs: Sequence[tuple[LiquidationPlan, bytes, dict[str, Any]]],
        ts: int | None,
        tag: str,
    ) -> list[Simulation]:
        """Independent ``eth_call`` + ``eth_estimateGas`` per plan, in one batch."""
        if ts is not None and self._overrides:
            calls = [
                (m, [tx, tag, {}, {"time": hex(ts)}])
                for _, _, tx in txs
                for m in ("eth_call", "eth_estimateGas")
            ]
            results = await self.rpc.batch(calls + self._balance_call())
            self._keep_balance(results[len(calls) :])
            if any(
                isinstance(r, RpcError) and not isinstance(r, ExecutionReverted) for r in results
            ):
                log.info("no block overrides: simulating at the node's time")
                self._overrides = False
        if ts is None or not self._overrides:
            calls = [(m, [tx, tag]) for _, _, tx in txs for m in ("eth_call", "eth_estimateGas")]
            results = await self.rpc.batch(calls + self._balance_call())
            self._keep_balance(results[len(calls) :])
        out = []
        for i, (plan, data, _) in enumerate(txs):
            called, estimated = results[2 * i], results[2 * i + 1]
            failed = next((r for r in (called, estimated) if isinstance(r, RpcError)), None)
            if isinstance(failed, ExecutionReverted):
                reason = decode_revert(failed.revert_data or "0x")
                out.append(Simulation(plan, data, None, reason=reason))
            elif failed is not None:
                raise failed
            else:
                gas = to_int(estimated)
                limit = gas * self.settings.gas_margin_bps // 10_000
                out.append(Simulation(plan, data, _PROFIT.decode_one(called), gas, limit))
        return out

    def _balance_call(self) -> list[tuple[str, list[Any]]]:
        """Our balance, asked for in a simulation's batch when plans may be sent:
        ``submit`` checks what it sends against it without another round trip."""
        if self.dry_run or self.signer is None:
            return []
        return [("eth_getBalance", [self.signer.address, "latest"])]

    def _keep_balance(self, answers: Sequence[Any]) -> None:
        self._balance = None
        if answers and not isinstance(answers[0], RpcError):
            self._balance = to_int(answers[0])

    async def submit(
        self, sims: Sequence[Simulation], head: BlockRef, gas: GasContext
    ) -> list[Attempt]:
        """Record every simulated plan; sign and send those that pay, in one batch."""
        s = self.settings
        users = [sim.plan.user for sim in sims]
        if busy := sorted(set(users) - set(self.idle(users, head.number))):
            raise ValueError(f"users {busy} have a transaction in flight or cool down")
        attempts: dict[int, Attempt] = {}
        go: list[tuple[int, Simulation, _Fees]] = []
        held = self.held(head.timestamp)
        for i, sim in enumerate(sims):
            plan = sim.plan
            if s.liquidator is None:
                row = self.ledger.record(plan, head.number, Outcome.DRY_RUN, reason="no liquidator")
                self._cool(plan.user, head.number)
                attempts[i] = Attempt(Outcome.DRY_RUN, row, reason="no liquidator contract")
                continue
            if not sim.ok:
                attempts[i] = self._refused(plan, head, sim.reason)
                continue
            assert sim.profit is not None
            value = _value(plan.profit, plan.profit_base, sim.profit)
            fees = self._fees(value, sim.gas, gas)
            gas_base = _base(sim.gas * (gas.base_fee_wei + fees.priority), gas)
            net = value - gas_base
            if net < s.min_profit_base:
                attempts[i] = self._refused(
                    plan,
                    head,
                    f"net {net} < min {s.min_profit_base} "
                    f"(simulated profit {sim.profit}, gas {sim.gas})",
                    outcome=Outcome.UNPROFITABLE,
                )
                continue
            if self.dry_run or held:
                reason = f"simulated profit {sim.profit}" + (f"; not sent: {held}" if held else "")
                if held:
                    log.warning("sending held", extra={"user": plan.user, "why": held})
                row = self.ledger.record(plan, head.number, Outcome.DRY_RUN, reason=reason)
                self._cool(plan.user, head.number)
                attempts[i] = Attempt(Outcome.DRY_RUN, row, reason=reason)
                continue
            go.append((i, self._guarded(sim, fees, gas_base), fees))
        if go:
            n, why = await self._funded(go)
            for i, sim, _ in go[n:]:
                row = self.ledger.record(sim.plan, head.number, Outcome.REVERTED, reason=why)
                self._cool(sim.plan.user, head.number)
                attempts[i] = Attempt(Outcome.REVERTED, row, reason=why)
            if n:
                attempts.update(await self._send_all(go[:n], head))
        return [attempts[i] for i in range(len(sims))]

    def _guarded(self, sim: Simulation, fees: _Fees, gas_base: int) -> Simulation:
        """``sim`` with the contract's minProfit covering ``gas_base`` (its gas at
        ``fees``) when the tip is above the fixed one.

        The bid raised the gas cost: the on-chain guard covers it too, so a price move
        before inclusion reverts rather than pays the bid at a loss. The simulated profit
        covers it already (the caller checked the net), so nothing else moves."""
        if fees.priority <= self.settings.priority_fee_wei:
            return sim
        need = _break_even_tokens(sim.plan, gas_base + self.settings.min_profit_base)
        return replace(sim, data=self.calldata(sim.plan, need))

    async def _eth(self) -> tuple[int, int]:
        """Our balance (as read with the last simulation, else now) and what our
        transactions in flight may still cost at worst (gas limit times fee cap)."""
        assert self.signer is not None
        balance, self._balance = self._balance, None
        if balance is None:
            balance = to_int(await self.rpc.call("eth_getBalance", [self.signer.address, "latest"]))
        return balance, sum(f.max_fee * f.signed_gas for f in self._in_flight.values())

    async def _funded(self, go: Sequence[tuple[int, Simulation, _Fees]]) -> tuple[int, str]:
        """How many of ``go``, from the first, the account's ETH covers at their worst case
        (gas limit times fee cap, what a node checks a sender against) after what our
        transactions in flight may still cost; and why the rest are not sent.

        A node refuses a transaction whose worst case the balance does not cover (geth
        counts the sender's pool transactions too), and each refusal leaves a nonce gap
        (at 20,000 borrowers a bot with 100 ETH had 1,073 sends refused). Kept in sending
        order: each plan was simulated after the ones before it."""
        balance, committed = await self._eth()
        left = balance - committed
        n = 0
        for _, sim, fees in go:
            cost = sim.gas_limit * fees.max_fee
            if cost > left:
                break
            left -= cost
            n += 1
        if n == len(go):
            return n, ""
        why = (
            f"not sent: ETH for gas short (balance {balance / WEI_PER_NATIVE:.6f}, "
            f"in flight up to {committed / WEI_PER_NATIVE:.6f})"
        )
        log.warning(
            "ETH for gas short",
            extra={
                "balance_eth": balance / WEI_PER_NATIVE,
                "in_flight_eth": committed / WEI_PER_NATIVE,
                "not_sent": len(go) - n,
            },
        )
        return n, why

    def _fees(self, value_base: int, gas_units: int, gas: GasContext) -> _Fees:
        """EIP-1559 fees for a plan worth ``value_base`` that uses ``gas_units``: the fixed
        tip, or the ``bid_share_bps`` bid when it is higher, under ``first_fee_cap``."""
        s = self.settings
        priority = s.priority_fee_wei
        surplus = value_base - _base(gas_units * gas.base_fee_wei, gas)
        if s.bid_share_bps and surplus > 0 and gas.native_price_base > 0 and gas_units > 0:
            bid_wei = surplus * s.bid_share_bps * WEI_PER_NATIVE // 10_000 // gas.native_price_base
            priority = max(priority, bid_wei // gas_units)
        cap = self.first_fee_cap
        priority = min(priority, cap)
        return _Fees(min(2 * gas.base_fee_wei + priority, cap), priority)

    @property
    def first_fee_cap(self) -> int:
        """The fee cap of a first send: ``max_fee_wei`` less one replacement bump, so that
        every transaction can be replaced once within the cap, by a more valuable plan
        (``preempt``) or by its own bump when stuck. At 20,000 borrowers with half the
        profit bid, bids reached the cap: no flight could then be displaced or bumped
        ("stuck, not bumped"), and an oracle update's plans waited five blocks."""
        return self.settings.max_fee_wei * 10_000 // REPLACEMENT_BUMP_BPS

    async def _send_all(
        self, go: Sequence[tuple[int, Simulation, _Fees]], head: BlockRef
    ) -> dict[int, Attempt]:
        """Sign ``go`` with consecutive nonces, record each with its hash, send in one batch."""
        assert self._nonces is not None
        floor = max((f.nonce + 1 for f in self._in_flight.values()), default=0)
        first = await self._nonces.take(len(go), floor)
        flights: list[tuple[int, InFlight, bytes]] = []
        for k, (i, sim, fees) in enumerate(go):
            flight, raw = self._recorded(sim, fees, first + k, head)
            flights.append((i, flight, raw))
        results = await self._send_raw([raw for _, _, raw in flights], head.number)
        out: dict[int, Attempt] = {}
        gaps: list[InFlight] = []
        why = ""
        for (i, flight, _), result in zip(flights, results, strict=True):
            if isinstance(result, RpcError) and not self._maybe_sent(result):
                self.ledger.update(flight.row, Outcome.REVERTED, reason=f"rejected: {result}")
                self._cool(flight.user, head.number)
                gaps.append(flight)
                why = why or str(result)
                out[i] = Attempt(Outcome.REVERTED, flight.row, reason=str(result))
                continue
            self._in_flight[flight.row] = flight
            log.info(
                "sent",
                extra={
                    "user": flight.user,
                    "tx": flight.tx_hash,
                    "nonce": flight.nonce,
                    "profit": flight.profit,
                    "tip_gwei": flight.priority_fee / 1e9,
                    "gas_limit": flight.gas_limit,
                },
            )
            out[i] = Attempt(Outcome.SENT, flight.row, flight.tx_hash)
        if gaps:
            await self._fill(gaps, last=first + len(flights) - 1, head=head.number, why=why)
        return out

    def _recorded(
        self,
        sim: Simulation,
        fees: _Fees,
        nonce: int,
        head: BlockRef,
        displaces: InFlight | None = None,
    ) -> tuple[InFlight, bytes]:
        """``sim``'s transaction with ``nonce`` and ``fees``, signed, its ledger row
        written with its hash: after a crash, ``recover`` finds it whether or not it was
        sent."""
        plan = sim.plan
        row = self.ledger.record(plan, head.number, Outcome.SENT)
        flight = InFlight(
            row,
            plan.user.lower(),
            plan.profit,
            plan.profit_base,
            nonce,
            "",
            head.number,
            sim.gas_limit,
            fees.max_fee,
            fees.priority,
            sim.data,
            gas=sim.gas,
            plan=plan,
            displaces=displaces,
        )
        raw = self._sign(flight)
        # The row it displaces is named so that ``recover`` settles that row as displaced
        # should the process die between the send and its update.
        link = {"reason": f"{_DISPLACES} {displaces.row}"} if displaces else {}
        self.ledger.update(row, Outcome.SENT, tx_hash=flight.tx_hash, **link)
        return flight, raw

    async def _send_raw(self, raws: Sequence[bytes], head: int) -> list[Any]:
        """Per transaction, the node's (or the relay's) answer or an ``RpcError``."""
        if self.relay is not None:
            return await self.relay.send(raws, head)
        return await self.rpc.batch([("eth_sendRawTransaction", ["0x" + r.hex()]) for r in raws])

    def _maybe_sent(self, error: RpcError) -> bool:
        """A relay that did not answer may have taken the transaction all the same."""
        return self.relay is not None and isinstance(error, RpcTransportError)

    async def _fill(self, rejected: Sequence[InFlight], last: int, head: int, why: str) -> None:
        """Rejected transactions (``why``: the node's first answer, e.g. the account's
        ETH no longer covers the gas) leave nonce gaps that would hold every later one
        back: fill each below ``last`` with a zero-value transfer to ourselves; if that
        fails too, forget the local count and take the node's next time."""
        assert self.signer is not None and self._nonces is not None
        # The node's pending count is right again once the gaps are filled (or, if a fill
        # fails, it points at the gap, which the next send then fills).
        self._nonces.reset()
        fill = [f for f in rejected if f.nonce < last]
        for f in fill:
            f.cancelled = True  # signed as a cancellation: a transfer to ourselves
        results = await self._send_raw([self._sign(f) for f in fill], head)
        log.warning(
            "sends rejected",
            extra={
                "nonces": [f.nonce for f in rejected],
                "filled": sum(not isinstance(r, RpcError) for r in results),
                "err": why,
            },
        )

    def _refused(
        self, plan: LiquidationPlan, head: BlockRef, reason: str, outcome: Outcome | None = None
    ) -> Attempt:
        if outcome is None:
            if any(r in reason for r in RACE_REASONS):
                outcome = Outcome.RACED
            elif reason.startswith("InsufficientProfit"):
                outcome = Outcome.UNPROFITABLE
            else:
                outcome = Outcome.REVERTED
        row = self.ledger.record(plan, head.number, outcome, reason=f"simulation: {reason}")
        self._cool(plan.user, head.number)
        log.info("not sent", extra={"user": plan.user, "outcome": outcome.value, "why": reason})
        return Attempt(outcome, row, reason=reason)

    def _sign(self, flight: InFlight) -> bytes:
        """Sign ``flight`` as it stands (nonce, fees; its cancellation once cancelled)
        and set its hash. Signing is deterministic: the same state gives the same hash."""
        assert self.signer is not None
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": flight.nonce,
            "to": self.settings.liquidator,
            "data": flight.data,
            "value": 0,
            "gas": flight.signed_gas,
            "maxFeePerGas": flight.max_fee,
            "maxPriorityFeePerGas": flight.priority_fee,
        }
        if flight.cancelled:
            tx |= {"to": self.signer.address, "data": b""}
        raw = self.signer.sign(tx)
        flight.tx_hash = "0x" + keccak(raw).hex()
        for hashes in (flight.hashes, flight.cancels) if flight.cancelled else (flight.hashes,):
            if flight.tx_hash not in hashes:
                hashes.append(flight.tx_hash)
        return raw

    # --- per head ---

    async def poll(self) -> Poll | None:
        """Ask the node about our transactions in flight, in one batch: their receipts,
        and whether it still holds each. None when nothing is in flight. The runner asks
        while the adapter reads the head, so settling costs a head no round trip of its
        own; ``on_head`` takes the answers."""
        if not self._in_flight:
            return None
        flights = list(self._in_flight.values())
        asked = [(f, h) for f in flights for h in f.hashes]
        # A flight that took another's nonce: the other may be the one mined.
        asked += [(f, h) for f in flights if f.displaces for h in f.displaces.hashes]
        calls = [("eth_getTransactionReceipt", [h]) for _, h in asked]
        # Whether the node still holds each one (asked in the same round trip): a node may
        # forget pending transactions (anvil does when a block is full and a later nonce of
        # ours fits where an earlier one did not; real nodes evict under pressure). A relay
        # is not the node's mempool, so there the question says nothing.
        if self.relay is None:
            calls += [("eth_getTransactionByHash", [f.tx_hash]) for f in flights]
        return Poll(flights, asked, await self.rpc.batch(calls))

    async def on_head(
        self, head: BlockRef, gas: GasContext, polled: Poll | None = None
    ) -> list[Attempt]:
        """Settle mined transactions; replace stuck ones. Returns the settled attempts.
        ``polled``: ``poll``'s answers at this head, asked since nothing else changed
        what is in flight (default: asked now)."""
        if polled is None or {f.row for f in polled.flights} != set(self._in_flight):
            polled = await self.poll()
        if polled is None:
            return []
        flights, asked, answers = polled.flights, polled.asked, polled.answers
        mined: dict[int, dict[str, Any]] = {}
        unknown: set[int] = set()
        for (flight, tx_hash), answer in zip(asked, answers[: len(asked)], strict=True):
            if isinstance(answer, RpcError):
                log.warning("receipt unavailable", extra={"tx": tx_hash, "err": str(answer)})
                unknown.add(flight.row)
            elif answer is not None:
                if flight.displaces is not None and tx_hash in flight.displaces.hashes:
                    flight = self._not_displaced(flight)
                flight.tx_hash = tx_hash  # the one that was mined
                mined[flight.row] = answer
        current = list(self._in_flight.values())  # less any that turned out not displaced
        waiting = [f for f in current if f.row not in mined and f.row not in unknown]
        # A node mines our transactions in nonce order, so one may wait for our own
        # earlier ones (up to ``max_gas_in_flight`` blocks of them): while some of ours
        # are mined, the queue moves and none is stuck. Bumped anyway, the waiting ones
        # paid 12.5% more, and those whose bump did not pay were cancelled (7 of the 200
        # sent at the first crash head at 20,000 borrowers).
        due = (
            set()
            if mined
            else {
                f.row
                for f in waiting
                if head.number - f.sent_block >= self.settings.replace_after_blocks
            }
        )
        if self.relay is None:
            held = dict(zip((f.row for f in flights), answers[len(asked) :], strict=True))
            # One whose fee is below the base fee (dropped for it, as anvil does) waits for
            # its replacement, which sends it too: the same again cannot help there. One
            # that is due is sent again all the same: its bump may be refused (over the
            # fee cap), and its nonce, left unused, held back every later transaction of
            # ours for good (20,000 borrowers: nothing sent after the first crash).
            forgotten = [f for f in waiting if held[f.row] is None and f.max_fee >= head.base_fee]
            if forgotten:
                await self._send_again(forgotten, head, "forgotten by the node")
        settled = []
        for flight in current:
            if flight.row in mined:
                settled.append(await self._settle(flight, mined[flight.row], head, gas))
            elif flight.row in due:
                dropped = await self._dropped(flight, head) if self.relay else None
                if dropped is None:
                    dropped = await self._replace(flight, gas, head)
                if dropped is not None:
                    settled.append(dropped)
        return settled

    def _not_displaced(self, flight: InFlight) -> InFlight:
        """The transaction ``flight`` was to displace was mined with its nonce: it is
        tracked (and settles) again, and ``flight`` never left: recorded as not sent, its
        user not cooled down."""
        old = flight.displaces
        assert old is not None
        del self._in_flight[flight.row]
        self._in_flight[old.row] = old
        self.ledger.update(
            flight.row,
            Outcome.REVERTED,
            tx_hash="",
            reason=(
                f"not sent: nonce {old.nonce} was mined with the transaction it was to "
                f"displace ({' '.join(flight.hashes)})"
            ),
        )
        log.info("displaced transaction mined", extra={"user": old.user, "nonce": old.nonce})
        return old

    async def _dropped(self, flight: InFlight, head: BlockRef) -> Attempt | None:
        """Relay only: give ``flight`` up when the relay can never include it. A relay
        drops a transaction that reverts; left in flight, its nonce would stay unused and
        hold back every later one, and fee bumps would not help. Given up when its nonce
        is unused at ``head`` and it reverts there; None (replace it as usual) otherwise."""
        assert self.signer is not None and self._nonces is not None
        if flight.cancelled:
            return None  # a transfer: the liquidation's verdict says nothing of it
        count = await self.rpc.call(
            "eth_getTransactionCount", [self.signer.address, hex(head.number)]
        )
        if to_int(count) > flight.nonce:
            return None  # the nonce is used: its receipt is on the way
        tx = {
            "from": self.signer.address,
            "to": self.settings.liquidator,
            "data": "0x" + flight.data.hex(),
            "gas": hex(flight.gas_limit),
        }
        try:
            await self.rpc.call("eth_call", [tx, hex(head.number)])
        except ExecutionReverted as e:
            reason = decode_revert(e.revert_data or "0x")
        else:
            return None  # it would still succeed: the relay may include a bumped one
        outcome = Outcome.RACED if any(r in reason for r in RACE_REASONS) else Outcome.REVERTED
        self._give_up(flight, head)
        self.ledger.update(flight.row, outcome, reason=f"dropped by the relay: {reason}")
        log.info(
            "dropped by the relay",
            extra={"user": flight.user, "tx": flight.tx_hash, "outcome": outcome.value},
        )
        return Attempt(outcome, flight.row, flight.tx_hash, reason)

    def _give_up(self, flight: InFlight, head: BlockRef) -> None:
        """Stop tracking ``flight``, which will never be mined: its user cools down, and
        the node's count is the first free nonce again."""
        assert self._nonces is not None
        del self._in_flight[flight.row]
        self._nonces.reset()
        self._cool(flight.user, head.number)

    async def recover(self) -> int:
        """Adopt the transactions the ledger holds as sent (a restart after a crash): they
        are settled, or replaced, on the next heads like any other, and their users are not
        planned again meanwhile. A transaction the node does not know (the process died
        before it left, or it was dropped) is marked so; its nonce is free again, and the
        counter starts from the node's. Returns how many were adopted."""
        if self.signer is None:
            return 0
        rows = [r for r in self.ledger.rows() if r.outcome == Outcome.SENT]
        if not rows:
            return 0
        hashes = [[h.lower() for h in _HASHES.findall(f"{r.tx_hash} {r.reason}")] for r in rows]
        asked = [(i, h) for i, hs in enumerate(hashes) for h in hs]
        answers = await self.rpc.batch([("eth_getTransactionByHash", [h]) for _, h in asked])
        txs: dict[int, list[dict[str, Any]]] = {}
        for (i, _), tx in zip(asked, answers, strict=True):
            if isinstance(tx, RpcError):
                raise tx  # unknown state: adopting blindly could send twice
            if tx is not None and tx["from"].lower() == self.signer.address.lower():
                txs.setdefault(i, []).append(tx)
        # A preemption the process died in: the node holds the displacing transaction,
        # its nonce's former one is gone, and both rows still say sent.
        displaced_by = {
            int(r.reason.removeprefix(_DISPLACES)): (r.id, txs[i][-1]["hash"])
            for i, r in enumerate(rows)
            if i in txs and r.reason.startswith(_DISPLACES)
        }
        adopted = 0
        for i, row in enumerate(rows):
            found = txs.get(i)
            if not found and row.id in displaced_by:
                by, tx_hash = displaced_by[row.id]
                self._displaced(row.id, tx_hash, by)
                continue
            if not found:
                # Its hash moves to the reason: it names no transaction, and the same plan
                # signed again with the same (free) nonce has the same hash, then mined
                # under a new row; the ledger's hashes stay one row per transaction.
                self.ledger.update(
                    row.id,
                    Outcome.REVERTED,
                    tx_hash="",
                    reason=f"not sent: unknown to the node ({' '.join(hashes[i]) or 'no hash'})",
                )
                continue
            tx = found[-1]  # the newest: a bump must outbid its fees
            # Cancellations are transfers to ourselves; the liquidation is the other one.
            me = self.signer.address.lower()
            cancels = [t["hash"] for t in found if (t.get("to") or "").lower() == me]
            call = next((t for t in reversed(found) if t["hash"] not in cancels), tx)
            flight = InFlight(
                row.id,
                row.user.lower(),
                row.predicted_profit,
                row.predicted_net_base + row.predicted_gas_cost_base,
                to_int(tx["nonce"]),
                tx["hash"],
                row.block,
                to_int(call["gas"]),
                to_int(tx.get("maxFeePerGas") or tx["gasPrice"]),
                to_int(tx.get("maxPriorityFeePerGas") or tx["gasPrice"]),
                bytes.fromhex(call["input"][2:]),
                hashes=[t["hash"] for t in found],
                cancelled=tx["hash"] in cancels,
                cancels=cancels,
            )
            self._in_flight[flight.row] = flight
            adopted += 1
        log.info("recovered in-flight transactions", extra={"adopted": adopted, "rows": len(rows)})
        return adopted

    def final(self, block: int) -> None:
        """Blocks up to ``block`` can no longer be reorganised (the indexer confirmed them):
        their settled transactions need no re-check after a reorg."""
        self._settled = [s for s in self._settled if s[2] > block]

    async def reorged(self, head: BlockRef) -> int:
        """After a reorg, a transaction settled in a block the chain dropped is in flight
        again, its ledger row ``sent`` until it settles anew. Nodes put the transactions
        of dropped blocks back in their mempool, but not all do (anvil forgets them, and
        with them the pool's transactions that came after): every transaction of ours in
        flight that the node no longer knows is sent again exactly as signed before (same
        nonce, same hash). Its nonce is free, and left unused it would hold back every
        later transaction, or be taken by a new one while we still wait for the old.
        The nonce counter restarts from the node's. Returns how many are in flight again."""
        if self.signer is None or self._nonces is None:
            return 0
        back: list[tuple[InFlight, str, int, int]] = []
        if self._settled:
            answers = await self.rpc.batch(
                [("eth_getTransactionReceipt", [s[0].tx_hash]) for s in self._settled]
            )
            kept = []
            for entry, receipt in zip(self._settled, answers, strict=True):
                if isinstance(receipt, RpcError) or (
                    receipt is not None and receipt["blockHash"] == entry[1]
                ):
                    kept.append(entry)  # still canonical (or unknown for now: kept to re-check)
                else:
                    back.append(entry)
            self._settled = kept
        for flight, _, block, net in back:
            self.losses.record(head.timestamp, -net)  # it is not settled any more
            flight.sent_block = head.number
            self._in_flight[flight.row] = flight
            self.ledger.update(
                flight.row,
                Outcome.SENT,
                tx_hash=flight.tx_hash,
                settled_block=0,
                gas_used=0,
                gas_price_wei=0,
                realized_profit=0,
                realized_gas_cost_base=0,
                realized_net_base=0,
                reason=f"its block {block} was reorganised away",
            )
        flights = list(self._in_flight.values())
        known = await self.rpc.batch(
            [("eth_getTransactionByHash", [flight.tx_hash]) for flight in flights]
        )
        forgotten = [f for f, tx in zip(flights, known, strict=True) if tx is None]
        if forgotten:
            await self._send_again(forgotten, head, "reorg")
        self._nonces.reset()
        if back:
            log.warning("reorg: transactions in flight again", extra={"back": len(back)})
        return len(back)

    async def _send_again(self, flights: Sequence[InFlight], head: BlockRef, why: str) -> None:
        """Send ``flights`` again exactly as signed before (same nonce, same fees, so the
        same hash): their nonces are free, and left unused they would hold back every
        later transaction of ours. An answer that is an error (e.g. the node put one back
        itself meanwhile) is left to the receipt checks and replacements of later heads."""
        flights = sorted(flights, key=lambda f: f.nonce)
        raws = [self._sign(flight) for flight in flights]  # the same hashes again
        await self._send_raw(raws, head.number)
        log.warning(
            "sent again",
            extra={"why": why, "nonces": [f.nonce for f in flights], "head": head.number},
        )

    async def _settle(
        self, flight: InFlight, receipt: dict[str, Any], head: BlockRef, gas: GasContext
    ) -> Attempt:
        del self._in_flight[flight.row]
        gas_used = to_int(receipt["gasUsed"])
        price = to_int(receipt.get("effectiveGasPrice") or hex(flight.max_fee))
        gas_base = _base(gas_used * price, gas)
        block = to_int(receipt["blockNumber"])
        common: dict[str, int | str] = {
            "tx_hash": flight.tx_hash,
            "settled_block": block,
            "gas_used": gas_used,
            "gas_price_wei": price,
            "realized_gas_cost_base": gas_base,
        }
        if flight.tx_hash in flight.cancels:
            # Its nonce went to the transfer: the plan was never executed. Its user is not
            # cooled down: the next head plans it afresh, at that head's fees.
            self.losses.record(head.timestamp, -gas_base)
            self._settled.append((flight, receipt["blockHash"], block, -gas_base))
            why = "cancelled: it no longer paid a fee bump"
            self.ledger.update(
                flight.row, Outcome.CANCELLED, realized_net_base=-gas_base, reason=why, **common
            )
            log.info("cancellation mined", extra={"user": flight.user, "tx": flight.tx_hash})
            return Attempt(Outcome.CANCELLED, flight.row, flight.tx_hash, why)
        if to_int(receipt["status"]) == 1:
            profit = _realized_profit(receipt, self.settings.liquidator)
            net = flight.value(profit) - gas_base
            self.losses.record(head.timestamp, net)
            self._settled.append((flight, receipt["blockHash"], block, net))
            self.ledger.update(
                flight.row, Outcome.WON, realized_profit=profit, realized_net_base=net, **common
            )
            log.info("won", extra={"user": flight.user, "tx": flight.tx_hash, "profit": profit})
            return Attempt(Outcome.WON, flight.row, flight.tx_hash)
        # Replayed on the parent state: if it would have succeeded there, a transaction
        # earlier in the same block (a competitor) took the position.
        reason = await self._replay(flight, block - 1)
        outcome = (
            Outcome.RACED
            if reason is None or any(r in reason for r in RACE_REASONS)
            else (Outcome.REVERTED)
        )
        self.losses.record(head.timestamp, -gas_base)
        self._settled.append((flight, receipt["blockHash"], block, -gas_base))
        self.ledger.update(
            flight.row,
            outcome,
            realized_net_base=-gas_base,
            reason=reason or "a transaction earlier in the block took the position",
            **common,
        )
        self._cool(flight.user, head.number)
        log.info(
            "lost", extra={"user": flight.user, "tx": flight.tx_hash, "outcome": outcome.value}
        )
        return Attempt(outcome, flight.row, flight.tx_hash, reason or "")

    async def _replay(self, flight: InFlight, block: int) -> str | None:
        assert self.signer is not None  # only sent transactions are replayed
        tx = {
            "from": self.signer.address,
            "to": self.settings.liquidator,
            "data": "0x" + flight.data.hex(),
            "gas": hex(flight.gas_limit),  # out of gas is ours, not a race
        }
        try:
            await self.rpc.call("eth_call", [tx, hex(block)])
        except ExecutionReverted as e:
            return decode_revert(e.revert_data or "0x")
        except RpcError as e:
            return f"replay failed: {e}"
        return None

    async def _replace(self, flight: InFlight, gas: GasContext, head: BlockRef) -> Attempt | None:
        """Re-sign ``flight`` with both fees bumped 12.5%; an Attempt when it turns out to
        be lost for good instead (see ``_superseded``).

        One whose worst-case gas cost would then reach its expected profit no longer pays
        for its place: it is cancelled instead (the same nonce, bumped fees, a transfer to
        ourselves). Left as it was it would stay under the rising base fee and hold back
        every later transaction of ours; its user is planned afresh once the cancellation
        is mined, at the fees of that head. A cancellation not mined is bumped in turn.
        """
        priority = _bumped(flight.priority_fee)
        max_fee = max(_bumped(flight.max_fee), 2 * gas.base_fee_wei + priority)
        if max_fee > self.settings.max_fee_wei:
            if not flight.stuck:  # once: it is asked again every head it stays stuck
                flight.stuck = True
                log.warning(
                    "stuck, not bumped",
                    extra={"user": flight.user, "tx": flight.tx_hash, "max_fee": max_fee},
                )
            return None
        cancel = flight.cancelled or _base(flight.gas_limit * max_fee, gas) >= flight.profit_base
        old = (flight.tx_hash, flight.max_fee, flight.priority_fee, flight.cancelled)
        flight.max_fee, flight.priority_fee, flight.cancelled = max_fee, priority, cancel
        raw = self._sign(flight)
        try:
            if self.relay is None:
                await self.rpc.call("eth_sendRawTransaction", ["0x" + raw.hex()])
            else:
                (answer,) = await self.relay.send([raw], head.number)
                if isinstance(answer, RpcError) and not self._maybe_sent(answer):
                    raise answer
        except RpcError as e:
            for hashes in (flight.hashes, flight.cancels):
                if flight.tx_hash in hashes:
                    hashes.remove(flight.tx_hash)
            flight.tx_hash, flight.max_fee, flight.priority_fee, flight.cancelled = old
            log.warning("replacement rejected", extra={"user": flight.user, "err": str(e)})
            if "nonce too low" in str(e).lower():
                return await self._superseded(flight, head)
            return None
        flight.replaced += 1
        what = "cancels" if cancel else "replaces"
        # Both hashes stay in the ledger until one is mined (``recover`` needs them).
        self.ledger.update(
            flight.row, Outcome.SENT, tx_hash=flight.tx_hash, reason=f"{what} {old[0]}"
        )
        log.info(
            "cancelled" if cancel else "replaced",
            extra={"user": flight.user, "old": old[0], "tx": flight.tx_hash},
        )
        return None

    async def _superseded(self, flight: InFlight, head: BlockRef) -> Attempt | None:
        """The node says ``flight``'s nonce is used. Mined meanwhile: None, the next receipt
        check settles it. Otherwise another transaction took the nonce (one of ours sent
        while the node had forgotten this one, or another process with the same key): it
        can never be mined, so its row is given up, or the bot would bump it forever."""
        hashes = flight.hashes + (flight.displaces.hashes if flight.displaces else [])
        receipts = await self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        if any(r is not None for r in receipts):
            return None  # mined, or unknown for now: the next heads look again
        self._give_up(flight, head)
        reason = f"dropped: nonce {flight.nonce} was used by another transaction"
        self.ledger.update(
            flight.row,
            Outcome.REVERTED,
            tx_hash="",
            reason=f"{reason} ({' '.join(flight.hashes)})",
        )
        log.warning("superseded", extra={"user": flight.user, "nonce": flight.nonce})
        return Attempt(Outcome.REVERTED, flight.row, "", reason)


def admitted(gas: Iterable[tuple[int, int]], room: int) -> int:
    """How many of the leading transactions, each given as (gas limit, gas it uses), a
    block builder (geth, anvil) admits within ``room`` gas: it admits one while the gas
    used so far plus the transaction's gas *limit* fits, then takes only the gas used."""
    used = n = 0
    for limit, uses in gas:
        if used + limit > room:
            break
        used += uses
        n += 1
    return n


def _bumped(fee: int) -> int:
    """The least fee a replacement of a transaction paying ``fee`` may offer."""
    return -(-fee * REPLACEMENT_BUMP_BPS // 10_000)


def _base(wei: int, gas: GasContext) -> int:
    return wei * gas.native_price_base // WEI_PER_NATIVE


def _value(profit: int, profit_base: int, tokens: int) -> int:
    """Base-currency value of ``tokens`` of a plan's profit asset, at the plan's price
    (its ``profit`` tokens are worth ``profit_base``; for a keep plan, the collateral
    seized, worth the bonus above the debt it repays, which grows with it)."""
    return tokens * profit_base // profit if profit > 0 else 0


def _break_even_tokens(plan: LiquidationPlan, need_base: int) -> int:
    """The contract's minProfit (a keep plan's minSeized): profit-asset tokens worth
    ``need_base`` (the gas plus the minimum profit).

    Anything less and the transaction would lose money once included (e.g. when an
    earlier transaction moved the pool): the contract reverts instead.
    """
    if plan.profit_base <= 0:
        return plan.profit
    tokens = -(-need_base * plan.profit // plan.profit_base)
    return max(1, min(tokens, plan.profit))


def _realized_profit(receipt: dict[str, Any], liquidator: str | None) -> int:
    """What the liquidator's event says the owner got: ``Liquidated``'s profit, or
    ``Kept``'s collateral seized (a ``keep`` plan's profit)."""
    if not liquidator:
        return 0
    for entry in receipt.get("logs", []):
        if entry["address"].lower() != liquidator.lower() or not entry["topics"]:
            continue
        for event, amount in _PROFIT_EVENTS:
            if entry["topics"][0].lower() == event.topic0_hex:
                decoded = event.decode(
                    [bytes.fromhex(t[2:]) for t in entry["topics"]],
                    bytes.fromhex(entry["data"][2:]),
                )
                return int(decoded[amount])
    return 0
