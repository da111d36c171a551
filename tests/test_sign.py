"""The signature block, signing keys and `verify` on reports made without a node (issue 12)."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eth_account import Account

from auditor.chain.evidence import Bundle
from auditor.chain.rpc import Call, ConfigError
from auditor.cli import main
from auditor.report.publish import write_report
from auditor.report.render import extract_findings_json, extract_signature, render_report
from auditor.report.sign import (
    KEY_ENV,
    LEGACY_SCHEME,
    MACHINE_KEY_FILE,
    SECP256K1_N,
    SIGN_AS_YOURSELF,
    load_key,
    resolve_signing_key,
    sign_digest,
)
from auditor.report.verify import Verdict, parse_signer, verify_report

EVIDENCE = "sha256:" + "e" * 64
OTHER_EVIDENCE = "sha256:" + "f" * 64


def findings(symbol: str = "EVIL", evidence: str | None = None) -> dict[str, Any]:
    """The smallest findings document the renderer shows as a report."""
    document: dict[str, Any] = {"spec": "evil", "token": symbol,
                                "issuers": {"evil": {"symbol": symbol, "positions": [], "supply": {"tokens": "1"}}}}
    if evidence is not None:
        document["evidence"] = {"digest": evidence, "file": "evidence.json.gz"}
    return document


@pytest.fixture
def account() -> Any:
    return Account.create()


@pytest.fixture
def report(tmp_path: Path, account: Any) -> Path:
    path = tmp_path / "report.html"
    write_report(findings(evidence=EVIDENCE), path, bytes(account.key), EVIDENCE)
    return path


def rewrite_block(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """What a forger does: edit the signature block and render the page again, so page and block agree."""
    html = path.read_text(encoding="utf-8")
    canonical = extract_findings_json(html)
    block = extract_signature(html)
    assert block is not None
    change(block)
    path.write_bytes(render_report(json.loads(canonical), findings_json=canonical, signature=block).encode())


def cli_verify(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["verify", *args])
    # An exception other than SystemExit would be a traceback for the user.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def problems(verdict: Verdict) -> str:
    return "\n".join(verdict.problems)


def test_a_genuine_report_verifies_with_its_evidence(report: Path, account: Any) -> None:
    verdict = verify_report(report, expected_signer=account.address)
    assert verdict.ok, verdict.problems
    assert verdict.signer == account.address
    block = extract_signature(report.read_text())
    assert block is not None and set(block) == {"digest", "evidence_digest", "scheme", "signature", "signer"}


def test_an_added_note_is_an_unsigned_field(report: Path) -> None:
    rewrite_block(report, lambda block: block.update(note="independently reviewed: NO ISSUES FOUND"))
    code, output = cli_verify(str(report))
    assert code == 1
    assert "unsigned field 'note' in the signature block" in output


def test_a_swapped_evidence_digest_breaks_the_signature(report: Path, account: Any) -> None:
    rewrite_block(report, lambda block: block.update(evidence_digest=OTHER_EVIDENCE))
    verdict = verify_report(report)
    assert not verdict.ok and verdict.signer is None
    assert "signer mismatch: the signature was made by" in problems(verdict)
    assert account.address not in problems(verdict).split("which names")[0]  # recovers to someone else
    assert f"the signed evidence digest {OTHER_EVIDENCE} differs" in problems(verdict)


def test_a_changed_scheme_or_missing_field_fails(report: Path) -> None:
    rewrite_block(report, lambda block: block.update(scheme=LEGACY_SCHEME))
    assert "old signature scheme" in problems(verify_report(report))
    rewrite_block(report, lambda block: block.pop("evidence_digest"))
    assert "no 'evidence_digest' field" in problems(verify_report(report))


def test_replay_with_another_bundle_is_refused_before_re_running(report: Path, tmp_path: Path) -> None:
    other = Bundle()
    other.add("ethereum", Call("eth_chainId", ()), {"result": "0x1"})
    other.write(tmp_path / "other.json.gz")
    _, other_digest = Bundle.read(tmp_path / "other.json.gz")
    calls: list[dict[str, Any]] = []

    def rerun(document: dict[str, Any]) -> dict[str, Any]:
        calls.append(document)
        return document

    verdict = verify_report(report, rerun=rerun, replay_digest=other_digest)
    assert not verdict.ok and calls == []
    assert f"has digest {other_digest}, but the report was signed with evidence {EVIDENCE}" in problems(verdict)
    verdict = verify_report(report, rerun=rerun, replay_digest=EVIDENCE)
    assert verdict.ok, verdict.problems
    assert len(calls) == 1 and "the evidence bundle is the signed one" in " ".join(verdict.checks)


def test_replay_against_a_report_without_evidence_is_refused(tmp_path: Path, account: Any) -> None:
    path = tmp_path / "plain.html"
    write_report(findings(), path, bytes(account.key))
    verdict = verify_report(path, rerun=lambda document: document, replay_digest=EVIDENCE)
    assert "names no signed evidence bundle" in problems(verdict)


@pytest.mark.parametrize("signer", ["", "  ", "0x1234", "0x" + "g" * 40, "not an address"])
def test_an_empty_or_malformed_signer_is_bad_input(report: Path, signer: str) -> None:
    code, output = cli_verify(str(report), "--signer", signer)
    assert code == 2 and "--signer" in output and "does not verify" not in output
    with pytest.raises(ConfigError, match="expected an address"):
        parse_signer(signer)


def test_the_signer_is_compared_on_its_checksummed_address(report: Path, account: Any) -> None:
    assert verify_report(report, expected_signer=account.address.lower()).ok
    assert verify_report(report, expected_signer=account.address.upper().replace("0X", "0x")).ok
    wrong_case = account.address[:2] + account.address[2:].swapcase()
    with pytest.raises(ConfigError, match="checksum"):
        parse_signer(wrong_case)


def test_a_carriage_return_in_a_symbol_round_trips(tmp_path: Path, account: Any) -> None:
    path = tmp_path / "crlf.html"
    write_report(findings(symbol="EV\r\nIL\r"), path, bytes(account.key))
    # Shown inert (spelled \x0d\x0a), never as raw line breaks that could forge lines on the page.
    assert b"EV\\x0d\\x0aIL\\x0d" in path.read_bytes() and b"EV\r" not in path.read_bytes()
    code, output = cli_verify(str(path))
    assert code == 0, output


def test_a_page_whose_line_endings_changed_does_not_verify(report: Path) -> None:
    report.write_bytes(report.read_bytes().replace(b"\n", b"\r\n"))
    verdict = verify_report(report)
    assert "the visible report differs from its signed findings" in problems(verdict)


def test_an_unsigned_report_says_so(tmp_path: Path) -> None:
    path = tmp_path / "unsigned.html"
    write_report(findings(), path, None)
    code, output = cli_verify(str(path))
    assert code == 1 and "the report is unsigned" in output


OUT_OF_RANGE = {
    "zero": "00" * 32,
    "n": f"{SECP256K1_N:064x}",
    "n+1": f"{SECP256K1_N + 1:064x}",
    "max": "ff" * 32,
    "not hex": "zz",
    "31 bytes": "ab" * 31,
    "33 bytes": "0x" + "ab" * 33,
    "inner space": "ab" * 16 + " " + "ab" * 16,
}


@pytest.mark.parametrize("text", OUT_OF_RANGE.values(), ids=OUT_OF_RANGE.keys())
def test_an_unusable_private_key_is_a_config_error_that_hides_the_key(text: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, text)
    for load in (lambda: load_key(None), lambda: resolve_signing_key(None)):
        with pytest.raises(ConfigError, match=KEY_ENV) as caught:
            load()
        assert text.strip().removeprefix("0x") not in str(caught.value)
        assert caught.value.exit_code == 2


def test_signing_refuses_an_unusable_key_directly() -> None:
    with pytest.raises(ConfigError, match="not a valid secp256k1 private key"):
        sign_digest("sha256:" + "0" * 64, SECP256K1_N.to_bytes(32, "big"))


def test_the_environment_key_is_used_and_named(monkeypatch: pytest.MonkeyPatch, account: Any) -> None:
    monkeypatch.setenv(KEY_ENV, "0X" + bytes(account.key).hex() + "\n")
    key, source = resolve_signing_key(None)
    assert key == bytes(account.key) and source == KEY_ENV


def test_the_machine_key_is_made_once_private_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv("AUDITOR_CACHE_DIR", str(tmp_path / "cache"))
    key, source = resolve_signing_key(None)
    path = tmp_path / "cache" / "keys" / MACHINE_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert source.startswith("a new key made for this machine") and str(path) in source
    assert SIGN_AS_YOURSELF in source and "--key KEYSTORE" in source
    assert key.hex() not in source
    again, source_again = resolve_signing_key(None)
    assert again == key and source_again.startswith("the key made for this machine")
    assert [p.name for p in path.parent.iterdir()] == [MACHINE_KEY_FILE]  # no temporary file left behind
    report = tmp_path / "machine.html"
    signature = write_report(findings(), report, key)
    assert signature is not None and verify_report(report, expected_signer=signature.signer).ok


def test_a_machine_key_others_can_read_or_a_damaged_one_is_refused(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv("AUDITOR_CACHE_DIR", str(tmp_path / "cache"))
    key, _ = resolve_signing_key(None)
    path = tmp_path / "cache" / "keys" / MACHINE_KEY_FILE
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"readable by other users .*chmod 600") as caught:
        resolve_signing_key(None)
    assert key.hex() not in str(caught.value)
    path.chmod(0o600)
    path.write_text("00" * 32)
    with pytest.raises(ConfigError, match="delete the file to make a new key"):
        resolve_signing_key(None)


def test_a_keystore_is_preferred_and_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, account: Any) -> None:
    keystore = tmp_path / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "pw", iterations=2)))
    monkeypatch.setenv("AUDITOR_KEY_PASSWORD", "pw")
    monkeypatch.setenv(KEY_ENV, Account.create().key.hex())
    key, source = resolve_signing_key(str(keystore))
    assert key == bytes(account.key) and source == f"the keystore {keystore}"


def test_verify_and_validate_write_their_verdicts_as_json(report: Path, tmp_path: Path) -> None:
    out = tmp_path / "verdict.json"
    code, _ = cli_verify(str(report), "--json", str(out))
    verdict = json.loads(out.read_text())
    assert code == 0 and verdict["ok"] is True and verdict["problems"] == [] and verdict["digest"].startswith("sha256:")
    report.write_bytes(report.read_bytes().replace(b"</body>", b"<p>edited</p></body>"))
    code, _ = cli_verify(str(report), "--json", str(out))
    assert code == 1 and json.loads(out.read_text())["ok"] is False
    spec = tmp_path / "bad.yaml"
    spec.write_text("id: bad\nname: Bad\ntoken:\n  symbol: BAD\n  deploymnets: []\n")
    result = CliRunner().invoke(main, ["validate", str(spec), "--json", str(tmp_path / "validate.json")])
    records = json.loads((tmp_path / "validate.json").read_text())
    assert result.exit_code == 2 and records["ok"] is False
    (registry, bad) = records["files"]
    assert registry["ok"] is True and bad["ok"] is False and bad["line"] == 5 and "deploymnets" in bad["error"]
