"""`auditor watch` against a local node while the test sends transactions: exactly the expected alerts, in order,
delivered to a local HTTP receiver with valid HMACs; none during an outage (fault proxy); none repeated after a
restart; an audit whose reads failed only says so."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from auditor.cli import main
from auditor.lab.deploy import Contract
from auditor.lab.node import rpc
from tests.conftest import Lab
from tests.faultproxy import FaultProxy

USDC = 10**6
SECRET = "webhook-test-secret"


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    fail_next: ClassVar[int] = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Receiver.fail_next:
            _Receiver.fail_next -= 1
            self.send_response(503)
        else:
            _Receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.received, _Receiver.fail_next = [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    server.server_close()


@pytest.fixture
def alpha(chain: Lab, tmp_path: Path) -> dict[str, Any]:
    """aUSD: 1,000 supply, 1,000 USDC in its treasury (fully backed); a policy that wants 95%."""
    treasury, outsider = chain.accounts[3], chain.accounts[5]
    token = Contract.deploy(chain.url, chain.lab_contracts["LabToken"], "Alpha USD", "aUSD", 6)
    token.transact("mint", outsider, 1000 * USDC)
    chain.usdc.transact("mint", treasury, 1000 * USDC)
    (tmp_path / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{chain.usdc.address}\", decimals: 6, price: par}}\n")
    (tmp_path / "alpha.yaml").write_text(
        "id: alpha\nname: Alpha\ntoken:\n  symbol: aUSD\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{token.address}\"}}\n"
        f"accounts:\n  - {{chain: ethereum, address: \"{treasury}\", label: treasury}}\n")
    (tmp_path / "policy" / "policy.yaml").parent.mkdir()
    (tmp_path / "policy" / "policy.yaml").write_text("min_backing_ratio: 0.95\n")  # not beside the specs
    return {"treasury": treasury, "outsider": outsider, "folder": tmp_path}


def watch(alpha: dict[str, Any], url: str, webhook: str, *extra: str) -> tuple[int, list[dict[str, Any]], str]:
    folder = alpha["folder"]
    result = CliRunner(env={"AUDITOR_WEBHOOK_SECRET": SECRET, "AUDITOR_RPC_RETRIES": "1"}).invoke(main, [
        "watch", str(folder / "alpha.yaml"), "--registry", str(folder / "registry.yaml"), "--rpc", f"ethereum={url}",
        "--policy", str(folder / "policy" / "policy.yaml"), "--state", str(folder / "watch.sqlite"),
        "--webhook", webhook, *extra])
    alerts = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, alerts, result.output


def changes(alerts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(a["kind"], a["condition"]) for a in alerts]


def test_alerts_on_transitions_only_signed_and_never_repeated(chain: Lab, alpha: dict[str, Any],
                                                              receiver: str) -> None:
    code, first, output = watch(alpha, chain.url, receiver, "--once")
    assert code == 0, output
    baseline = {a["condition"] for a in first}
    assert all(kind == "raised" for kind, _ in changes(first))
    assert "check:min-backing-ratio" not in baseline and "flag:under-backed" not in baseline

    code, again, output = watch(alpha, chain.url, receiver, "--once")  # a restart, nothing changed on chain
    assert (code, again) == (0, []), output

    chain.usdc.transact("transfer", alpha["outsider"], 600 * USDC, sender=alpha["treasury"])  # 40% backed
    code, breach, output = watch(alpha, chain.url, receiver, "--once")
    assert code == 0, output
    assert changes(breach) == [("raised", "check:min-backing-ratio"), ("raised", "flag:under-backed")]
    assert "40.0%" in breach[0]["message"] and breach[0]["pins"]["ethereum"]["number"] > 0

    code, nothing, output = watch(alpha, chain.url, receiver, "--once", "--exit-on-breach")
    assert code == 1 and nothing == [] and "breached" in output  # still breached: a gate, but no new alert

    # An outage: every request fails. It backs off in a loop, and a --once run exits without an alert.
    with FaultProxy(chain.url, faults=["500"] * 200) as proxy:
        code, during, output = watch(alpha, proxy.url, receiver, "--once")
    assert code != 0 and during == [] and "incomplete" in output

    # Reads that fail inside good replies (USDC reverts every call): the audit says it is incomplete, and decides
    # nothing else.
    chain.usdc.transact("transfer", alpha["treasury"], 600 * USDC, sender=alpha["outsider"])  # back to 100%
    code_of_usdc = rpc(chain.url, "eth_getCode", [chain.usdc.address, "latest"])
    rpc(chain.url, "anvil_setCode", [chain.usdc.address, "0x60006000fd"])  # PUSH1 0 PUSH1 0 REVERT
    try:
        code, blind, output = watch(alpha, chain.url, receiver, "--once")
    finally:
        rpc(chain.url, "anvil_setCode", [chain.usdc.address, code_of_usdc])
        rpc(chain.url, "evm_mine", [])  # a new block: state never changes under a block hash on a real chain
    assert code == 0, output
    assert changes(blind) == [("raised", "audit:incomplete")]  # not "cleared" although the money came back

    code, back, output = watch(alpha, chain.url, receiver, "--once")
    assert code == 0, output
    assert changes(back) == [("cleared", "audit:incomplete"), ("cleared", "check:min-backing-ratio"),
                             ("cleared", "flag:under-backed")]

    # The webhook got exactly the alerts printed, in order, each signed over its exact body.
    printed = first + breach + blind + back
    assert len(_Receiver.received) == len(printed)
    for (headers, body), alert in zip(_Receiver.received, printed, strict=True):
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-auditor-signature"], expected)
        assert json.loads(body) == alert and headers["x-auditor-delivery"] == str(alert["seq"])
    assert [a["seq"] for a in printed] == sorted({a["seq"] for a in printed})  # increasing, no repeats


def test_a_failed_webhook_is_retried_on_the_next_run_without_printing_twice(chain: Lab, alpha: dict[str, Any],
                                                                           receiver: str) -> None:
    chain.usdc.transact("transfer", alpha["outsider"], 600 * USDC, sender=alpha["treasury"])
    _Receiver.fail_next = 100
    code, first, output = watch(alpha, chain.url, receiver, "--once")
    assert code == 1 and first and "will retry" in output and "waiting for the webhook" in output
    assert _Receiver.received == []
    _Receiver.fail_next = 0
    code, second, output = watch(alpha, chain.url, receiver, "--once")
    assert code == 0 and second == [], output  # nothing new to print...
    assert [json.loads(body)["seq"] for _, body in _Receiver.received] == [a["seq"] for a in first]  # ...delivered


def test_the_loop_backs_off_through_an_outage_and_alerts_once(chain: Lab, alpha: dict[str, Any],
                                                             receiver: str) -> None:
    """The watch loop itself: audits at an interval; the first requests fail (an outage), it backs off and
    resumes; the breach is alerted once though it is seen on every audit."""
    chain.usdc.transact("transfer", alpha["outsider"], 600 * USDC, sender=alpha["treasury"])
    with FaultProxy(chain.url, faults=["503"] * 4) as proxy:
        code, alerts, output = watch(alpha, proxy.url, receiver, "--interval", "1s", "--max-audits", "3",
                                     "--backoff", "0.05")
    assert code == 0, output
    assert "outage" in output and "no alert" in output
    assert ("raised", "check:min-backing-ratio") in changes(alerts)
    assert len(changes(alerts)) == len(set(changes(alerts)))  # three audits, each alert once


def test_bad_watch_input_exits_2(alpha: dict[str, Any], chain: Lab) -> None:
    folder = alpha["folder"]
    base = ["watch", str(folder / "alpha.yaml"), "--registry", str(folder / "registry.yaml"), "--rpc",
            f"ethereum={chain.url}", "--state", str(folder / "w.sqlite"), "--once"]
    no_secret = CliRunner(env={"AUDITOR_WEBHOOK_SECRET": ""}).invoke(main, [*base, "--webhook", "http://x/"])
    assert no_secret.exit_code == 2 and "AUDITOR_WEBHOOK_SECRET" in no_secret.output
    bad_url = CliRunner(env={"AUDITOR_WEBHOOK_SECRET": "s"}).invoke(main, [*base, "--webhook", "file:///etc/passwd"])
    assert bad_url.exit_code == 2 and "http" in bad_url.output
    bad_interval = CliRunner().invoke(main, [*base, "--interval", "soon"])
    assert bad_interval.exit_code == 2 and "--interval 'soon'" in bad_interval.output
    assert "Traceback" not in no_secret.output + bad_url.output + bad_interval.output


def test_an_audit_with_unexplained_money_clears_nothing_and_fails_the_gate(chain: Lab, alpha: dict[str, Any],
                                                                         receiver: str) -> None:
    """Reads all answered, but an unlisted contract paid the treasury (a material unexplained inflow): the figures
    are a bound, so the breach stays raised (no false "cleared"), only audit:incomplete is new, and the gate fails."""
    chain.usdc.transact("transfer", alpha["outsider"], 600 * USDC, sender=alpha["treasury"])  # 40% backed
    code, breach, output = watch(alpha, chain.url, receiver, "--once")
    assert ("raised", "check:min-backing-ratio") in changes(breach), output
    lender = Contract.deploy(chain.url, chain.lab_contracts["PrivateLender"], chain.usdc.address)
    chain.usdc.transact("mint", lender.address, 1_000 * USDC)
    lender.transact("borrow", 50 * USDC, sender=alpha["treasury"])  # cash from a lender no registry lists
    code, bounded, output = watch(alpha, chain.url, receiver, "--once", "--exit-on-breach")
    assert changes(bounded) == [("raised", "audit:incomplete")], output
    assert code == 1 and "could not decide" in output


def test_bad_state_files_and_chain_names_exit_2(chain: Lab, alpha: dict[str, Any], tmp_path: Path) -> None:
    folder = alpha["folder"]
    (tmp_path / "notadb.sqlite").write_text("this is not a database")
    base = ["watch", str(folder / "alpha.yaml"), "--registry", str(folder / "registry.yaml"), "--once"]
    for extra, words in ((["--rpc", f"ethereum={chain.url}", "--state", str(tmp_path / "notadb.sqlite")], "--state"),
                         (["--rpc", f"ethereum={chain.url}", "--rpc", "nowhere=http://x/"], "nowhere"),
                         (["--rpc", "ethereum=127.0.0.1:8545"], "http"),
                         (["--rpc", f"ethereum={chain.url}", "--interval", "1m", "--every", "5"], "together")):
        result = CliRunner().invoke(main, [*base, *extra])
        assert result.exit_code == 2 and words in result.output and "Traceback" not in result.output, result.output
