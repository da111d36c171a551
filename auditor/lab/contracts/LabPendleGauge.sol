// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

/// @title LabPendleGauge
/// @notice The gauge controller a Pendle market is built with, reduced to what a market calls: its constructor reads
/// pendle() (the reward token, whose balance the market's gauge tracks) and reward updates call redeemMarketReward().
/// The lab pays no PENDLE emissions.
contract LabPendleGauge {
    address public immutable pendle;

    constructor(address pendle_) {
        pendle = pendle_;
    }

    function redeemMarketReward() external {}
}
