"""Signed reports: hostile token strings, tamper detection, signer checks and re-execution through the CLI."""

from __future__ import annotations

import base64
import json
import re
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_account import Account

from auditor.chain.evidence import Bundle
from auditor.chain.rpc import Call
from auditor.cli import main
from auditor.lab.deploy import Contract
from auditor.report.render import extract_findings_json, findings_block
from tests.conftest import Lab

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'


@pytest.fixture
def signed_report(chain: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, list[str]]:
    """An audit of a token whose name and symbol are hostile markup, signed with a fresh key."""
    return audited_token(chain, tmp_path, monkeypatch, IMG, SCRIPT)


def audited_token(chain: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, symbol: str,
                  *extra: str) -> tuple[Path, str, list[str]]:
    """Deploy a token `name` / `symbol`, audit it with `extra` options, write a report signed by a fresh key."""
    account = Account.create()
    monkeypatch.setenv("AUDITOR_PRIVATE_KEY", bytes(account.key).hex())
    token = Contract.deploy(chain.url, chain.lab_contracts["LabToken"], name, symbol, 6)
    treasury = chain.accounts[3]
    token.transact("mint", chain.accounts[4], 1_000 * 10**6)
    token.transact("mint", treasury, 10 * 10**6)
    chain.usdc.transact("mint", treasury, 600 * 10**6)
    (tmp_path / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{chain.usdc.address}\", decimals: 6, price: par}}\n")
    (tmp_path / "evil.yaml").write_text(
        "id: evil\nname: Evil\ntoken:\n  symbol: EVIL\n  deployments:\n"
        f"    - {{chain: ethereum, address: \"{token.address}\"}}\n"
        f"accounts:\n  - {{chain: ethereum, address: \"{treasury}\", label: treasury}}\n")
    report = tmp_path / "evil.html"
    args = ["audit", str(tmp_path / "evil.yaml"), "--registry", str(tmp_path / "registry.yaml"),
            "--rpc", f"ethereum={chain.url}", *extra, "--html", str(report)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"signed by {account.address}" in result.output
    return report, account.address, args


def verify(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["verify", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_hostile_token_strings_are_inert(signed_report: tuple[Path, str, list[str]]) -> None:
    html = signed_report[0].read_text()
    assert SCRIPT not in html and "<img" not in html.lower()
    assert len(re.findall(r"<script\b", html)) == 2  # the findings and signature data blocks only
    assert re.findall(r"<script\b[^>]*>", html) == [
        '<script type="application/octet-stream" id="findings" data-encoding="zlib+base64">',
        '<script type="application/json" id="signature">']
    assert "Content-Security-Policy" in html
    # the hostile strings are still there, as data: escaped on the page, intact in the findings
    assert SCRIPT in extract_findings_json(html).encode().decode("unicode_escape")


def test_untouched_report_verifies_and_names_its_signer(signed_report: tuple[Path, str, list[str]]) -> None:
    report, signer, _ = signed_report
    code, output = verify(str(report), "--signer", signer)
    assert code == 0, output
    assert f"signed by {signer}" in output
    code, output = verify(str(report), "--signer", "0x" + "1" * 40)
    assert code == 1 and "not by the expected signer" in output


def test_rerun_at_the_pins_matches(signed_report: tuple[Path, str, list[str]], chain: Lab) -> None:
    report, _, _ = signed_report
    chain.usdc.transact("mint", chain.accounts[3], 5 * 10**6)  # after the pin: must not matter
    code, output = verify(str(report), "--rpc", f"ethereum={chain.url}")
    assert code == 0, output
    assert "re-running the audit at the report's pins gives the same figures" in output


def tamper(report: Path, old: str, new: str, count: int = 1) -> None:
    html = report.read_text()
    assert old in html, old
    report.write_text(html.replace(old, new, count))


def repack(report: Path, findings_json: str, level: int = 9) -> None:
    """Put other findings (or the same, deflated otherwise) in the page's findings block, leaving the rest."""
    html = report.read_text()
    block = findings_block(html)
    assert block is not None
    packed = base64.b64encode(zlib.compress(findings_json.encode(), level)).decode()
    report.write_text(html.replace(block, packed, 1))


def test_changed_figure_on_the_page_is_named(signed_report: tuple[Path, str, list[str]]) -> None:
    report = signed_report[0]
    html = report.read_text()
    visible = html[: html.index('<script type="application/json"')]
    figure = re.search(r">\$?600(\.00)?<", visible) or re.search(r"600\.00", visible)
    assert figure is not None
    start = figure.start() + visible[figure.start():].index("600")
    report.write_text(html[:start] + "900" + html[start + 3:])
    code, output = verify(str(report))
    assert code == 1
    assert "visible report differs from its signed findings" in output and "900" in output


def test_changed_evidence_entry_breaks_the_digest(signed_report: tuple[Path, str, list[str]]) -> None:
    report = signed_report[0]
    findings = extract_findings_json(report.read_text())
    match = re.search(r'"result":"(600000000)"', findings)
    assert match is not None
    repack(report, findings.replace('"result":"600000000"', '"result":"900000000"', 1))
    code, output = verify(str(report))
    assert code == 1
    assert "findings digest mismatch" in output


def test_changed_signer_is_caught(signed_report: tuple[Path, str, list[str]]) -> None:
    report, signer, _ = signed_report
    impostor = Account.create().address
    tamper(report, f'"signer":"{signer}"', f'"signer":"{impostor}"')
    code, output = verify(str(report))
    assert code == 1
    # The signer's address is part of what was signed: the signature now recovers to neither of them.
    assert "signer mismatch: the signature was made by" in output and f"which names {impostor}" in output


def test_reformatted_embedded_json_is_caught(signed_report: tuple[Path, str, list[str]]) -> None:
    report = signed_report[0]
    findings = extract_findings_json(report.read_text())
    document = json.loads(findings)
    # Same content, different spelling: the digest still matches, but the page no longer is what was signed.
    repack(report, json.dumps(document, sort_keys=True))
    code, output = verify(str(report))
    assert code == 1
    assert "visible report differs" in output


def test_the_same_findings_deflated_by_another_zlib_still_verify(signed_report: tuple[Path, str, list[str]]) -> None:
    """Another zlib build (or level) may deflate the same JSON to other bytes: the page still verifies."""
    report, signer, _ = signed_report
    findings = extract_findings_json(report.read_text())
    before = findings_block(report.read_text())
    repack(report, findings, level=1)
    assert findings_block(report.read_text()) != before
    code, output = verify(str(report), "--signer", signer)
    assert code == 0, output


def test_a_symbol_with_line_breaks_round_trips(chain: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report, signer, _ = audited_token(chain, tmp_path, monkeypatch, "Evil\r\nToken", "EV\r\nIL")
    assert b"EV\\x0d\\x0aIL" in report.read_bytes()  # shown inert, never as raw line breaks
    code, output = verify(str(report), "--signer", signer)
    assert code == 0, output


WIRING = "until cli.py signs through auditor.report.sign.resolve_signing_key and passes replay_digest to verify"


def test_replay_with_a_bundle_other_than_the_signed_one_fails(chain: Lab, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    evidence = tmp_path / "evidence.json.gz"
    report, _, _ = audited_token(chain, tmp_path, monkeypatch, "Plain", "PLN", "--record", str(evidence))
    code, output = verify(str(report), "--replay", str(evidence))
    assert code == 0, output
    # A bundle that answers every read of the audit but is not the one signed: the re-run would "confirm" it.
    bundle, _ = Bundle.read(evidence)
    bundle.add("ethereum", Call("eth_getBalance", ("0x" + "0" * 40, "0x1")), {"result": "0x0"})
    other = tmp_path / "other.json.gz"
    bundle.write(other)
    code, output = verify(str(report), "--replay", str(other))
    assert code == 1 and "it is not this report's bundle" in output


def test_a_report_without_a_key_is_signed_by_the_machine_key(chain: Lab, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              signed_report: tuple[Path, str, list[str]]) -> None:
    monkeypatch.delenv("AUDITOR_PRIVATE_KEY")
    _, _, args = signed_report
    report = tmp_path / "machine.html"
    result = CliRunner().invoke(main, [*args[:-1], str(report)])
    assert result.exit_code == 0, result.output
    assert "UNSIGNED" not in result.output and "--key KEYSTORE or AUDITOR_PRIVATE_KEY" in result.output
    code, output = verify(str(report))
    assert code == 0, output


def test_verify_bad_input(tmp_path: Path) -> None:
    code, output = verify(str(tmp_path / "missing.html"))
    assert code == 2 and "cannot read the report" in output
    (tmp_path / "plain.html").write_text("<html><body>hello</body></html>")
    code, output = verify(str(tmp_path / "plain.html"))
    assert code == 2 and "no embedded findings" in output
    (tmp_path / "plain.json").write_text('{"findings": []}')  # a report's JSON beside its page
    code, output = verify(str(tmp_path / "plain.json"))
    assert code == 2 and "a JSON document, not a signed report page" in output and "plain.html" in output
    assert "Traceback" not in output


def test_keystore_signing_and_wrong_password(signed_report: tuple[Path, str, list[str]], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUDITOR_PRIVATE_KEY")
    account = Account.create()
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "correct horse", iterations=2)))
    _, _, args = signed_report
    out = tmp_path / "ks.html"
    monkeypatch.setenv("AUDITOR_KEY_PASSWORD", "correct horse")
    result = CliRunner().invoke(main, [*args[:-1], str(out), "--key", str(keystore)])
    assert result.exit_code == 0, result.output
    assert f"signed by {account.address}" in result.output
    assert "correct horse" not in result.output and bytes(account.key).hex() not in result.output
    monkeypatch.setenv("AUDITOR_KEY_PASSWORD", "wrong")
    result = CliRunner().invoke(main, [*args[:-1], str(tmp_path / "no.html"), "--key", str(keystore)])
    assert result.exit_code == 2 and "wrong password" in result.output
    assert not (tmp_path / "no.html").exists()
