"""Shared fixtures: one anvil per test session with Multicall3, Morpho Blue and lab tokens deployed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from auditor.lab.compile import Compiled, compile_lab_contracts
from auditor.lab.deploy import Contract, accounts, deploy_lab_token, install_multicall3
from auditor.lab.morpho import MorphoLab, deploy_morpho
from auditor.lab.node import Anvil, start_anvil
from tests.support import rolled_back

LAB_CHAIN_ID = 1
LAB_LLTV = 860_000_000_000_000_000  # 0.86e18, one of the LLTVs Morpho governance enabled on mainnet


@dataclass(frozen=True)
class Lab:
    """What the session's lab chain holds; addresses are checksummed."""

    anvil: Anvil
    url: str
    chain_id: int
    accounts: list[str]
    deployer: str  # accounts[0]: owns Morpho, deploys everything
    lender: str  # accounts[1]
    borrower: str  # accounts[2]
    multicall3: str
    morpho: MorphoLab
    usdc: Contract  # 6 decimals
    weth: Contract  # 18 decimals
    wsteth: Contract  # 18 decimals
    lltv: int
    lab_contracts: Compiled


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own on-disk read cache: no answer leaks from one test (or one run) to the next."""
    monkeypatch.setenv("AUDITOR_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """Start one anvil (chain id 1) and deploy the lab; tests that change state should use `chain`."""
    node = start_anvil(LAB_CHAIN_ID)
    try:
        url = node.url
        accts = accounts(url)
        deployer = accts[0]
        multicall3 = install_multicall3(url)
        built = compile_lab_contracts()
        morpho = deploy_morpho(url, deployer)
        morpho.enable_irm()
        morpho.enable_lltv(LAB_LLTV)
        usdc = deploy_lab_token(url, "USD Coin (lab)", "USDC", 6, sender=deployer, compiled=built)
        weth = deploy_lab_token(url, "Wrapped Ether (lab)", "WETH", 18, sender=deployer, compiled=built)
        wsteth = deploy_lab_token(url, "Wrapped stETH (lab)", "wstETH", 18, sender=deployer, compiled=built)
        yield Lab(
            anvil=node,
            url=url,
            chain_id=LAB_CHAIN_ID,
            accounts=accts,
            deployer=deployer,
            lender=accts[1],
            borrower=accts[2],
            multicall3=multicall3,
            morpho=morpho,
            usdc=usdc,
            weth=weth,
            wsteth=wsteth,
            lltv=LAB_LLTV,
            lab_contracts=built,
        )
    finally:
        node.stop()


@pytest.fixture
def chain(lab: Lab) -> Iterator[Lab]:
    """The session lab, rolled back to its pre-test state (evm_snapshot / evm_revert) after the test."""
    with rolled_back(lab.url):
        yield lab
