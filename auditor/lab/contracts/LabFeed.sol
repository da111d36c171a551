// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

/// @notice A Chainlink AggregatorV3-shaped feed for the lab: its owner sets the answer and when it was updated,
/// as a proof-of-reserve feed or a price feed reports them.
contract LabFeed {
    uint8 public immutable decimals;
    address private immutable owner;
    uint80 private round;
    int256 private answer;
    uint256 private updatedAt;

    constructor(uint8 decimals_) {
        decimals = decimals_;
        owner = msg.sender;
    }

    function set(int256 answer_, uint256 updatedAt_) external {
        require(msg.sender == owner, "not the owner");
        round += 1;
        answer = answer_;
        updatedAt = updatedAt_;
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        return (round, answer, updatedAt, updatedAt, round);
    }
}
