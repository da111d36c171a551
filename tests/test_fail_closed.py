"""Issue 12 end to end: a provider fault ends in the same figures or a fail-closed exit, never exit 0 with others."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auditor.cli import main
from tests.faultproxy import FaultProxy, ItemFault
from tests.test_gate import policy, world  # noqa: F401 (the fixture: alpha 60% backed, a market lending on it)

BALANCE_OF = "70a08231"
PRICE = "a035b1fe"  # price(), the Morpho oracle getter


def run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, env={"AUDITOR_RPC_RETRIES": "2"})
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def audit(world: dict[str, Any], url: str, out: Path) -> tuple[int, str]:  # noqa: F811
    folder = world["folder"]
    return run(["audit", str(folder / "alpha.yaml"), "--registry", str(folder / "registry.yaml"),
                "--rpc", f"ethereum={url}", "--block", f"ethereum={world['block']}", "--json", str(out),
                "--html", str(out.with_suffix(".html")), "--no-cache"])


def check(world: dict[str, Any], url: str, policy_path: Path) -> tuple[int, str]:  # noqa: F811
    folder = world["folder"]
    return run(["check", str(folder / "alpha.yaml"), "--policy", str(policy_path), "--registry",
                str(folder / "registry.yaml"), "--rpc", f"ethereum={url}", "--block", f"ethereum={world['block']}"])


def test_a_provider_error_on_balances_is_an_incomplete_audit_not_a_zero(world: dict[str, Any],  # noqa: F811
                                                                         tmp_path: Path) -> None:
    code, clean_output = audit(world, world["url"], tmp_path / "clean.json")
    assert code == 0, clean_output
    clean = json.loads((tmp_path / "clean.json").read_text())
    assert clean["complete"] is True and clean["gaps"] == []
    with FaultProxy(world["url"], item_faults=[ItemFault("error", contains=BALANCE_OF)]) as proxy:
        code, output = audit(world, proxy.url, tmp_path / "faulted.json")
    assert code == 1, output
    assert "header not found" in output
    assert not (tmp_path / "faulted.html").exists()  # an incomplete audit is never signed
    # The balances go out in one batch with the supply: either the audit lists what it could not read, or, when
    # the supply itself is among the failed reads, it writes no figures at all.
    if (tmp_path / "faulted.json").exists():
        faulted = json.loads((tmp_path / "faulted.json").read_text())
        assert "INCOMPLETE" in output and faulted["complete"] is False and faulted["gaps"]
        assert all(figures["complete"] is False for figures in faulted["backing"]["issuers"].values())
    else:
        assert "no figures were written" in output


def test_a_transient_error_gives_the_same_figures(world: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    code, _ = audit(world, world["url"], tmp_path / "clean.json")
    assert code == 0
    with FaultProxy(world["url"], item_faults=[ItemFault("error", contains=BALANCE_OF, count=1)]) as proxy:
        code, output = audit(world, proxy.url, tmp_path / "faulted.json")
    assert code == 0, output
    clean, faulted = (json.loads((tmp_path / name).read_text()) for name in ("clean.json", "faulted.json"))
    assert faulted["backing"] == clean["backing"] and faulted["flags"] == clean["flags"]


@pytest.mark.parametrize("fault", [
    ItemFault("error", contains=PRICE),  # every oracle read fails
    ItemFault("result", contains=PRICE, result="0x"),  # a malformed answer
    ItemFault("block", contains=BALANCE_OF),  # answers at the wrong block
])
def test_the_gate_never_passes_on_a_fault(world: dict[str, Any], tmp_path: Path,  # noqa: F811
                                          fault: ItemFault) -> None:
    gate = policy(tmp_path, "fail_on_flags: [oracle-overvalues]\nmax_oracle_deviation: 0.05\n"
                            "min_backing_ratio: 0.10\n")
    clean_code, clean_output = check(world, world["url"], gate)
    assert clean_code == 1, clean_output  # the oracle prices alpha at 1.26 against 0.6 of look-through
    with FaultProxy(world["url"], item_faults=[fault]) as proxy:
        code, output = check(world, proxy.url, gate)
    assert code in (1, 2) and code != 0, output
    if code == 1:  # a decided breach must be the same verdict as the clean run's
        assert output == clean_output


def test_pruned_old_state_leaves_the_figures_and_the_gate_says_not_evaluated(world: dict[str, Any],  # noqa: F811
                                                                              tmp_path: Path) -> None:
    """Oracle sampling reads state up to 50,400 blocks before the pin, which most nodes have pruned: the audit's
    figures stand, the frozen-oracle check is listed as not evaluated with how far back the node keeps state, and
    a gate that needs it cannot pass."""
    code, _ = audit(world, world["url"], tmp_path / "clean.json")
    assert code == 0
    keeps = world["block"] - 3  # the node has state for the pin and the three blocks before it
    pruned = ItemFault("error", before_block=keeps, error={"code": -32000, "message": "missing trie node"})
    with FaultProxy(world["url"], item_faults=[pruned]) as proxy:
        code, output = audit(world, proxy.url, tmp_path / "pruned.json")
        assert code == 0, output
        assert "not evaluated: oracle-frozen" in output
        gate = policy(tmp_path, "min_backing_ratio: 0.5\nfail_on_flags: [oracle-frozen]\n")
        gate_code, gate_output = check(world, proxy.url, gate)
    clean, faulted = (json.loads((tmp_path / name).read_text()) for name in ("clean.json", "pruned.json"))
    assert faulted["complete"] is True and faulted["backing"] == clean["backing"]
    assert [s["check"] for s in faulted["not_evaluated"]] == ["oracle-frozen"]
    # Probed at pin - 2**k: pin-1 and pin-2 have state, pin-4 has none.
    assert faulted["not_evaluated"][0]["state_from"] == {"ethereum": world["block"] - 2}
    assert f"state from block {world['block'] - 2} (2 blocks before the pin)" in faulted["not_evaluated"][0]["reason"]
    assert gate_code == 2 and "UNDECIDED  flag:oracle-frozen" in gate_output
    assert "PASS  min-backing-ratio" in gate_output


REQUEST_FAULTS = ("drop", "delay", "429", "500", "503", "truncate", "wrong_ids")
ITEM_FAULTS = {
    "header-not-found": ItemFault("error"),
    "internal-error": ItemFault("error", error={"code": -32603, "message": "internal error"}),
    "result-0x": ItemFault("result", result="0x"),
    "result-null": ItemFault("result", result=None),
    "result-garbage": ItemFault("result", result="0xZZ"),
    "wrong-block": ItemFault("block"),
}


@pytest.mark.parametrize("persistent", [False, True], ids=["some-calls", "all-calls"])
@pytest.mark.parametrize("fault", [*REQUEST_FAULTS, *ITEM_FAULTS])
def test_fault_matrix_end_to_end(world: dict[str, Any], tmp_path: Path, fault: str,  # noqa: F811
                                 persistent: bool) -> None:
    """Every fault, on some calls or on all of them, ends in the clean run's figures or a fail-closed exit;
    never exit 0 with other figures, never a figure marked complete that the clean run does not have."""
    code, _ = audit(world, world["url"], tmp_path / "clean.json")
    assert code == 0
    clean = json.loads((tmp_path / "clean.json").read_text())
    if fault in ITEM_FAULTS:
        template = ITEM_FAULTS[fault]
        item = ItemFault(template.kind, error=dict(template.error), result=template.result,
                         count=None if persistent else 1)
        options: dict[str, Any] = {"item_faults": [item]}
    else:
        options = {"faults": [fault] * (200 if persistent else 1), "delay_s": 0.2}
    with FaultProxy(world["url"], **options) as proxy:
        code, output = audit(world, proxy.url, tmp_path / "faulted.json")
    if code == 0:
        faulted = json.loads((tmp_path / "faulted.json").read_text())
        assert faulted["complete"] is True
        assert faulted["backing"] == clean["backing"] and faulted["flags"] == clean["flags"], output
    else:
        assert code in (1, 2), output
        assert not (tmp_path / "faulted.html").exists()
        if (tmp_path / "faulted.json").exists():
            assert json.loads((tmp_path / "faulted.json").read_text())["complete"] is False
    if not persistent and fault not in ("delay",):
        assert code == 0, output  # a fault that goes away is retried through


def test_a_registry_token_with_no_contract_at_the_pin_holds_nothing(world: dict[str, Any],  # noqa: F811
                                                                     tmp_path: Path) -> None:
    """An address without code answers balanceOf with nothing: that is no contract (yet) at this block, so no
    balance, said in the notes; a read that failed would have made the audit incomplete instead."""
    registry = world["folder"] / "registry.yaml"
    text = registry.read_text()
    registry.write_text(text.replace("price: par}\n", "price: par}\n"
                                     "    LATER: {address: \"0x000000000000000000000000000000000000dEaD\", "
                                     "decimals: 18, price: par}\n", 1))
    code, output = audit(world, world["url"], tmp_path / "later.json")
    assert code == 0, output
    found = json.loads((tmp_path / "later.json").read_text())
    assert found["complete"] is True
    assert any("no contract at LATER" in note for note in found["notes"])
