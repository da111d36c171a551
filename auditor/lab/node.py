"""Start and stop a local anvil node on loopback, and speak raw JSON-RPC to it."""

from __future__ import annotations

import ctypes
import fcntl
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from auditor.lab import LabError, project_root

__all__ = [
    "ANVIL_RELATIVE_PATH",
    "Anvil",
    "RpcError",
    "anvil_binary",
    "rpc",
    "start_anvil",
]

ANVIL_RELATIVE_PATH = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
_LISTENING = re.compile(r"Listening on (\S+):(\d+)")
_NPM_FIX = "run `npm ci` in the project root (it installs @foundry-rs/anvil-linux-amd64) or set AUDITOR_ANVIL"
_request_ids = itertools.count(1)


class RpcError(LabError):
    """A JSON-RPC call returned an error object; `data` carries revert data when the node sent some."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method} failed: {message} (code {code})")
        self.method = method
        self.code = code
        self.rpc_message = message
        self.data = data


def rpc(url: str, method: str, params: Sequence[Any] = (), *, timeout: float = 60.0) -> Any:
    """Send one JSON-RPC request and return its `result`; raise RpcError on an error response."""
    body = json.dumps({"jsonrpc": "2.0", "id": next(_request_ids), "method": method, "params": list(params)})
    request = urllib.request.Request(  # noqa: S310 - the lab only talks to the URLs it was given
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            reply = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise LabError(f"JSON-RPC {method} to {url}: HTTP {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise LabError(f"JSON-RPC {method} to {url}: {exc}; is the node still running?") from exc
    if not isinstance(reply, dict):
        raise LabError(f"JSON-RPC {method} to {url}: unexpected reply {reply!r:.200}")
    error = reply.get("error")
    if error is not None:
        raise RpcError(method, int(error.get("code", 0)), str(error.get("message", "")), error.get("data"))
    return reply.get("result")


def anvil_binary() -> Path:
    """Return the anvil executable: $AUDITOR_ANVIL, else the one npm installed under node_modules."""
    override = os.environ.get("AUDITOR_ANVIL")
    if override:
        return Path(override).expanduser()
    return project_root() / ANVIL_RELATIVE_PATH


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    kept = text.strip().splitlines()[-lines:]
    return "\n".join(kept) if kept else "(log is empty)"


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM anvil if the Python process dies, so a killed test run leaves no node behind."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _states_root() -> Path:
    return Path(tempfile.gettempdir()) / f"auditor-anvil-states-{os.getuid()}"


class _Spill:
    """One node's directory for the states anvil spills to disk, locked (flock) while the node or its owner lives.

    anvil keeps recent states in memory and writes older ones to `--cache-path` (default ~/.foundry/anvil/tmp), and
    never deletes them, not even on a clean exit: measured 78 MB per 1,000 empty blocks, 78 GB after a day of test
    runs. Each node gets its own directory, removed by stop(). Its lock file's descriptor is handed to anvil too, so
    the lock holds exactly while either process does; a directory whose lock nobody holds is swept by the next start,
    whatever pid namespace made it (a killed run's nodes die with it).
    """

    GRACE_S = 60.0  # a directory without its lock file yet is being made: only an older one is swept

    def __init__(self) -> None:
        root = _states_root()
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if root.stat().st_uid != os.getuid():
            raise LabError(f"starting anvil: {root} belongs to another user; remove it or set TMPDIR")
        self._sweep(root)
        self.path = Path(tempfile.mkdtemp(dir=root))
        self.lock = open(self.path / ".lock", "wb")  # noqa: SIM115 - held for the node's life, closed by close()
        fcntl.flock(self.lock, fcntl.LOCK_EX)

    @classmethod
    def _sweep(cls, root: Path) -> None:
        for old in root.iterdir():
            try:
                with open(old / ".lock", "rb") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while a node or its owner holds it
            except FileNotFoundError:
                try:
                    if time.time() - old.stat().st_mtime < cls.GRACE_S:
                        continue
                except OSError:
                    continue
            except OSError:  # held, or not ours to read
                continue
            shutil.rmtree(old, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self.lock.close()


def _end(process: subprocess.Popen[bytes], timeout: float, spill: _Spill | None) -> None:
    try:
        _terminate(process, timeout)
    finally:
        if spill is not None:
            spill.close()


class Anvil:
    """A running anvil process on 127.0.0.1; use as a context manager or call stop()."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        host: str,
        port: int,
        chain_id: int,
        log_path: Path,
        spill: _Spill | None = None,
    ) -> None:
        self._process = process
        self.host = host
        self.port = port
        self.chain_id = chain_id
        self.log_path = log_path
        self.url = f"http://{host}:{port}"
        # Covers callers that forget stop(): the node is still ended at garbage collection or exit.
        self._finalizer = weakref.finalize(self, _end, process, 5.0, spill)
        self._spill = spill

    @property
    def state_dir(self) -> Path | None:
        """Where this node spills old states (None when the caller chose with --cache-path/--prune-history)."""
        return self._spill.path if self._spill is not None else None

    @property
    def pid(self) -> int:
        return self._process.pid

    def running(self) -> bool:
        return self._process.poll() is None

    def stop(self, timeout: float = 5.0, *, keep_log: bool = False) -> None:
        """Terminate anvil by PID, wait for it, kill it if it lingers; safe to call twice."""
        self._finalizer.detach()
        _end(self._process, timeout, self._spill)
        if not keep_log:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> Anvil:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Anvil(url={self.url!r}, pid={self.pid}, chain_id={self.chain_id})"


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def start_anvil(
    chain_id: int = 1,
    *,
    binary: str | Path | None = None,
    timeout: float = 20.0,
    accounts: int = 10,
    balance_eth: int = 10_000,
    gas_limit: int | None = None,
    code_size_limit: int | None = None,
    timestamp: int | None = None,
    block_interval: int | None = None,
    extra_args: Sequence[str] = (),
    log_dir: str | Path | None = None,
) -> Anvil:
    """Start anvil on a free loopback port with `chain_id` and return once it answers JSON-RPC.

    gas_limit / code_size_limit default to anvil's own (30M gas, 24 KiB code, as on mainnet), so
    reads that exceed mainnet limits fail here too; pass larger values only for deliberate tests.
    `timestamp` fixes the genesis block's time; with `block_interval` every later block is exactly that many
    seconds after the previous one instead of following the wall clock, so replaying the same transactions
    rebuilds the same chain, block hashes included (evm_setNextBlockTimestamp still jumps ahead).
    The log goes to a temp file in `log_dir` (default: the system temp dir); stop() deletes it, a
    failed start keeps it for inspection.
    """
    exe = Path(binary).expanduser() if binary is not None else anvil_binary()
    if not exe.is_file():
        raise LabError(f"starting anvil: binary {exe} not found; {_NPM_FIX}")
    if not os.access(exe, os.X_OK):
        raise LabError(f"starting anvil: {exe} is not executable; `chmod +x {exe}` or {_NPM_FIX}")

    args = [
        str(exe),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--chain-id",
        str(chain_id),
        "--accounts",
        str(accounts),
        "--balance",
        str(balance_eth),
    ]
    if gas_limit is not None:
        args += ["--gas-limit", str(gas_limit)]
    if code_size_limit is not None:
        args += ["--code-size-limit", str(code_size_limit)]
    if timestamp is not None:
        args += ["--timestamp", str(timestamp)]
    args += list(extra_args)

    # The death signal fires when the forking *thread* ends, so only tie anvil to the main thread.
    tie_to_parent = sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()
    # anvil logs every request: a pipe nobody reads would fill and stall it, so it writes to a file.
    fd, log_name = tempfile.mkstemp(prefix=f"anvil-{chain_id}-", suffix=".log", dir=log_dir)
    log_path = Path(log_name)
    spill = None
    try:
        with os.fdopen(fd, "wb") as log:
            if not any(arg.split("=", 1)[0] in ("--cache-path", "--prune-history") for arg in extra_args):
                spill = _Spill()
                args[1:1] = ["--cache-path", str(spill.path)]
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if tie_to_parent else None,  # noqa: PLW1509
                pass_fds=(spill.lock.fileno(),) if spill is not None else (),
            )
    except BaseException as exc:
        log_path.unlink(missing_ok=True)
        if spill is not None:
            spill.close()
        if isinstance(exc, OSError):
            raise LabError(f"starting anvil: could not execute {exe}: {exc}; {_NPM_FIX}") from exc
        raise

    deadline = time.monotonic() + timeout
    host, port = "", 0
    while True:
        match = _LISTENING.search(log_path.read_text(errors="replace"))
        if match:
            host, port = match.group(1), int(match.group(2))
            break
        if process.poll() is not None:
            _end(process, 5.0, spill)
            raise LabError(
                f"starting anvil: {exe} exited with code {process.returncode} before listening.\n"
                f"Log {log_path} ends with:\n{_tail(log_path)}\n"
                f"Fix: check the flags {args[1:]}; if the binary is broken, {_NPM_FIX}"
            )
        if time.monotonic() > deadline:
            _end(process, 5.0, spill)
            raise LabError(
                f"starting anvil: no 'Listening on' line within {timeout:.0f} s.\n"
                f"Log {log_path} ends with:\n{_tail(log_path)}\n"
                "Fix: do not pass --silent; check the machine is not overloaded, or raise the timeout"
            )
        time.sleep(0.01)

    node = Anvil(process, host, port, chain_id, log_path, spill)
    try:
        reported = int(rpc(node.url, "eth_chainId", timeout=10.0), 16)
    except LabError as exc:
        node.stop(keep_log=True)
        raise LabError(
            f"starting anvil: it printed 'Listening on {host}:{port}' but eth_chainId failed: {exc}\n"
            f"Log {log_path} ends with:\n{_tail(log_path)}"
        ) from exc
    if reported != chain_id:
        node.stop(keep_log=True)
        raise LabError(
            f"starting anvil: asked for chain id {chain_id} but eth_chainId says {reported}; "
            "remove any --chain-id from extra_args"
        )
    if block_interval is not None:
        try:
            rpc(node.url, "anvil_setBlockTimestampInterval", [block_interval], timeout=10.0)
        except LabError as exc:
            node.stop(keep_log=True)
            raise LabError(f"starting anvil: setting a {block_interval} s block interval failed: {exc}") from exc
    return node
