"""The shape of the package: no import cycles, and only auditor/chain talks to a node over the network."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "auditor"
NETWORK_PACKAGES = {"requests", "socket", "httpx", "aiohttp", "web3"}
NETWORK_MODULES = {"urllib.request", "http.client"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of the package that `name` imports, lazy imports inside functions included."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for imported in targets:
            target = imported
            while target and target not in known:
                target = target.rpartition(".")[0]
            # A package importing its own modules (a registry) is not a cycle of the design.
            if target and target != name and not target.startswith(name + "."):
                found.add(target)
    return found


def _external_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module)
    return out


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        graph.add_edges_from((name, target) for target in _imports(name, path, set(modules)))
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert cycles == []


def test_only_the_chain_layer_and_the_lab_open_network_connections() -> None:
    offenders = {}
    for name, path in _modules().items():
        if name.startswith(("auditor.chain", "auditor.lab")):
            continue  # the lab drives its own local nodes; audits reach nodes only through auditor.chain
        used = {m for m in _external_imports(path) if m.split(".")[0] in NETWORK_PACKAGES or m in NETWORK_MODULES}
        if used:
            offenders[name] = sorted(used)
    assert offenders == {}


def test_the_checker_sees_a_cycle(tmp_path: Path) -> None:
    """The cycle test can fail: two modules importing each other are found."""
    (tmp_path / "a.py").write_text("from auditor import b\n")
    (tmp_path / "b.py").write_text("import auditor.a\n")
    known = {"auditor.a", "auditor.b"}
    graph = nx.DiGraph()
    for name in known:
        graph.add_edges_from((name, t) for t in _imports(name, tmp_path / f"{name.split('.')[1]}.py", known))
    assert [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1] == [["auditor.a", "auditor.b"]]
