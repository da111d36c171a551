// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC4626} from "@openzeppelin/contracts/interfaces/IERC4626.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {IStandardizedYield} from "@pendle/core-v2/contracts/interfaces/IStandardizedYield.sol";

/// @title LabPendleSY
/// @notice A minimal Pendle Standardized Yield token over an ERC-4626 vault, for the local lab only. The npm package
/// Pendle core-v2 ships no SY implementation with bytecode, so this one follows its interface (IStandardizedYield)
/// the way Pendle's own ERC-4626 SYs do: one SY is one vault share, the accounting asset is the vault's asset and
/// exchangeRate() is the assets one share converts to (1e18-scaled). No rewards.
contract LabPendleSY is ERC20, IStandardizedYield {
    using SafeERC20 for IERC20;

    address public immutable yieldToken;
    address internal immutable asset;
    uint8 private immutable _decimals;

    constructor(string memory name_, string memory symbol_, address vault) ERC20(name_, symbol_) {
        yieldToken = vault;
        asset = IERC4626(vault).asset();
        _decimals = IERC4626(vault).decimals();
        IERC20(asset).forceApprove(vault, type(uint256).max);
    }

    function decimals() public view override(ERC20, IERC20Metadata) returns (uint8) {
        return _decimals;
    }

    function deposit(address receiver, address tokenIn, uint256 amountTokenToDeposit, uint256 minSharesOut)
        external
        payable
        returns (uint256 amountSharesOut)
    {
        require(msg.value == 0, "SY: no native token");
        require(amountTokenToDeposit > 0, "SY: zero deposit");
        IERC20(tokenIn).safeTransferFrom(msg.sender, address(this), amountTokenToDeposit);
        if (tokenIn == asset) {
            amountSharesOut = IERC4626(yieldToken).deposit(amountTokenToDeposit, address(this));
        } else {
            require(tokenIn == yieldToken, "SY: invalid token in");
            amountSharesOut = amountTokenToDeposit;
        }
        require(amountSharesOut >= minSharesOut, "SY: insufficient out");
        _mint(receiver, amountSharesOut);
        emit Deposit(msg.sender, receiver, tokenIn, amountTokenToDeposit, amountSharesOut);
    }

    function redeem(
        address receiver,
        uint256 amountSharesToRedeem,
        address tokenOut,
        uint256 minTokenOut,
        bool burnFromInternalBalance
    ) external returns (uint256 amountTokenOut) {
        // As Pendle's SYBase: shares sent to the SY first are redeemed from its own balance.
        _burn(burnFromInternalBalance ? address(this) : msg.sender, amountSharesToRedeem);
        if (tokenOut == asset) {
            amountTokenOut = IERC4626(yieldToken).redeem(amountSharesToRedeem, receiver, address(this));
        } else {
            require(tokenOut == yieldToken, "SY: invalid token out");
            amountTokenOut = amountSharesToRedeem;
            IERC20(yieldToken).safeTransfer(receiver, amountTokenOut);
        }
        require(amountTokenOut >= minTokenOut, "SY: insufficient out");
        emit Redeem(msg.sender, receiver, tokenOut, amountSharesToRedeem, amountTokenOut);
    }

    function exchangeRate() external view returns (uint256) {
        return IERC4626(yieldToken).convertToAssets(1e18);
    }

    function claimRewards(address) external pure returns (uint256[] memory rewardAmounts) {
        return rewardAmounts;
    }

    function accruedRewards(address) external pure returns (uint256[] memory rewardAmounts) {
        return rewardAmounts;
    }

    function rewardIndexesCurrent() external pure returns (uint256[] memory indexes) {
        return indexes;
    }

    function rewardIndexesStored() external pure returns (uint256[] memory indexes) {
        return indexes;
    }

    function getRewardTokens() external pure returns (address[] memory tokens) {
        return tokens;
    }

    function getTokensIn() external view returns (address[] memory res) {
        res = new address[](2);
        (res[0], res[1]) = (asset, yieldToken);
    }

    function getTokensOut() external view returns (address[] memory res) {
        res = new address[](2);
        (res[0], res[1]) = (asset, yieldToken);
    }

    function isValidTokenIn(address token) external view returns (bool) {
        return token == asset || token == yieldToken;
    }

    function isValidTokenOut(address token) external view returns (bool) {
        return token == asset || token == yieldToken;
    }

    function previewDeposit(address tokenIn, uint256 amountTokenToDeposit) external view returns (uint256) {
        return tokenIn == asset ? IERC4626(yieldToken).previewDeposit(amountTokenToDeposit) : amountTokenToDeposit;
    }

    function previewRedeem(address tokenOut, uint256 amountSharesToRedeem) external view returns (uint256) {
        return tokenOut == asset ? IERC4626(yieldToken).previewRedeem(amountSharesToRedeem) : amountSharesToRedeem;
    }

    function assetInfo() external view returns (AssetType, address, uint8) {
        return (AssetType.TOKEN, asset, IERC20Decimals(asset).decimals());
    }
}

interface IERC20Decimals {
    function decimals() external view returns (uint8);
}
