"""Compile Solidity with solc-js through node, with imports inlined in Python and outputs cached by hash."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.lab import LabError, node_modules_dir, project_root

__all__ = [
    "LAB_CONTRACTS_DIR",
    "LAB_SETTINGS",
    "LAB_SOLC",
    "MORPHO_SETTINGS",
    "MORPHO_SOLC",
    "MORPHO_UNITS",
    "SOLC_PACKAGES",
    "Artifact",
    "Compiled",
    "cache_dir",
    "collect_sources",
    "compile_lab_contracts",
    "compile_morpho",
    "compile_sources",
    "compile_units",
    "find_imports",
    "standard_input",
]

LAB_CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
_LAB_PREFIX = "lab/"
_NODE_SCRIPT = Path(__file__).resolve().parent / "solc_compile.js"

# npm package that provides each compiler version (package.json pins them; 0.8.24 and 0.7.6 are npm aliases;
# 0.7.6 is the compiler Uniswap v3-core pins, `pragma solidity =0.7.6`).
SOLC_PACKAGES: Mapping[str, str] = {"0.7.6": "solc-0.7.6", "0.8.19": "solc", "0.8.24": "solc-0.8.24"}

MORPHO_SOLC = "0.8.19"
MORPHO_UNITS: tuple[str, ...] = (
    "@morpho-org/morpho-blue/src/Morpho.sol",
    "@morpho-org/morpho-blue/src/mocks/IrmMock.sol",
    "@morpho-org/morpho-blue/src/mocks/OracleMock.sol",
    "lab/FixedRateIrm.sol",  # ours, built with Morpho's compiler and settings (it imports Morpho's interfaces)
)
# Upstream Morpho Blue build profile (morpho-org/morpho-blue foundry.toml): via-ir, optimizer runs
# 999999, evm paris, no metadata hash; other settings give different bytecode than mainnet's.
MORPHO_SETTINGS: Mapping[str, Any] = {
    "viaIR": True,
    "optimizer": {"enabled": True, "runs": 999999},
    "evmVersion": "paris",
    "metadata": {"bytecodeHash": "none"},
}

# OpenZeppelin 5 needs >= 0.8.20. Paris (no PUSH0) keeps the Multicall3 runtime usable in state
# overrides on chains that lag behind Shanghai; no metadata hash keeps the committed hex stable
# across comment-only edits.
LAB_SOLC = "0.8.24"
LAB_SETTINGS: Mapping[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "paris",
    "metadata": {"bytecodeHash": "none"},
}

_OUTPUT_SELECTION = {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}}
_IMPORT = re.compile(r"\bimport\s*(?:[^;\"']*?\bfrom\s*)?([\"'])([^\"']+)\1")
_COMPILE_TIMEOUT_S = 900


@dataclass(frozen=True)
class Artifact:
    """One compiled contract: ABI plus creation and runtime bytecode as hex without 0x."""

    name: str
    unit: str
    abi: list[dict[str, Any]]
    bytecode_hex: str
    runtime_hex: str

    @property
    def bytecode(self) -> bytes:
        return _hex_to_bytes(self.bytecode_hex, self, "creation")

    @property
    def runtime(self) -> bytes:
        return _hex_to_bytes(self.runtime_hex, self, "runtime")

    @property
    def qualified_name(self) -> str:
        return f"{self.unit}:{self.name}"


def _hex_to_bytes(text: str, artifact: Artifact, kind: str) -> bytes:
    if "__$" in text:
        raise LabError(
            f"using {artifact.qualified_name}: its {kind} bytecode needs external libraries linked, "
            "which the lab does not do; make the library functions internal"
        )
    return bytes.fromhex(text)


@dataclass(frozen=True)
class Compiled:
    """Artifacts of one compile, by 'unit:Name'; `compiled["Name"]` works when the name is unique."""

    solc_version: str
    artifacts: dict[str, Artifact] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Artifact:
        if name in self.artifacts:
            return self.artifacts[name]
        matches = [a for a in self.artifacts.values() if a.name == name]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            known = ", ".join(sorted({a.name for a in self.artifacts.values()}))
            raise KeyError(f"no contract {name!r} in this compile; known: {known}")
        raise KeyError(f"{name!r} is ambiguous: {[a.qualified_name for a in matches]}; use 'unit:Name'")

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return name in self.artifacts or any(a.name == name for a in self.artifacts.values())

    def __iter__(self) -> Iterator[Artifact]:
        return iter(self.artifacts.values())


# --- sources -------------------------------------------------------------------------------


def _strip_comments(source: str) -> str:
    """Blank out comments but keep string literals, so commented-out imports are not followed."""
    out: list[str] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch in "\"'":
            j = i + 1
            while j < n and source[j] != ch:
                j += 2 if source[j] == "\\" else 1
            out.append(source[i : j + 1])
            i = j + 1
        elif source.startswith("//", i):
            j = source.find("\n", i)
            i = n if j < 0 else j
        elif source.startswith("/*", i):
            j = source.find("*/", i + 2)
            out.append(" ")
            i = n if j < 0 else j + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def find_imports(source: str) -> list[str]:
    """Return the import paths of a Solidity source, in order, as written."""
    return [m.group(2) for m in _IMPORT.finditer(_strip_comments(source))]


def _resolve_import(importer: str, path: str) -> str:
    if path.startswith(("./", "../")):
        return posixpath.normpath(posixpath.join(posixpath.dirname(importer), path))
    return path


def unit_path(unit: str) -> Path:
    """Map a source unit name to a file: 'lab/X.sol' is ours, anything else lives in node_modules."""
    if unit.startswith("/") or ".." in unit.split("/"):
        raise LabError(f"resolving Solidity import {unit!r}: only package or lab/ paths are allowed")
    if unit.startswith(_LAB_PREFIX):
        return LAB_CONTRACTS_DIR / unit[len(_LAB_PREFIX) :]
    return node_modules_dir() / unit


def collect_sources(units: Sequence[str]) -> dict[str, str]:
    """Read `units` and everything they import, recursively; returns unit name -> source text."""
    sources: dict[str, str] = {}
    pending = [(unit, "(requested)") for unit in units]
    while pending:
        unit, importer = pending.pop()
        if unit in sources:
            continue
        path = unit_path(unit)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            hint = (
                "check the file name under auditor/lab/contracts"
                if unit.startswith(_LAB_PREFIX)
                else "run `npm ci` in the project root (package.json lists the Solidity packages)"
            )
            raise LabError(
                f"reading Solidity source {unit} (imported by {importer}): {path}: {exc.strerror}; {hint}"
            ) from exc
        sources[unit] = text
        pending.extend((_resolve_import(unit, imp), unit) for imp in find_imports(text))
    return dict(sorted(sources.items()))


def standard_input(sources: Mapping[str, str], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Build a solc standard-JSON input with every source inlined and only the outputs the lab uses."""
    return {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sorted(sources.items())},
        "settings": {**settings, "outputSelection": _OUTPUT_SELECTION},
    }


# --- compiler and cache ---------------------------------------------------------------------


def cache_dir() -> Path:
    """Where compiler outputs are cached: $AUDITOR_CACHE_DIR/solc, else ~/.cache/reserve-auditor/solc."""
    base = os.environ.get("AUDITOR_CACHE_DIR")
    if base:
        return Path(base).expanduser() / "solc"
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return root / "reserve-auditor" / "solc"


def _solc_package(version: str) -> tuple[str, str]:
    """Return (npm package, its installed version) for a compiler version, checking the install."""
    package = SOLC_PACKAGES.get(version)
    if package is None:
        raise LabError(
            f"choosing a compiler: solc {version} is not one the lab installs ({', '.join(SOLC_PACKAGES)}); "
            "add it to package.json as an npm alias and to SOLC_PACKAGES"
        )
    manifest = node_modules_dir() / package / "package.json"
    try:
        installed = str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError) as exc:
        raise LabError(f"loading solc {version}: cannot read {manifest}; run `npm ci` in the project root") from exc
    if installed != version:
        raise LabError(
            f"loading solc {version}: node_modules/{package} is solc {installed}; run `npm ci` "
            "(package.json pins exact versions)"
        )
    return package, installed


def _node_binary() -> str:
    override = os.environ.get("AUDITOR_NODE")
    found = override or shutil.which("node")
    if not found:
        raise LabError("compiling Solidity: `node` is not on PATH; install Node.js 20 or set AUDITOR_NODE")
    return found


def _run_solcjs(package: str, input_json: str) -> dict[str, Any]:
    """Run solc-js in node on one standard-JSON input; tests patch this to count compiler runs."""
    try:
        done = subprocess.run(
            [_node_binary(), str(_NODE_SCRIPT), package, str(project_root())],
            input=input_json.encode(),
            capture_output=True,
            timeout=_COMPILE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"compiling Solidity with {package}: node ran over {_COMPILE_TIMEOUT_S} s") from exc
    except OSError as exc:
        raise LabError(f"compiling Solidity with {package}: cannot run node: {exc}") from exc
    stderr = done.stderr.decode(errors="replace").strip()
    if done.returncode != 0:
        raise LabError(
            f"compiling Solidity with {package}: node exited with {done.returncode}: {stderr[-2000:]}\n"
            "Fix: run `npm ci` in the project root"
        )
    try:
        reply = json.loads(done.stdout)
    except ValueError as exc:
        raise LabError(f"compiling Solidity with {package}: node printed no JSON; stderr: {stderr[-2000:]}") from exc
    if not isinstance(reply, dict) or not isinstance(reply.get("output"), dict):
        raise LabError(f"compiling Solidity with {package}: unexpected reply shape from solc_compile.js")
    return reply


def _raise_on_errors(output: Mapping[str, Any], version: str) -> None:
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        text = "\n".join(str(e.get("formattedMessage") or e.get("message")).rstrip() for e in errors)
        raise LabError(f"compiling Solidity with solc {version} failed:\n{text}")


def compile_standard_json(
    version: str, std_input: Mapping[str, Any], *, use_cache: bool = True
) -> tuple[str, dict[str, Any]]:
    """Compile a standard-JSON input; returns (solc's version string, output). Cached by input hash."""
    package, installed = _solc_package(version)
    canonical = json.dumps(std_input, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    key = hashlib.sha256(f"{package}@{installed}\n{canonical}".encode()).hexdigest()
    path = cache_dir() / f"{key}.json"
    if use_cache and path.is_file():
        try:
            cached = json.loads(path.read_text())
            return str(cached["solcVersion"]), dict(cached["output"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a truncated or foreign file: compile again and overwrite it
    reply = _run_solcjs(package, canonical)
    output: dict[str, Any] = reply["output"]
    _raise_on_errors(output, version)
    solc_version = str(reply.get("solcVersion", installed))
    if use_cache:
        _write_atomically(path, json.dumps({"solcVersion": solc_version, "output": output}))
    return solc_version, output


def _write_atomically(path: Path, text: str) -> None:
    # Parallel test workers may compile the same input; rename makes the last writer win cleanly.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, path)
    except OSError as exc:
        raise LabError(
            f"writing the compile cache {path}: {exc}; set AUDITOR_CACHE_DIR to a writable directory"
        ) from exc


def _artifacts(output: Mapping[str, Any]) -> dict[str, Artifact]:
    found: dict[str, Artifact] = {}
    for unit, contracts in sorted(output.get("contracts", {}).items()):
        for name, data in sorted(contracts.items()):
            evm = data.get("evm", {})
            found[f"{unit}:{name}"] = Artifact(
                name=name,
                unit=unit,
                abi=list(data.get("abi", [])),
                bytecode_hex=str(evm.get("bytecode", {}).get("object", "")),
                runtime_hex=str(evm.get("deployedBytecode", {}).get("object", "")),
            )
    return found


def compile_sources(
    sources: Mapping[str, str], version: str, settings: Mapping[str, Any], *, use_cache: bool = True
) -> Compiled:
    """Compile already-collected sources (unit name -> text) with solc `version` and `settings`."""
    solc_version, output = compile_standard_json(version, standard_input(sources, settings), use_cache=use_cache)
    return Compiled(solc_version=solc_version, artifacts=_artifacts(output))


def compile_units(
    units: Sequence[str], version: str, settings: Mapping[str, Any], *, use_cache: bool = True
) -> Compiled:
    """Compile source units (e.g. 'lab/LabToken.sol', '@org/pkg/src/X.sol') and all their imports."""
    return compile_sources(collect_sources(units), version, settings, use_cache=use_cache)


def _event_key(entry: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    return str(entry.get("name")), tuple(str(i.get("type")) for i in entry.get("inputs", []))


def compile_morpho(*, use_cache: bool = True) -> Compiled:
    """Compile Morpho Blue with IrmMock and OracleMock using the upstream settings and solc 0.8.19."""
    compiled = compile_units(MORPHO_UNITS, MORPHO_SOLC, MORPHO_SETTINGS, use_cache=use_cache)
    morpho_name = "@morpho-org/morpho-blue/src/Morpho.sol:Morpho"
    events_name = "@morpho-org/morpho-blue/src/libraries/EventsLib.sol:EventsLib"
    morpho = compiled.artifacts.get(morpho_name)
    events = compiled.artifacts.get(events_name)
    if morpho is None or events is None:
        raise LabError(f"compiling Morpho Blue: output lacks {morpho_name} or {events_name}; run `npm ci`")
    # solc < 0.8.20 leaves events emitted from a library out of the emitting contract's ABI.
    present = {_event_key(e) for e in morpho.abi if e.get("type") == "event"}
    extra = [e for e in events.abi if e.get("type") == "event" and _event_key(e) not in present]
    artifacts = dict(compiled.artifacts)
    artifacts[morpho_name] = Artifact(
        name=morpho.name,
        unit=morpho.unit,
        abi=[*morpho.abi, *extra],
        bytecode_hex=morpho.bytecode_hex,
        runtime_hex=morpho.runtime_hex,
    )
    return Compiled(solc_version=compiled.solc_version, artifacts=artifacts)


LAB_UNITS: tuple[str, ...] = (
    "lab/LabToken.sol",
    "lab/LabVault.sol",
    "lab/IssuerVault.sol",
    "lab/LockMintBridge.sol",
    "lab/ConstantSumPool.sol",
    "lab/Multicall3.sol",
    "lab/LogSpammer.sol",
    "lab/MetaVault.sol",
    "lab/ScenarioMinting.sol",
    "lab/PrivateLender.sol",
    "lab/LabFeed.sol",
)


# LayerZero's OFT and OFTAdapter (@layerzerolabs/oft-evm, compiled from the package's sources: its pragma is ^0.8.20)
# with the lab's minimal endpoint: a unit list of their own, so the lab's other contracts do not wait on them.
LAYERZERO_UNITS: tuple[str, ...] = ("lab/LabEndpoint.sol", "lab/LabOFT.sol")


def compile_layerzero(*, use_cache: bool = True) -> Compiled:
    """Compile LabEndpoint, LabOFT and LabOFTAdapter (LayerZero's OFT contracts) with solc 0.8.24."""
    return compile_units(LAYERZERO_UNITS, LAB_SOLC, LAB_SETTINGS, use_cache=use_cache)


def compile_lab_contracts(*, use_cache: bool = True) -> Compiled:
    """Compile the lab's own contracts (LabToken, Multicall3, LogSpammer) with solc 0.8.24."""
    return compile_units(LAB_UNITS, LAB_SOLC, LAB_SETTINGS, use_cache=use_cache)
