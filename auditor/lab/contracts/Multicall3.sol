// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

/// @title Multicall3 (reserve-auditor lab implementation)
/// @notice Batches calls into one transaction or one eth_call. Written for this project; it keeps the
/// public ABI of the widely deployed Multicall3 at 0xcA11bde05977b3631167028862bE2a173976CA11
/// (function signatures, result layout and the "Multicall3: call failed" / "Multicall3: value
/// mismatch" revert strings, as documented at multicall3.com) so readers can treat both the same.
/// @dev Functions that make calls are payable like the original's, which keeps the ABI identical;
/// they read no state of their own, so every one of them works under eth_call.
contract Multicall3 {
    struct Call {
        address target;
        bytes callData;
    }

    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Call3Value {
        address target;
        bool allowFailure;
        uint256 value;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    string private constant CALL_FAILED = "Multicall3: call failed";
    string private constant VALUE_MISMATCH = "Multicall3: value mismatch";

    /// @notice Runs every call and reverts if any fails; returns the block number and raw results.
    function aggregate(Call[] calldata calls)
        public
        payable
        returns (uint256 blockNumber, bytes[] memory returnData)
    {
        blockNumber = block.number;
        returnData = new bytes[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            (bool ok, bytes memory out) = calls[i].target.call(calls[i].callData);
            require(ok, CALL_FAILED);
            returnData[i] = out;
        }
    }

    /// @notice Runs every call; with requireSuccess false, failures are reported instead of reverting.
    function tryAggregate(bool requireSuccess, Call[] calldata calls)
        public
        payable
        returns (Result[] memory returnData)
    {
        returnData = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            (bool ok, bytes memory out) = calls[i].target.call(calls[i].callData);
            if (requireSuccess) {
                require(ok, CALL_FAILED);
            }
            returnData[i] = Result(ok, out);
        }
    }

    /// @notice tryAggregate plus the block number; blockHash is blockhash(block.number), which the EVM
    /// defines as zero, exactly as the original returns.
    function tryBlockAndAggregate(bool requireSuccess, Call[] calldata calls)
        public
        payable
        returns (uint256 blockNumber, bytes32 blockHash, Result[] memory returnData)
    {
        blockNumber = block.number;
        blockHash = blockhash(block.number);
        returnData = tryAggregate(requireSuccess, calls);
    }

    /// @notice tryBlockAndAggregate with every call required to succeed.
    function blockAndAggregate(Call[] calldata calls)
        public
        payable
        returns (uint256 blockNumber, bytes32 blockHash, Result[] memory returnData)
    {
        return tryBlockAndAggregate(true, calls);
    }

    /// @notice Runs every call; each call says whether its failure may be reported instead of reverting.
    function aggregate3(Call3[] calldata calls) public payable returns (Result[] memory returnData) {
        returnData = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            Call3 calldata item = calls[i];
            (bool ok, bytes memory out) = item.target.call(item.callData);
            if (!ok && !item.allowFailure) {
                revert(CALL_FAILED);
            }
            returnData[i] = Result(ok, out);
        }
    }

    /// @notice aggregate3 with ETH attached per call; msg.value must equal the sum of the values.
    function aggregate3Value(Call3Value[] calldata calls) public payable returns (Result[] memory returnData) {
        uint256 total = 0;
        returnData = new Result[](calls.length);
        for (uint256 i = 0; i < calls.length; ++i) {
            Call3Value calldata item = calls[i];
            total += item.value;
            (bool ok, bytes memory out) = item.target.call{value: item.value}(item.callData);
            if (!ok && !item.allowFailure) {
                revert(CALL_FAILED);
            }
            returnData[i] = Result(ok, out);
        }
        require(msg.value == total, VALUE_MISMATCH);
    }

    function getBlockHash(uint256 blockNumber) public view returns (bytes32 blockHash) {
        blockHash = blockhash(blockNumber);
    }

    function getBlockNumber() public view returns (uint256 blockNumber) {
        blockNumber = block.number;
    }

    function getCurrentBlockCoinbase() public view returns (address coinbase) {
        coinbase = block.coinbase;
    }

    /// @dev After the merge the DIFFICULTY opcode returns PREVRANDAO; same opcode as the original uses.
    function getCurrentBlockDifficulty() public view returns (uint256 difficulty) {
        difficulty = block.prevrandao;
    }

    function getCurrentBlockGasLimit() public view returns (uint256 gaslimit) {
        gaslimit = block.gaslimit;
    }

    function getCurrentBlockTimestamp() public view returns (uint256 timestamp) {
        timestamp = block.timestamp;
    }

    function getEthBalance(address addr) public view returns (uint256 balance) {
        balance = addr.balance;
    }

    /// @dev Unchecked so block 0 yields blockhash(2**256 - 1) == 0 instead of a panic.
    function getLastBlockHash() public view returns (bytes32 blockHash) {
        unchecked {
            blockHash = blockhash(block.number - 1);
        }
    }

    function getBasefee() public view returns (uint256 basefee) {
        basefee = block.basefee;
    }

    function getChainId() public view returns (uint256 chainid) {
        chainid = block.chainid;
    }
}
