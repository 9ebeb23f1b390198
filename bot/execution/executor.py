"""Send liquidation plans safely: simulate, price the gas, sign, track, settle.

For each plan: ``eth_call`` of the exact transaction (at the pending block by default,
so our own in-flight transactions are accounted for) and ``eth_estimateGas``; a failing
simulation is recorded and never sent. A lost race (the position is no longer
liquidatable: someone got there first) costs one simulation and puts the user on
cooldown; it is never retried in a loop. Fees are EIP-1559 (base fee of the head times
two plus the priority fee, under a cap). Nonces come from a local counter. A transaction
still pending after ``replace_after_blocks`` is replaced once per head with fees bumped
by 12.5% (what nodes require), as long as the worst-case gas cost stays below the
expected profit. Every plan and its outcome goes to the ledger.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.api import BlockRef, LiquidationPlan
from bot.errors import ExecutionReverted, RpcError
from bot.execution.guards import KillSwitch, LossGuard
from bot.execution.keys import Signer
from bot.execution.liquidator import LIQUIDATOR_ABI, decode_revert, encode_liquidate
from bot.ledger import Ledger, Outcome
from bot.rpc import JsonRpcClient, to_int

log = logging.getLogger(__name__)

WEI_PER_NATIVE = 10**18
# A replacement must raise both fee fields by at least 10% (geth) / 12.5% (others).
REPLACEMENT_BUMP_BPS = 11_250
# Reverts that mean "not liquidatable any more": Aave's HEALTH_FACTOR_NOT_BELOW_THRESHOLD,
# COLLATERAL_CANNOT_BE_LIQUIDATED, SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER.
RACE_REASONS = ("'45'", "'46'", "'47'")
_LIQUIDATED = LIQUIDATOR_ABI.event("Liquidated")
_PROFIT = LIQUIDATOR_ABI.fn("liquidate")


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    liquidator: str | None  # the Liquidator contract; None: plans are recorded, not simulated
    owner: str | None = None  # simulate as this address when there is no signer (dry run)
    funded: bool = False
    priority_fee_wei: int = 1_500_000_000
    max_fee_wei: int = 500 * 10**9
    gas_margin_bps: int = 12_500  # gas limit = estimate * margin
    replace_after_blocks: int = 3
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


@dataclass(slots=True)
class _InFlight:
    row: int
    plan: LiquidationPlan
    nonce: int
    tx_hash: str
    sent_block: int
    gas_limit: int
    max_fee: int
    priority_fee: int
    data: bytes
    replaced: int = 0


@dataclass(frozen=True, slots=True)
class Attempt:
    """What ``execute`` did with a plan."""

    outcome: Outcome
    row: int
    tx_hash: str = ""
    reason: str = ""


@dataclass(slots=True)
class _Nonces:
    """The next nonce, counted locally once read from the node."""

    rpc: JsonRpcClient
    address: str
    _next: int | None = field(default=None)

    async def take(self) -> int:
        if self._next is None:
            self._next = to_int(
                await self.rpc.call("eth_getTransactionCount", [self.address, "pending"])
            )
        nonce = self._next
        self._next += 1
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
    ) -> None:
        self.rpc = rpc
        self.ledger = ledger
        self.settings = settings
        self.signer = signer
        self.chain_id = chain_id
        self._nonces = _Nonces(rpc, signer.address) if signer else None
        self._in_flight: dict[str, _InFlight] = {}  # by user (lower-case)
        self._cooldown: dict[str, int] = {}  # user -> first block it may be tried again
        self._overrides = True  # until the node rejects eth_call block overrides
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

    def busy(self, user: str, block: int) -> bool:
        """A transaction for ``user`` is in flight, or it is cooling down after a failure."""
        u = user.lower()
        return u in self._in_flight or self._cooldown.get(u, 0) > block

    def _cool(self, user: str, block: int) -> None:
        self._cooldown[user.lower()] = block + self.settings.cooldown_blocks

    # --- per plan ---

    async def execute(
        self, plan: LiquidationPlan, head: BlockRef, gas: GasContext, ts: int | None = None
    ) -> Attempt:
        """Simulate ``plan`` and, when it pays and a key is configured, send it.

        ``ts``: the timestamp the plan was priced at; the simulation runs at it where the
        node supports block overrides, so its profit is the plan's to the wei.
        """
        if self.busy(plan.user, head.number):
            raise ValueError(f"user {plan.user} already has a transaction in flight")
        s = self.settings
        if s.liquidator is None:
            row = self.ledger.record(plan, head.number, Outcome.DRY_RUN, reason="no liquidator")
            self._cool(plan.user, head.number)
            return Attempt(Outcome.DRY_RUN, row, reason="no liquidator contract configured")
        sender = self.signer.address if self.signer else s.owner
        min_profit = _break_even_tokens(plan, gas, s.min_profit_base)
        data = encode_liquidate(plan, min_profit, funded=s.funded)
        tx: dict[str, Any] = {"to": s.liquidator, "data": "0x" + data.hex()}
        if sender:
            tx["from"] = sender
        try:
            simulated = _PROFIT.decode_one(await self._at(ts, "eth_call", tx))
            estimate = to_int(await self._at(ts, "eth_estimateGas", tx))
        except ExecutionReverted as e:
            return self._refused(plan, head, decode_revert(e.revert_data or "0x"))
        gas_limit = estimate * s.gas_margin_bps // 10_000
        priority = min(s.priority_fee_wei, s.max_fee_wei)
        max_fee = min(2 * gas.base_fee_wei + priority, s.max_fee_wei)
        expected_gas_base = _base(estimate * (gas.base_fee_wei + priority), gas)
        simulated_base = _value(plan, simulated)
        if simulated_base - expected_gas_base < s.min_profit_base:
            return self._refused(
                plan,
                head,
                f"net {simulated_base - expected_gas_base} < min {s.min_profit_base} "
                f"(simulated profit {simulated}, gas {estimate})",
                outcome=Outcome.UNPROFITABLE,
            )
        held = self.held(head.timestamp)
        if self.dry_run or held:
            reason = f"simulated profit {simulated}" + (f"; not sent: {held}" if held else "")
            if held:
                log.warning("sending held", extra={"user": plan.user, "why": held})
            row = self.ledger.record(plan, head.number, Outcome.DRY_RUN, reason=reason)
            self._cool(plan.user, head.number)
            return Attempt(Outcome.DRY_RUN, row, reason=reason)
        row = self.ledger.record(plan, head.number, Outcome.SENT)
        flight = _InFlight(row, plan, -1, "", head.number, gas_limit, max_fee, priority, data)
        try:
            await self._send(flight)
        except RpcError as e:
            assert self._nonces is not None
            self._nonces.reset()  # the node's view wins after a rejection
            self.ledger.update(row, Outcome.REVERTED, reason=f"rejected: {e}")
            self._cool(plan.user, head.number)
            return Attempt(Outcome.REVERTED, row, reason=str(e))
        self._in_flight[plan.user.lower()] = flight
        log.info(
            "sent",
            extra={
                "user": plan.user,
                "tx": flight.tx_hash,
                "nonce": flight.nonce,
                "profit": plan.profit,
                "gas_limit": gas_limit,
            },
        )
        return Attempt(Outcome.SENT, row, flight.tx_hash)

    async def _at(self, ts: int | None, method: str, tx: dict[str, Any]) -> Any:
        """``method`` (eth_call / eth_estimateGas) on the simulation block, with its
        timestamp overridden to ``ts`` where the node supports block overrides."""
        tag = self.settings.simulate_tag
        if ts is not None and self._overrides:
            try:
                return await self.rpc.call(method, [tx, tag, {}, {"time": hex(ts)}])
            except ExecutionReverted:
                raise
            except RpcError as e:
                log.info("no block overrides: simulating at the node's time", extra={"err": str(e)})
                self._overrides = False
        return await self.rpc.call(method, [tx, tag])

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

    async def _send(self, flight: _InFlight) -> None:
        assert self.signer is not None and self._nonces is not None
        if flight.nonce < 0:
            flight.nonce = await self._nonces.take()
        raw = self.signer.sign(
            {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": flight.nonce,
                "to": self.settings.liquidator,
                "data": flight.data,
                "value": 0,
                "gas": flight.gas_limit,
                "maxFeePerGas": flight.max_fee,
                "maxPriorityFeePerGas": flight.priority_fee,
            }
        )
        flight.tx_hash = await self.rpc.call("eth_sendRawTransaction", ["0x" + raw.hex()])

    # --- per head ---

    async def on_head(self, head: BlockRef, gas: GasContext) -> list[Attempt]:
        """Settle mined transactions; replace stuck ones. Returns the settled attempts."""
        if not self._in_flight:
            return []
        flights = list(self._in_flight.values())
        receipts = await self.rpc.batch(
            [("eth_getTransactionReceipt", [f.tx_hash]) for f in flights]
        )
        settled = []
        for flight, receipt in zip(flights, receipts, strict=True):
            if isinstance(receipt, RpcError):
                log.warning(
                    "receipt unavailable", extra={"tx": flight.tx_hash, "err": str(receipt)}
                )
                continue
            if receipt is None:
                if head.number - flight.sent_block >= self.settings.replace_after_blocks:
                    await self._replace(flight, gas)
                continue
            settled.append(await self._settle(flight, receipt, head, gas))
        return settled

    async def _settle(
        self, flight: _InFlight, receipt: dict[str, Any], head: BlockRef, gas: GasContext
    ) -> Attempt:
        plan = flight.plan
        del self._in_flight[plan.user.lower()]
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
        if to_int(receipt["status"]) == 1:
            profit = _realized_profit(receipt, self.settings.liquidator)
            self.losses.record(head.timestamp, _value(plan, profit) - gas_base)
            self.ledger.update(
                flight.row,
                Outcome.WON,
                realized_profit=profit,
                realized_net_base=_value(plan, profit) - gas_base,
                **common,
            )
            log.info("won", extra={"user": plan.user, "tx": flight.tx_hash, "profit": profit})
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
        self.ledger.update(
            flight.row,
            outcome,
            realized_net_base=-gas_base,
            reason=reason or "a transaction earlier in the block took the position",
            **common,
        )
        self._cool(plan.user, head.number)
        log.info("lost", extra={"user": plan.user, "tx": flight.tx_hash, "outcome": outcome.value})
        return Attempt(outcome, flight.row, flight.tx_hash, reason or "")

    async def _replay(self, flight: _InFlight, block: int) -> str | None:
        assert self.signer is not None  # only sent transactions are replayed
        tx = {
            "from": self.signer.address,
            "to": self.settings.liquidator,
            "data": "0x" + flight.data.hex(),
        }
        try:
            await self.rpc.call("eth_call", [tx, hex(block)])
        except ExecutionReverted as e:
            return decode_revert(e.revert_data or "0x")
        except RpcError as e:
            return f"replay failed: {e}"
        return None

    async def _replace(self, flight: _InFlight, gas: GasContext) -> None:
        plan = flight.plan
        priority = -(-flight.priority_fee * REPLACEMENT_BUMP_BPS // 10_000)
        max_fee = max(
            -(-flight.max_fee * REPLACEMENT_BUMP_BPS // 10_000), 2 * gas.base_fee_wei + priority
        )
        worst_case_base = _base(flight.gas_limit * max_fee, gas)
        if max_fee > self.settings.max_fee_wei or worst_case_base >= plan.profit_base:
            log.warning(
                "stuck, not bumped",
                extra={"user": plan.user, "tx": flight.tx_hash, "max_fee": max_fee},
            )
            return
        old = flight.tx_hash
        flight.max_fee, flight.priority_fee = max_fee, priority
        try:
            await self._send(flight)
        except RpcError as e:
            # Usually "nonce too low": the original was mined meanwhile; the next receipt
            # check settles it.
            flight.tx_hash = old
            log.warning("replacement rejected", extra={"user": plan.user, "err": str(e)})
            return
        flight.replaced += 1
        self.ledger.update(flight.row, Outcome.SENT, tx_hash=flight.tx_hash)
        log.info("replaced", extra={"user": plan.user, "old": old, "tx": flight.tx_hash})


def _base(wei: int, gas: GasContext) -> int:
    return wei * gas.native_price_base // WEI_PER_NATIVE


def _value(plan: LiquidationPlan, tokens: int) -> int:
    """Base-currency value of ``tokens`` of the plan's debt asset, at the plan's price."""
    if plan.profit <= 0:
        return 0
    return tokens * plan.profit_base // plan.profit


def _break_even_tokens(plan: LiquidationPlan, gas: GasContext, min_profit_base: int) -> int:
    """The contract's minProfit: debt-asset tokens worth the plan's gas plus the minimum.

    Anything less and the transaction would lose money once included (e.g. when an
    earlier transaction moved the pool): the contract reverts instead.
    """
    if plan.profit_base <= 0:
        return plan.profit
    need_base = plan.gas_cost_base + min_profit_base
    tokens = -(-need_base * plan.profit // plan.profit_base)
    return max(1, min(tokens, plan.profit))


def _realized_profit(receipt: dict[str, Any], liquidator: str | None) -> int:
    topic = _LIQUIDATED.topic0_hex
    for entry in receipt.get("logs", []):
        if (
            liquidator
            and entry["address"].lower() == liquidator.lower()
            and entry["topics"]
            and entry["topics"][0].lower() == topic
        ):
            event = _LIQUIDATED.decode(
                [bytes.fromhex(t[2:]) for t in entry["topics"]], bytes.fromhex(entry["data"][2:])
            )
            return int(event["profit"])
    return 0
