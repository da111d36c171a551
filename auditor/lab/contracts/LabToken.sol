// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title LabToken
/// @notice ERC-20 for the local EVM lab only: anyone may mint, so never deploy it anywhere real.
contract LabToken is ERC20 {
    uint8 private immutable _decimals;

    constructor(string memory name_, string memory symbol_, uint8 decimals_) ERC20(name_, symbol_) {
        _decimals = decimals_;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    /// @notice Creates `amount` tokens for `to`; open to everyone because tests fund accounts with it.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Destroys `amount` of `from`'s tokens without an allowance, to stage losses in tests.
    function burn(address from, uint256 amount) external {
        _burn(from, amount);
    }
}
