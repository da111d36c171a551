// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

/// @notice Emits many ERC-20 Transfer events cheaply, to benchmark log scanning at volume.
contract LogSpammer {
    event Transfer(address indexed from, address indexed to, uint256 value);

    function emitTransfers(uint256 count, uint256 offset) external {
        for (uint256 i = 0; i < count; ++i) {
            // distinct senders and recipients, so decoding cannot shortcut on repeated topics
            emit Transfer(address(uint160(offset + i + 1)), address(uint160(offset + i + 0x100000)), offset + i);
        }
    }
}
