// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @notice A lender no registry lists: it lends its asset against nothing the audit can read (its books are its
/// own storage, with no standard getter), as a private credit line or a venue without an adapter would.
contract PrivateLender {
    IERC20 public immutable asset;
    mapping(address => uint256) private owed;

    constructor(IERC20 asset_) {
        asset = asset_;
    }

    function borrow(uint256 amount) external {
        owed[msg.sender] += amount;
        require(asset.transfer(msg.sender, amount), "transfer failed");
    }

    function repay(uint256 amount) external {
        owed[msg.sender] -= amount;
        require(asset.transferFrom(msg.sender, address(this), amount), "transfer failed");
    }
}
