// SPDX-License-Identifier: MIT
pragma solidity =0.7.6;
pragma abicoder v2;

import "@uniswap/v3-core/contracts/interfaces/IERC20Minimal.sol";
import "@uniswap/v3-core/contracts/interfaces/IUniswapV3Pool.sol";
import "@uniswap/v3-core/contracts/interfaces/callback/IUniswapV3MintCallback.sol";
import "@uniswap/v3-core/contracts/interfaces/callback/IUniswapV3SwapCallback.sol";

/// @title The lab's caller of Uniswap v3 pools: adds liquidity and swaps, paying the pool in its callbacks.
/// @notice A v3 pool only takes tokens inside the callback it makes to msg.sender (IUniswapV3MintCallback,
/// IUniswapV3SwapCallback), so an externally owned account cannot mint or swap directly. This contract pays
/// from the account that called it (which approved this contract), or from its own balance when that
/// account is this contract. It trusts only the pool it is currently calling: a callback from any other
/// address, or outside a call, reverts.
contract UniV3Helper is IUniswapV3MintCallback, IUniswapV3SwapCallback {
    address private active; // the pool being called; zero between calls

    event Swapped(address indexed pool, int256 amount0, int256 amount1);

    /// @notice Adds `liquidity` to [tickLower, tickUpper) for `owner`, paid by msg.sender.
    function mint(address pool, address owner, int24 tickLower, int24 tickUpper, uint128 liquidity)
        external
        returns (uint256 amount0, uint256 amount1)
    {
        active = pool;
        (amount0, amount1) = IUniswapV3Pool(pool).mint(owner, tickLower, tickUpper, liquidity, abi.encode(msg.sender));
        active = address(0);
    }

    /// @notice Swaps on `pool`, paid by msg.sender, output to `recipient`. A positive `amountSpecified` is an exact
    /// input, a negative one an exact output (the pool's own convention). Returns the pool's signed deltas.
    function swap(
        address pool,
        address recipient,
        bool zeroForOne,
        int256 amountSpecified,
        uint160 sqrtPriceLimitX96
    ) external returns (int256 amount0, int256 amount1) {
        active = pool;
        (amount0, amount1) =
            IUniswapV3Pool(pool).swap(recipient, zeroForOne, amountSpecified, sqrtPriceLimitX96, abi.encode(msg.sender));
        active = address(0);
        emit Swapped(pool, amount0, amount1);
    }

    function uniswapV3MintCallback(uint256 amount0Owed, uint256 amount1Owed, bytes calldata data) external override {
        _pay(amount0Owed, amount1Owed, data);
    }

    function uniswapV3SwapCallback(int256 amount0Delta, int256 amount1Delta, bytes calldata data) external override {
        // The pool's convention: a positive delta is what it must receive.
        _pay(amount0Delta > 0 ? uint256(amount0Delta) : 0, amount1Delta > 0 ? uint256(amount1Delta) : 0, data);
    }

    function _pay(uint256 amount0, uint256 amount1, bytes calldata data) private {
        require(msg.sender == active && active != address(0), "UniV3Helper: unexpected caller");
        address payer = abi.decode(data, (address));
        if (amount0 > 0) _transfer(IUniswapV3Pool(msg.sender).token0(), payer, amount0);
        if (amount1 > 0) _transfer(IUniswapV3Pool(msg.sender).token1(), payer, amount1);
    }

    function _transfer(address token, address payer, uint256 amount) private {
        bool ok = payer == address(this)
            ? IERC20Minimal(token).transfer(msg.sender, amount)
            : IERC20Minimal(token).transferFrom(payer, msg.sender, amount);
        require(ok, "UniV3Helper: transfer failed");
    }
}
