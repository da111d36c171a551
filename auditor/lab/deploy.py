"""Deploy artifacts, send transactions and make calls on a lab node over raw JSON-RPC with eth-abi."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from auditor.chain.multicall import MULTICALL3_ADDRESS
from auditor.lab import LabError
from auditor.lab.compile import Artifact, Compiled, compile_lab_contracts
from auditor.lab.node import RpcError, rpc

__all__ = [
    "MULTICALL3_RUNTIME_HEX",
    "Contract",
    "abi_type",
    "accounts",
    "decode_revert",
    "deploy",
    "deploy_lab_token",
    "encode_call",
    "eth_call",
    "function_abi",
    "install_multicall3",
    "multicall3_runtime",
    "send_transaction",
    "write_multicall3_runtime_hex",
]

# Kept with the chain reader, which lends this code to nodes via state overrides (no compiler at run time).
MULTICALL3_RUNTIME_HEX = Path(__file__).resolve().parent.parent / "chain" / "multicall3_runtime.hex"
_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)
_RECEIPT_WAIT_S = 30.0

Abi = Sequence[Mapping[str, Any]]


# --- ABI helpers -----------------------------------------------------------------------------


def abi_type(param: Mapping[str, Any]) -> str:
    """Canonical type string of one ABI parameter, expanding tuples: '(address,uint256)[]'."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param.get("components", []))
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def _types(params: Sequence[Mapping[str, Any]]) -> list[str]:
    return [abi_type(p) for p in params]


def function_abi(abi: Abi, name: str, n_args: int | None = None) -> Mapping[str, Any]:
    """The ABI entry of function `name`; `n_args` picks among overloads."""
    found = [
        e
        for e in abi
        if e.get("type") == "function"
        and e.get("name") == name
        and (n_args is None or len(e.get("inputs", [])) == n_args)
    ]
    if len(found) != 1:
        what = "no" if not found else "several"
        raise LabError(f"encoding a call: {what} function {name!r} with {n_args} arguments in the ABI")
    return found[0]


def selector(entry: Mapping[str, Any]) -> bytes:
    signature = f"{entry['name']}({','.join(_types(entry.get('inputs', [])))})"
    return keccak(text=signature)[:4]


def encode_call(abi: Abi, name: str, args: Sequence[Any]) -> bytes:
    """Calldata for `name(*args)` as described by `abi`."""
    entry = function_abi(abi, name, len(args))
    return selector(entry) + encode(_types(entry.get("inputs", [])), list(args))


def decode_output(abi: Abi, name: str, data: bytes, n_args: int | None = None) -> tuple[Any, ...]:
    """Decode the return data of `name` into a tuple of its outputs."""
    entry = function_abi(abi, name, n_args)
    return tuple(decode(_types(entry.get("outputs", [])), data))


def decode_revert(data: bytes, abi: Abi = ()) -> str:
    """Human text for revert data: Error(string), Panic(code), or a custom error from `abi`."""
    if data[:4] == _ERROR_STRING:
        (reason,) = decode(["string"], data[4:])
        return str(reason)
    if data[:4] == _PANIC:
        (code,) = decode(["uint256"], data[4:])
        return f"panic 0x{code:02x}"
    for entry in abi:
        if entry.get("type") == "error" and selector(entry) == data[:4]:
            try:
                values = decode(_types(entry.get("inputs", [])), data[4:])
            except DecodingError:  # malformed error data still deserves its name
                values = ()
            return f"{entry['name']}{tuple(values)!r}"
    return f"revert data 0x{data.hex()}" if data else "reverted without data"


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _revert_text(exc: RpcError, abi: Abi) -> str:
    data = exc.data
    if isinstance(data, Mapping):  # some nodes nest it as {"data": "0x..."}
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return decode_revert(bytes.fromhex(data[2:]), abi)
        except ValueError:
            pass
    return exc.rpc_message


# --- accounts, transactions, calls ------------------------------------------------------------


def accounts(url: str) -> list[str]:
    """The node's unlocked accounts (anvil's ten funded dev accounts), checksummed."""
    return [to_checksum_address(a) for a in rpc(url, "eth_accounts")]


def send_transaction(
    url: str,
    *,
    to: str | None,
    data: bytes = b"",
    sender: str | None = None,
    value: int = 0,
    gas: int | None = None,
    abi: Abi = (),
    what: str = "transaction",
) -> dict[str, Any]:
    """Send from an unlocked account and return the mined receipt; a revert raises LabError with its reason."""
    tx: dict[str, Any] = {"from": sender or accounts(url)[0], "data": _hex(data), "value": hex(value)}
    if to is not None:
        tx["to"] = to
    if gas is None:
        # anvil estimates at the pending block's state; a later block timestamp can take a more expensive
        # path (Morpho accrues interest through the IRM once time has passed), so pad the estimate.
        try:
            estimate = int(rpc(url, "eth_estimateGas", [tx]), 16)
        except RpcError as exc:
            raise LabError(f"{what} reverted: {_revert_text(exc, abi)}") from exc
        gas = estimate * 13 // 10 + 100_000
    tx["gas"] = hex(gas)
    try:
        tx_hash = rpc(url, "eth_sendTransaction", [tx])
    except RpcError as exc:
        raise LabError(f"{what} reverted: {_revert_text(exc, abi)}") from exc
    deadline = time.monotonic() + _RECEIPT_WAIT_S
    receipt = rpc(url, "eth_getTransactionReceipt", [tx_hash])
    # anvil automines, so the receipt is normally there at once; a --no-mining node needs a wait.
    while receipt is None:
        if time.monotonic() > deadline:
            raise LabError(f"{what}: no receipt for {tx_hash} after {_RECEIPT_WAIT_S:.0f} s; is mining off?")
        time.sleep(0.05)
        receipt = rpc(url, "eth_getTransactionReceipt", [tx_hash])
    if int(receipt.get("status", "0x1"), 16) != 1:
        # anvil mines reverting transactions without saying why; replaying the same call on the
        # parent block (automine puts one transaction per block) recovers the revert reason.
        reason = "reason unknown"
        replay = {k: v for k, v in tx.items() if k != "gas"}
        try:
            rpc(url, "eth_call", [replay, hex(int(receipt["blockNumber"], 16) - 1)])
        except RpcError as exc:
            reason = _revert_text(exc, abi)
        raise LabError(
            f"{what} reverted: {reason} (tx {tx_hash}, gas used {int(receipt['gasUsed'], 16)})"
        )
    return dict(receipt)


def eth_call(
    url: str,
    to: str,
    data: bytes,
    *,
    block: str | int = "latest",
    sender: str | None = None,
    state_override: Mapping[str, Any] | None = None,
    abi: Abi = (),
) -> bytes:
    """eth_call returning raw bytes; a revert raises LabError with the decoded reason."""
    call: dict[str, Any] = {"to": to, "data": _hex(data)}
    if sender is not None:
        call["from"] = sender
    params: list[Any] = [call, hex(block) if isinstance(block, int) else block]
    if state_override is not None:
        params.append(dict(state_override))
    try:
        result = rpc(url, "eth_call", params)
    except RpcError as exc:
        raise LabError(f"eth_call to {to} reverted: {_revert_text(exc, abi)}") from exc
    return bytes.fromhex(str(result)[2:])


def deploy(url: str, artifact: Artifact, *args: Any, sender: str | None = None, value: int = 0) -> str:
    """Deploy `artifact` with constructor `args`; returns the checksummed address."""
    ctor = next((e for e in artifact.abi if e.get("type") == "constructor"), None)
    inputs = list(ctor.get("inputs", [])) if ctor else []
    if len(inputs) != len(args):
        raise LabError(f"deploying {artifact.name}: constructor takes {len(inputs)} arguments, got {len(args)}")
    data = artifact.bytecode + (encode(_types(inputs), list(args)) if inputs else b"")
    receipt = send_transaction(
        url, to=None, data=data, sender=sender, value=value, abi=artifact.abi, what=f"deploying {artifact.name}"
    )
    return to_checksum_address(receipt["contractAddress"])


class Contract:
    """A deployed contract at `address` on `url`, called and transacted through its ABI."""

    def __init__(self, url: str, address: str, abi: Abi, name: str = "contract") -> None:
        self.url = url
        self.address = to_checksum_address(address)
        self.abi = abi
        self.name = name

    @classmethod
    def deploy(cls, url: str, artifact: Artifact, *args: Any, sender: str | None = None) -> Contract:
        return cls(url, deploy(url, artifact, *args, sender=sender), artifact.abi, artifact.name)

    def encode(self, fn: str, *args: Any) -> bytes:
        return encode_call(self.abi, fn, args)

    def decode(self, fn: str, data: bytes, n_args: int | None = None) -> tuple[Any, ...]:
        return decode_output(self.abi, fn, data, n_args)

    def call(self, fn: str, *args: Any, block: str | int = "latest") -> Any:
        """eth_call `fn`; one output comes back bare, several as a tuple."""
        data = eth_call(self.url, self.address, self.encode(fn, *args), block=block, abi=self.abi)
        out = self.decode(fn, data, len(args))
        return out[0] if len(out) == 1 else out

    def transact(self, fn: str, *args: Any, sender: str | None = None, value: int = 0) -> dict[str, Any]:
        return send_transaction(
            self.url,
            to=self.address,
            data=self.encode(fn, *args),
            sender=sender,
            value=value,
            abi=self.abi,
            what=f"{self.name}.{fn}",
        )

    def __repr__(self) -> str:
        return f"Contract({self.name}@{self.address})"


def deploy_lab_token(
    url: str,
    name: str,
    symbol: str,
    decimals: int,
    *,
    sender: str | None = None,
    compiled: Compiled | None = None,
) -> Contract:
    """Deploy a LabToken (ERC-20 with an open mint) with the given decimals."""
    built = compiled if compiled is not None else compile_lab_contracts()
    return Contract.deploy(url, built["LabToken"], name, symbol, decimals, sender=sender)


# --- Multicall3 -------------------------------------------------------------------------------


def multicall3_runtime() -> bytes:
    """The committed runtime bytecode of the lab's Multicall3 (for anvil_setCode or state overrides)."""
    try:
        text = MULTICALL3_RUNTIME_HEX.read_text().strip()
    except OSError as exc:
        raise LabError(
            f"reading {MULTICALL3_RUNTIME_HEX}: {exc.strerror}; regenerate it with "
            "`python -c 'from auditor.lab.deploy import write_multicall3_runtime_hex as w; w()'`"
        ) from exc
    return bytes.fromhex(text.removeprefix("0x"))


def write_multicall3_runtime_hex(path: Path = MULTICALL3_RUNTIME_HEX) -> Path:
    """Compile Multicall3.sol and write its runtime bytecode as 0x-hex plus newline to `path`."""
    runtime = compile_lab_contracts()["Multicall3"].runtime
    path.write_text(_hex(runtime) + "\n")
    return path


def install_multicall3(url: str, runtime: bytes | None = None) -> str:
    """Put Multicall3 code at its canonical address with anvil_setCode; returns that address."""
    code = runtime if runtime is not None else multicall3_runtime()
    rpc(url, "anvil_setCode", [MULTICALL3_ADDRESS, _hex(code)])
    return MULTICALL3_ADDRESS
