// SPDX-License-Identifier: MIT
pragma solidity 0.8.19;

interface IPool {
    function flashLoanSimple(
        address receiverAddress,
        address asset,
        uint256 amount,
        bytes calldata params,
        uint16 referralCode
    ) external;

    function liquidationCall(
        address collateralAsset,
        address debtAsset,
        address user,
        uint256 debtToCover,
        bool receiveAToken
    ) external;
}

interface IERC20 {
    function balanceOf(address account) external view returns (uint256);

    function allowance(address owner, address spender) external view returns (uint256);
}

interface IUniswapV2Pair {
    function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast);

    function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes calldata data) external;
}

interface IUniswapV2Factory {
    function getPair(address tokenA, address tokenB) external view returns (address pair);
}

/// @dev Morpho Blue's `MarketParams` and the one function called (`IMorpho.sol`, declared
///      here rather than imported: the package is BUSL-1.1).
struct MarketParams {
    address loanToken;
    address collateralToken;
    address oracle;
    address irm;
    uint256 lltv;
}

interface IMorpho {
    function liquidate(
        MarketParams memory marketParams,
        address borrower,
        uint256 seizedAssets,
        uint256 repaidShares,
        bytes memory data
    ) external returns (uint256, uint256);
}

/// @title Liquidator
/// @notice Liquidates Aave V3 positions in one debt asset, sells the seized collateral on
///         Uniswap V2 pairs and sends the profit to its owner, with the debt either
///         flash-borrowed from the pool or supplied by the owner; or, with the owner's debt
///         tokens, hands the owner the seized collateral unsold. Also liquidates Morpho Blue
///         positions, where `liquidate`'s callback hands over the collateral before the debt
///         is pulled, so no loan is needed. Holds nothing between calls.
contract Liquidator {
    struct Step {
        address collateralAsset;
        address user;
        uint256 debtToCover;
    }

    event Liquidated(address indexed debtAsset, uint256 repaid, uint256 profit);
    event Kept(address indexed debtAsset, address indexed collateralAsset, uint256 repaid, uint256 seized);

    error NotOwner();
    error NotPool();
    error NotMorpho();
    error BadInitiator();
    error InsufficientProfit(uint256 profit, uint256 minProfit);
    error NoPair(address tokenA, address tokenB);
    error TokenCallFailed(address token);
    error NotOneCollateral();

    address public immutable owner;
    IPool public immutable pool;
    IUniswapV2Factory public immutable uniswapFactory;

    /// @dev The Morpho of the ongoing `liquidateMorpho` (zero between calls): the only
    ///      caller `onMorphoLiquidate` accepts.
    address private _morpho;

    constructor(address pool_, address uniswapFactory_) {
        owner = msg.sender;
        pool = IPool(pool_);
        uniswapFactory = IUniswapV2Factory(uniswapFactory_);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    /// @notice Flash-borrows `flashAmount` of `debtAsset`, runs `steps`, repays the loan and
    ///         its premium, and sends what is left to the owner.
    function liquidate(address debtAsset, uint256 flashAmount, Step[] calldata steps, uint256 minProfit)
        external
        onlyOwner
        returns (uint256 profit)
    {
        // A balance held before the call (a stray transfer) is not profit: sweep() returns it.
        uint256 baseline = _balance(debtAsset);
        pool.flashLoanSimple(address(this), debtAsset, flashAmount, abi.encode(steps, baseline, minProfit), 0);
        profit = _balance(debtAsset) - baseline;
        // The callback already enforced this; checked again after the pool pulled its due.
        if (profit < minProfit) revert InsufficientProfit(profit, minProfit);
        if (profit != 0) _transfer(debtAsset, owner, profit);
    }

    /// @notice Like `liquidate`, with `amount` of `debtAsset` taken from the owner (who must
    ///         have approved this contract) instead of flash-borrowed; returns it with the profit.
    function liquidateFunded(address debtAsset, uint256 amount, Step[] calldata steps, uint256 minProfit)
        external
        onlyOwner
        returns (uint256 profit)
    {
        uint256 baseline = _balance(debtAsset);
        _call(debtAsset, abi.encodeWithSelector(0x23b872dd, owner, address(this), amount)); // transferFrom
        profit = _execute(debtAsset, steps, baseline, amount, 0, minProfit, false);
        _transfer(debtAsset, owner, amount + profit);
    }

    /// @notice Repays with up to `amount` of the owner's `debtAsset` (approved to this
    ///         contract) and sends the owner the collateral seized, unsold, with the debt
    ///         not spent. Every step seizes `steps[0].collateralAsset`, which is not the debt
    ///         asset. Reverts unless at least `minSeized` is seized: the collateral is worth
    ///         the debt repaid plus the bonus at the pool's own prices, so the seizure alone
    ///         tells whether the call pays its gas.
    function liquidateKeeping(address debtAsset, uint256 amount, Step[] calldata steps, uint256 minSeized)
        external
        onlyOwner
        returns (uint256 seized)
    {
        address collateral = steps.length == 0 ? debtAsset : steps[0].collateralAsset;
        for (uint256 i = 1; i < steps.length; ++i) {
            if (steps[i].collateralAsset != collateral) revert NotOneCollateral();
        }
        if (collateral == debtAsset) revert NotOneCollateral();
        uint256 held = _balance(collateral);
        _call(debtAsset, abi.encodeWithSelector(0x23b872dd, owner, address(this), amount)); // transferFrom
        uint256 repaid = _liquidateAll(debtAsset, steps, amount, 0);
        seized = _balance(collateral) - held;
        if (seized < minSeized) revert InsufficientProfit(seized, minSeized);
        _transfer(collateral, owner, seized);
        if (repaid != amount) _transfer(debtAsset, owner, amount - repaid);
        emit Kept(debtAsset, collateral, repaid, seized);
    }

    /// @notice Aave's flash-loan callback; only a loan this contract itself asked for runs.
    function executeOperation(
        address asset,
        uint256 amount,
        uint256 premium,
        address initiator,
        bytes calldata params
    ) external returns (bool) {
        if (msg.sender != address(pool)) revert NotPool();
        if (initiator != address(this)) revert BadInitiator();
        (Step[] memory steps, uint256 baseline, uint256 minProfit) = abi.decode(params, (Step[], uint256, uint256));
        _execute(asset, steps, baseline, amount, premium, minProfit, true);
        return true;
    }

    /// @notice Liquidates `borrower` on the Morpho Blue market `params` (`seizedAssets` or
    ///         `repaidShares`, exactly one non-zero, as Morpho takes them), sells the seized
    ///         collateral on its Uniswap V2 pair with the loan token, and sends the loan
    ///         token left after Morpho's pull to the owner.
    function liquidateMorpho(
        address morpho,
        MarketParams calldata params,
        address borrower,
        uint256 seizedAssets,
        uint256 repaidShares,
        uint256 minProfit
    ) external onlyOwner returns (uint256 profit) {
        address loan = params.loanToken;
        uint256 baseline = _balance(loan);
        // The collateral held before the call is not sold: only what Morpho sends. (With
        // equal tokens, a degenerate market, nothing is sold and the seizure is profit.)
        address collateral = params.collateralToken;
        bytes memory data = abi.encode(collateral, loan, _balance(collateral), baseline, minProfit);
        _morpho = morpho;
        (, uint256 repaid) =
            IMorpho(morpho).liquidate(params, borrower, seizedAssets, repaidShares, data);
        _morpho = address(0);
        profit = _balance(loan) - baseline;
        // The callback already enforced this; checked again after Morpho pulled its due.
        if (profit < minProfit) revert InsufficientProfit(profit, minProfit);
        if (profit != 0) _transfer(loan, owner, profit);
        emit Liquidated(loan, repaid, profit);
    }

    /// @notice Morpho's liquidation callback, run with the seized collateral already here
    ///         and before Morpho pulls `repaidAssets`: sells it and approves exactly that.
    function onMorphoLiquidate(uint256 repaidAssets, bytes calldata data) external {
        address morpho = _morpho; // zero outside a call, and no caller is address(0)
        if (msg.sender != morpho) revert NotMorpho();
        (address collateral, address loan, uint256 held, uint256 baseline, uint256 minProfit) =
            abi.decode(data, (address, address, uint256, uint256, uint256));
        if (collateral != loan) {
            uint256 amountIn = _balance(collateral) - held;
            if (amountIn != 0) _sell(collateral, loan, amountIn);
        }
        uint256 cost = baseline + repaidAssets;
        uint256 balance = _balance(loan);
        uint256 profit = balance > cost ? balance - cost : 0;
        // Here, before Morpho's pull, so a loss reverts with this error rather than with
        // the token's transfer failure.
        if (balance < cost || profit < minProfit) revert InsufficientProfit(profit, minProfit);
        _approve(loan, morpho, repaidAssets);
    }

    /// @notice Sends this contract's whole balance of `token` (ETH when `token` is 0) to `to`.
    function sweep(address token, address to) external onlyOwner {
        if (token == address(0)) {
            (bool ok, ) = to.call{value: address(this).balance}("");
            if (!ok) revert TokenCallFailed(address(0));
        } else {
            _transfer(token, to, _balance(token));
        }
    }

    /// @dev Runs the liquidations and swaps with `baseline + amount` of `debtAsset` at hand,
    ///      and checks that `baseline + amount + premium + minProfit` is left afterwards.
    function _execute(
        address debtAsset,
        Step[] memory steps,
        uint256 baseline,
        uint256 amount,
        uint256 premium,
        uint256 minProfit,
        bool flash
    ) private returns (uint256 profit) {
        (address[] memory collaterals, uint256[] memory held) = _distinctCollaterals(debtAsset, steps);
        uint256 available = baseline + amount;
        uint256 repaid = _liquidateAll(debtAsset, steps, available, flash ? amount + premium : 0);
        for (uint256 j = 0; j < collaterals.length; ++j) {
            uint256 amountIn = _balance(collaterals[j]) - held[j];
            if (amountIn != 0) _sell(collaterals[j], debtAsset, amountIn);
        }

        uint256 cost = available + premium;
        uint256 balance = _balance(debtAsset);
        profit = balance > cost ? balance - cost : 0;
        // Checked here, before the lender's pull, so a loss reverts with this error rather
        // than with the token's transfer failure.
        if (balance < cost || profit < minProfit) revert InsufficientProfit(profit, minProfit);
        emit Liquidated(debtAsset, repaid, profit);
    }

    /// @dev Runs every step with `available` of `debtAsset` at hand and returns the debt
    ///      repaid; leaves the pool's allowance at `due`, what the loan repayment pulls.
    function _liquidateAll(address debtAsset, Step[] memory steps, uint256 available, uint256 due)
        private
        returns (uint256 repaid)
    {
        // One allowance for all steps: the pool pulls no more than each step needs, and the
        // unspent rest tells how much debt was really repaid (a step can be capped).
        _approve(debtAsset, address(pool), available);
        for (uint256 i = 0; i < steps.length; ++i) {
            pool.liquidationCall(steps[i].collateralAsset, debtAsset, steps[i].user, steps[i].debtToCover, false);
        }
        uint256 unspent = IERC20(debtAsset).allowance(address(this), address(pool));
        repaid = available - unspent;
        if (unspent != due) _approve(debtAsset, address(pool), due);
    }

    /// @dev Distinct collateral assets other than the debt asset, in order of first
    ///      appearance, with this contract's balance of each before the liquidations.
    function _distinctCollaterals(address debtAsset, Step[] memory steps)
        private
        view
        returns (address[] memory assets, uint256[] memory balances)
    {
        assets = new address[](steps.length);
        balances = new uint256[](steps.length);
        uint256 count = 0;
        for (uint256 i = 0; i < steps.length; ++i) {
            address c = steps[i].collateralAsset;
            if (c == debtAsset) continue;
            bool seen = false;
            for (uint256 k = 0; k < count; ++k) {
                if (assets[k] == c) {
                    seen = true;
                    break;
                }
            }
            if (seen) continue;
            assets[count] = c;
            balances[count] = _balance(c);
            ++count;
        }
        // Shrink to `count` in place; the arrays are fresh memory nobody else references.
        assembly {
            mstore(assets, count)
            mstore(balances, count)
        }
    }

    /// @dev Sells `amountIn` of `tokenIn` for `tokenOut` on their pair, at the pair's exact
    ///      UniswapV2Library.getAmountOut price.
    function _sell(address tokenIn, address tokenOut, uint256 amountIn) private {
        address pair = uniswapFactory.getPair(tokenIn, tokenOut);
        if (pair == address(0)) revert NoPair(tokenIn, tokenOut);
        (uint256 reserve0, uint256 reserve1, ) = IUniswapV2Pair(pair).getReserves();
        // Pairs order their tokens by address, so no token0() call is needed.
        bool inIs0 = tokenIn < tokenOut;
        (uint256 reserveIn, uint256 reserveOut) = inIs0 ? (reserve0, reserve1) : (reserve1, reserve0);
        uint256 amountInWithFee = amountIn * 997;
        uint256 amountOut = (amountInWithFee * reserveOut) / (reserveIn * 1000 + amountInWithFee);
        _transfer(tokenIn, pair, amountIn);
        (uint256 out0, uint256 out1) = inIs0 ? (uint256(0), amountOut) : (amountOut, uint256(0));
        IUniswapV2Pair(pair).swap(out0, out1, address(this), "");
    }

    function _balance(address token) private view returns (uint256) {
        return IERC20(token).balanceOf(address(this));
    }

    function _transfer(address token, address to, uint256 value) private {
        _call(token, abi.encodeWithSelector(0xa9059cbb, to, value)); // transfer
    }

    function _approve(address token, address spender, uint256 value) private {
        _call(token, abi.encodeWithSelector(0x095ea7b3, spender, value)); // approve
    }

    /// @dev A token call that accepts tokens returning nothing, rejects ones returning
    ///      false, and passes on the token's own revert reason.
    function _call(address token, bytes memory data) private {
        if (token.code.length == 0) revert TokenCallFailed(token);
        (bool ok, bytes memory ret) = token.call(data);
        if (!ok) {
            if (ret.length == 0) revert TokenCallFailed(token);
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        if (ret.length != 0 && !abi.decode(ret, (bool))) revert TokenCallFailed(token);
    }
}
