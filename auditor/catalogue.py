"""The names the venue modules register, read from their source without importing them.

`auditor validate` checks a registry's `venues:` and pool `kind:` names without pulling in the chain layer
(eth-abi, requests) that the venue modules import. The venue modules register with decorators whose first
argument is a string literal (`@adapter("morpho_blue")`, `@price_source("some_pool_kind")`); this module reads
those literals from the package's sources. tests/test_adapters.py checks it equals the live registry.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

VENUES_DIR = Path(__file__).resolve().parent / "adapters"
CAPABILITIES = {"adapter": "collect", "rate": "rate", "price_source": "quote", "exposure_source": "exposure",
                "flow_source": "flows", "depth_source": "depth", "twap_source": "twap"}
TOKEN_STANDARDS = ("erc20",)  # position adapters that run on every chain: not a registry venue


@functools.cache
def registered() -> dict[str, frozenset[str]]:
    """Capability ("collect", "rate", "quote", "exposure", "flows") -> the venue names registering it."""
    found: dict[str, set[str]] = {capability: set() for capability in CAPABILITIES.values()}
    for path in sorted(VENUES_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        # Module-level NAME = "text" constants, for `@adapter(VENUE)`.
        constants = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                     and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                     for target in node.targets if isinstance(target, ast.Name)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for decorator in node.decorator_list:
                if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Name)
                        and decorator.func.id in CAPABILITIES and decorator.args):
                    continue
                argument = decorator.args[0]
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    found[CAPABILITIES[decorator.func.id]].add(argument.value)
                elif isinstance(argument, ast.Name) and argument.id in constants:
                    found[CAPABILITIES[decorator.func.id]].add(constants[argument.id])
    return {capability: frozenset(names) for capability, names in found.items()}


def venue_names() -> frozenset[str]:
    """What a registry's `venues:` may name: the venues that read positions, token standards aside."""
    return registered()["collect"] - frozenset(TOKEN_STANDARDS)


def pool_kinds() -> frozenset[str]:
    """What a registry pool's `kind:` may name: the venues that price a pool."""
    return registered()["quote"]
