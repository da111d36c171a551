// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @notice A yield-token issuer in the shape of StreamVault or Elixir's minting contract: anyone deposits the
/// asset and receives the token 1:1 (scaled by decimals); the operator may mint against deposits it reports
/// itself and move the vault's assets wherever it likes. That discretion is what the auditor has to see through.
contract IssuerVault is ERC20 {
    using SafeERC20 for IERC20;

    IERC20 public immutable asset;
    address public operator;
    uint8 private immutable _decimals;
    uint256 private immutable _scaleUp; // 10 ** (token decimals - asset decimals)

    event Deposit(address indexed sender, address indexed receiver, uint256 assets, uint256 minted);
    event OperatorMint(address indexed receiver, uint256 amount);
    event FundsMoved(address indexed to, uint256 assets);

    error NotOperator();

    constructor(IERC20 asset_, string memory name_, string memory symbol_, uint8 decimals_, uint8 assetDecimals_)
        ERC20(name_, symbol_)
    {
        asset = asset_;
        operator = msg.sender;
        _decimals = decimals_;
        _scaleUp = 10 ** (decimals_ - assetDecimals_);
    }

    modifier onlyOperator() {
        if (msg.sender != operator) revert NotOperator();
        _;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    /// @notice Pay `assets` of the asset, receive the token 1:1.
    function deposit(uint256 assets, address receiver) external returns (uint256 minted) {
        asset.safeTransferFrom(msg.sender, address(this), assets);
        minted = assets * _scaleUp;
        _mint(receiver, minted);
        emit Deposit(msg.sender, receiver, assets, minted);
    }

    /// @notice Mint without a deposit, against assets the operator says it holds elsewhere.
    function operatorMint(address receiver, uint256 amount) external onlyOperator {
        _mint(receiver, amount);
        emit OperatorMint(receiver, amount);
    }

    /// @notice Move the vault's assets (to a strategy, a fund manager, a bridge...).
    function moveFunds(address to, uint256 assets) external onlyOperator {
        asset.safeTransfer(to, assets);
        emit FundsMoved(to, assets);
    }

    function setOperator(address operator_) external onlyOperator {
        operator = operator_;
    }
}
