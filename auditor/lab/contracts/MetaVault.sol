// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

struct MarketParams {
    address loanToken;
    address collateralToken;
    address oracle;
    address irm;
    uint256 lltv;
}

interface IMorphoSupply {
    function supply(MarketParams memory marketParams, uint256 assets, uint256 shares, address onBehalf, bytes memory data)
        external
        returns (uint256 assetsSupplied, uint256 sharesSupplied);
}

/// @notice A curated lending vault in the shape of MetaMorpho, cut to what the exposure map reads: it holds the
/// asset and its owner allocates it to Morpho Blue markets, where the vault itself is the supplier of record.
contract MetaVault {
    using SafeERC20 for IERC20;

    IMorphoSupply public immutable morpho;
    IERC20 public immutable asset;
    address public owner;
    address public curator;
    string public name;
    string public symbol;

    error NotOwner();

    constructor(IMorphoSupply morpho_, IERC20 asset_, string memory name_, string memory symbol_, address curator_) {
        morpho = morpho_;
        asset = asset_;
        name = name_;
        symbol = symbol_;
        curator = curator_;
        owner = msg.sender;
    }

    /// @notice What the vault holds idle (its Morpho supply is what the exposure map reads from Morpho).
    function totalAssets() external view returns (uint256) {
        return asset.balanceOf(address(this));
    }

    /// @notice Lend `assets` of the vault's idle asset in one Morpho market, on the vault's own behalf.
    function allocate(MarketParams calldata marketParams, uint256 assets) external {
        if (msg.sender != owner && msg.sender != curator) revert NotOwner();
        asset.forceApprove(address(morpho), assets);
        morpho.supply(marketParams, assets, 0, address(this), "");
    }
}
