// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @notice Source side of a lock-and-mint bridge: tokens locked here back the copies minted on the other chain.
contract BridgeEscrow {
    using SafeERC20 for IERC20;

    address public immutable relayer;
    uint256 public nonce;

    event Locked(address indexed token, address indexed sender, address indexed recipient, uint256 amount, uint256 nonce);
    event Released(address indexed token, address indexed recipient, uint256 amount);

    constructor() {
        relayer = msg.sender;
    }

    function lock(IERC20 token, uint256 amount, address recipient) external {
        token.safeTransferFrom(msg.sender, address(this), amount);
        emit Locked(address(token), msg.sender, recipient, amount, nonce++);
    }

    function release(IERC20 token, address recipient, uint256 amount) external {
        require(msg.sender == relayer, "only relayer");
        token.safeTransfer(recipient, amount);
        emit Released(address(token), recipient, amount);
    }
}

/// @notice Destination side: a bridged copy that only the relayer mints (on a Locked event) and anyone burns to exit.
contract BridgedToken is ERC20 {
    address public immutable relayer;
    uint8 private immutable _decimals;

    event Minted(address indexed recipient, uint256 amount, uint256 sourceNonce);
    event Burned(address indexed sender, address indexed recipient, uint256 amount);

    constructor(string memory name_, string memory symbol_, uint8 decimals_) ERC20(name_, symbol_) {
        relayer = msg.sender;
        _decimals = decimals_;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    function relayMint(address recipient, uint256 amount, uint256 sourceNonce) external {
        require(msg.sender == relayer, "only relayer");
        _mint(recipient, amount);
        emit Minted(recipient, amount, sourceNonce);
    }

    function burnToExit(uint256 amount, address recipient) external {
        _burn(msg.sender, amount);
        emit Burned(msg.sender, recipient, amount);
    }
}
