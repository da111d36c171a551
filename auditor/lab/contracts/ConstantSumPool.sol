// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @notice Swaps two tokens at a fixed price set by its owner (price of token0 in token1, 1e18 scale), like a
/// stable pool or an OTC desk would quote; `price()` is what a market-price check reads.
contract ConstantSumPool {
    using SafeERC20 for IERC20;

    IERC20 public immutable token0;
    IERC20 public immutable token1;
    address public immutable owner;
    uint256 public price; // token1 per token0, in whole-token terms, 1e18 = 1.0
    uint256 private immutable _scale0;
    uint256 private immutable _scale1;

    event Swap(address indexed sender, address indexed tokenIn, uint256 amountIn, uint256 amountOut);
    event PriceSet(uint256 price);

    constructor(IERC20 token0_, IERC20 token1_, uint256 price_) {
        token0 = token0_;
        token1 = token1_;
        owner = msg.sender;
        price = price_;
        _scale0 = 10 ** IERC20Metadata(address(token0_)).decimals();
        _scale1 = 10 ** IERC20Metadata(address(token1_)).decimals();
    }

    function setPrice(uint256 price_) external {
        require(msg.sender == owner, "only owner");
        price = price_;
        emit PriceSet(price_);
    }

    function swap(IERC20 tokenIn, uint256 amountIn, address recipient) external returns (uint256 amountOut) {
        bool zeroForOne = address(tokenIn) == address(token0);
        require(zeroForOne || address(tokenIn) == address(token1), "unknown token");
        amountOut = zeroForOne
            ? amountIn * price * _scale1 / (_scale0 * 1e18)
            : amountIn * _scale0 * 1e18 / (_scale1 * price);
        tokenIn.safeTransferFrom(msg.sender, address(this), amountIn);
        (zeroForOne ? token1 : token0).safeTransfer(recipient, amountOut);
        emit Swap(msg.sender, address(tokenIn), amountIn, amountOut);
    }
}
