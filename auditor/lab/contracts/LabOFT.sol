// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {OFT} from "@layerzerolabs/oft-evm/contracts/OFT.sol";
import {OFTAdapter} from "@layerzerolabs/oft-evm/contracts/OFTAdapter.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @notice LayerZero's OFT as a remote copy of a token, plus one lab-only door: minting without any lock on the
/// home chain, which is what a remote supply above the home chain's lock looks like.
contract LabOFT is OFT {
    constructor(string memory name_, string memory symbol_, address endpoint, address owner_)
        OFT(name_, symbol_, endpoint, owner_)
        Ownable(owner_)
    {}

    function mintUnbacked(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}

/// @notice LayerZero's OFTAdapter: locks the canonical token on its home chain for the copies elsewhere.
contract LabOFTAdapter is OFTAdapter {
    constructor(address token, address endpoint, address owner_) OFTAdapter(token, endpoint, owner_) Ownable(owner_) {}
}
