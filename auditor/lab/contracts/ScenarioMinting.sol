// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @notice An issued token that only its minter may mint, in the shape of Elixir's deUSD: the minter is a separate
/// minting contract (CustodyMinter) or an operator's wallet that mints against transfers it saw elsewhere.
/// For the lab's scenario generator only.
contract MinterRoleToken is ERC20 {
    address public immutable admin;
    address public minter;
    uint8 private immutable _decimals;

    error NotMinter();
    error NotAdmin();

    constructor(string memory name_, string memory symbol_, uint8 decimals_, address minter_) ERC20(name_, symbol_) {
        admin = msg.sender;
        minter = minter_;
        _decimals = decimals_;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    function setMinter(address minter_) external {
        if (msg.sender != admin) revert NotAdmin();
        minter = minter_;
    }

    function mint(address to, uint256 amount) external {
        if (msg.sender != minter) revert NotMinter();
        _mint(to, amount);
    }
}

/// @notice A separate minting contract (as Elixir's DeUSDMinting): `mint(assets)` pulls the asset from the caller
/// straight into a custodian address and mints the token to the caller 1:1 (scaled by decimals), in one transaction.
/// The token contract itself never sees the payment.
contract CustodyMinter {
    using SafeERC20 for IERC20;

    IERC20 public immutable asset;
    MinterRoleToken public immutable token;
    address public immutable custodian;
    uint256 public immutable scaleUp; // 10 ** (token decimals - asset decimals)

    event Minted(address indexed account, uint256 assets, uint256 minted);

    constructor(IERC20 asset_, MinterRoleToken token_, address custodian_, uint256 scaleUp_) {
        asset = asset_;
        token = token_;
        custodian = custodian_;
        scaleUp = scaleUp_;
    }

    function mint(uint256 assets) external returns (uint256 minted) {
        asset.safeTransferFrom(msg.sender, custodian, assets);
        minted = assets * scaleUp;
        token.mint(msg.sender, minted);
        emit Minted(msg.sender, assets, minted);
    }
}
