// SPDX-License-Identifier: MIT
pragma solidity 0.8.24;

import {
    MessagingFee,
    MessagingParams,
    MessagingReceipt,
    Origin
} from "@layerzerolabs/lz-evm-protocol-v2/contracts/interfaces/ILayerZeroEndpointV2.sol";
import {ILayerZeroReceiver} from "@layerzerolabs/lz-evm-protocol-v2/contracts/interfaces/ILayerZeroReceiver.sol";

/// @notice The least of a LayerZero V2 endpoint that LayerZero's own OApp and OFT contracts call, for the lab: sends
/// are free and only emit `Sent`; a relayer (the lab, in Python) hands each message to the destination chain's
/// endpoint with `deliver`, which calls the receiving OApp exactly as the real endpoint's lzReceive path does.
contract LabEndpoint {
    uint32 public immutable eid;
    mapping(address oapp => address) public delegates;
    mapping(address sender => uint64) public outboundNonce;

    event Sent(address indexed sender, uint32 dstEid, bytes32 receiver, uint64 nonce, bytes32 guid, bytes message);

    constructor(uint32 eid_) {
        eid = eid_;
    }

    function setDelegate(address delegate) external {
        delegates[msg.sender] = delegate;
    }

    function quote(MessagingParams calldata, address) external pure returns (MessagingFee memory) {
        return MessagingFee(0, 0);
    }

    function send(MessagingParams calldata params, address) external payable returns (MessagingReceipt memory) {
        uint64 nonce = ++outboundNonce[msg.sender];
        bytes32 guid = keccak256(abi.encodePacked(nonce, eid, msg.sender, params.dstEid, params.receiver));
        emit Sent(msg.sender, params.dstEid, params.receiver, nonce, guid, params.message);
        return MessagingReceipt(guid, nonce, MessagingFee(msg.value, 0));
    }

    function deliver(Origin calldata origin, address receiver, bytes32 guid, bytes calldata message) external {
        ILayerZeroReceiver(receiver).lzReceive(origin, guid, message, msg.sender, "");
    }
}
