"""Spec and registry loading: every kind of bad input gets one located line, exit 2, no traceback."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.cli import main
from auditor.spec import Registry, Spec, SpecError, json_schema, load_registry, load_spec

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "protocols" / "registry.yaml"

GOOD_SPEC = textwrap.dedent(
    """\
    id: good
    name: Good Token
    token:
      symbol: GOOD
      deployments:
        - {chain: ethereum, address: "0xE2Fc85BfB48C4cF147921fBE110cf92Ef9f26F94"}
        - chain: plume
          address: "0x6eaf19b2fc24552925db245f9ff613157a7dbb4c"
          bridged: true
    accounts:
      - {chain: ethereum, address: "0x1597E4B7cF6D2877A1d690b6088668afDb045763", label: treasury}
    claims:
      as_of: 2025-11-01
      assets_usd: 100
      apy: 0.18
      sources: ["https://example.org/claim"]
    offchain:
      - {label: fund manager, usd: 5}
    depends_on: [other]
    """
)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(REGISTRY)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def with_other(folder: Path) -> None:
    write(folder, "other.yaml", GOOD_SPEC.replace("id: good", "id: other").replace("[other]", "[]"))


def test_good_spec_loads_into_typed_objects(tmp_path: Path, registry: Registry) -> None:
    with_other(tmp_path)
    spec = load_spec(write(tmp_path, "good.yaml", GOOD_SPEC), registry)
    assert isinstance(spec, Spec)
    assert spec.token.par_usd == 1.0
    assert spec.token.deployments[1].bridged is True
    # lower-case addresses carry no checksum: accepted and normalised to EIP-55
    assert spec.token.deployments[1].address == "0x6eAf19b2FC24552925dB245F9Ff613157a7dbb4C"
    assert spec.claims.apy == 0.18
    assert spec.claims.as_of is not None and spec.claims.as_of.isoformat() == "2025-11-01"
    assert spec.offchain[0].usd == 5
    assert spec.depends_on == ("other",)


def test_shipped_specs_and_registry_validate() -> None:
    result = CliRunner().invoke(main, ["validate", "--registry", str(REGISTRY), str(ROOT / "protocols")])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert all(line.startswith("ok ") for line in lines)
    assert any("stream-xusd.yaml" in line for line in lines)
    assert any("elixir-deusd.yaml" in line for line in lines)


# (name, transformation of GOOD_SPEC, expected line, expected field, words in the message)
BAD_CASES = [
    ("bad yaml", lambda s: s.replace("  symbol: GOOD", "  symbol: [GOOD"), 5, "", "invalid YAML"),
    ("duplicate key", lambda s: s.replace("name: Good Token", "name: Good Token\nname: Again"), 3, "name",
     "duplicate key"),
    ("unknown key", lambda s: s.replace("  apy: 0.18", "  apr: 0.18"), 15, "claims.apr", "did you mean 'apy'"),
    ("bad address", lambda s: s.replace("0x1597E4B7cF6D2877A1d690b6088668afDb045763", "0x1597E4B7"), 11,
     "accounts[0].address", "40 hex digits"),
    ("bad checksum", lambda s: s.replace("0xE2Fc85BfB48C4cF147921fBE110cf92Ef9f26F94",
                                          "0xE2fc85BfB48C4cF147921fBE110cf92Ef9f26F94"), 6,
     "token.deployments[0].address", "checksum"),
    ("unknown chain", lambda s: s.replace("chain: plume", "chain: plumee"), 7, "token.deployments[1].chain",
     "did you mean 'plume'"),
    ("missing field", lambda s: s.replace("  symbol: GOOD\n", ""), 4, "token.symbol", "required"),
    ("depends_on nothing", lambda s: s.replace("[other]", "[nowhere]"), 19, "depends_on[0]", "unknown spec"),
    ("id not file name", lambda s: s.replace("id: good", "id: bad"), 1, "id", "file name"),
    ("wrong type", lambda s: s.replace("assets_usd: 100", "assets_usd: lots"), 14, "claims.assets_usd",
     "expected a number"),
    ("alias", lambda s: s.replace("name: Good Token", "name: &n Good Token\nalias: *n"), 3, "", "aliases"),
    ("duplicate account", lambda s: s.replace("label: treasury}", "label: treasury}\n" + s.splitlines()[10]),
     12, "accounts[1]", "duplicate"),
    ("bad date", lambda s: s.replace("2025-11-01", "2025-13-01"), 13, "claims.as_of", "date"),
    ("empty file", lambda s: "", 1, "", "empty"),
    ("not a mapping", lambda s: "- a\n- b\n", 1, "", "expected a mapping"),
]


@pytest.mark.parametrize(("case", "transform", "line", "field_path", "words"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_spec_gives_one_located_line_and_exit_2(
    tmp_path: Path, registry: Registry, case: str, transform, line: int, field_path: str, words: str
) -> None:
    with_other(tmp_path)
    path = write(tmp_path, "good.yaml", transform(GOOD_SPEC))
    with pytest.raises(SpecError) as info:
        load_spec(path, registry)
    error = info.value
    assert (error.line, error.field_path) == (line, field_path), str(error)
    assert words in str(error)

    result = CliRunner().invoke(main, ["validate", "--registry", str(REGISTRY), str(path)])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    error_lines = [ln for ln in result.output.splitlines() if ln.startswith("error ")]
    assert error_lines == [f"error {path}:{line}: {field_path + ': ' if field_path else ''}{error.message}"]


def test_registry_errors_are_located(tmp_path: Path) -> None:
    text = REGISTRY.read_text().replace("USDC: {address", "USDC: {adress")
    path = write(tmp_path, "registry.yaml", text)
    with pytest.raises(SpecError) as info:
        load_registry(path)
    assert info.value.field_path == "assets.ethereum.USDC.adress"
    assert "did you mean 'address'" in str(info.value)

    text = REGISTRY.read_text().replace("  base: {chain_id: 8453}\n", "") + "  \n"
    with pytest.raises(SpecError) as info:
        load_registry(write(tmp_path, "registry2.yaml", text))
    assert info.value.field_path == "venues.morpho_blue.base"
    assert "unknown chain 'base'" in str(info.value)


def test_cli_never_shows_a_traceback_for_a_missing_registry(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "--registry", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read file" in result.output
    assert "Traceback" not in result.output


def test_help_and_validate_do_not_import_web3() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from auditor.cli import main\n"
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output\n"
        f"r = CliRunner().invoke(main, ['validate', '--registry', {str(REGISTRY)!r}, {str(ROOT / 'protocols')!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('web3', 'eth_abi', 'eth_account'))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_commands_refuse_bad_usage_with_exit_2() -> None:
    result = CliRunner().invoke(main, ["exposure", "xUSD", "--chain", "nowhere", "--registry", str(REGISTRY)])
    assert result.exit_code == 2
    assert "--chain 'nowhere' is not in the registry" in result.output


def test_schema_matches_the_format() -> None:
    document = json_schema()
    assert document["additionalProperties"] is False
    assert set(document["required"]) == {"id", "name", "token"}
    token = document["properties"]["token"]
    assert token["properties"]["deployments"]["minItems"] == 1
    result = CliRunner().invoke(main, ["schema", "--registry"])
    assert result.exit_code == 0
    assert '"chains"' in result.output


# ------------------------------------------------------------------ property tests

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=12),
    st.sampled_from(["0x" + "a" * 40, "ethereum", "par", "2025-11-01", "good", "other"]),
)
keys = st.sampled_from(
    ["id", "name", "token", "symbol", "deployments", "chain", "address", "bridged", "accounts", "label",
     "claims", "apy", "offchain", "usd", "depends_on", "escrow", "par_usd", "x"]
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)),
    max_leaves=25,
)
LINE = re.compile(r"^.+:\d+: ")


def check_clean(path: Path, registry: Registry) -> None:
    try:
        spec = load_spec(path, registry, frozenset({"good", "other"}))
    except SpecError as error:
        assert LINE.match(str(error)), str(error)
        assert "\n" not in error.message
    else:
        assert isinstance(spec, Spec)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=documents)
def test_random_documents_give_a_spec_or_a_clean_error(tmp_path: Path, registry: Registry, document: object) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(document))
    check_clean(path, registry)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(list("{}[]:,-&*!|>'\"#%@` \n\tabc0x1.") ), max_size=80))
def test_random_text_gives_a_spec_or_a_clean_error(tmp_path: Path, registry: Registry, text: str) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD_SPEC[: len(GOOD_SPEC) // 2] + text)
    check_clean(path, registry)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.integers(0, GOOD_SPEC.count("\n") - 1), value=scalars)
def test_mutated_good_spec_gives_a_spec_or_a_clean_error(
    tmp_path: Path, registry: Registry, line: int, value: object
) -> None:
    lines = GOOD_SPEC.splitlines()
    indent = lines[line][: len(lines[line]) - len(lines[line].lstrip())]
    key = lines[line].strip().split(":")[0].lstrip("- ")
    lines[line] = f"{indent}{key}: {yaml.safe_dump(value, default_flow_style=True).splitlines()[0]}"
    path = tmp_path / "good.yaml"
    path.write_text("\n".join(lines))
    check_clean(path, registry)


def test_published_schema_file_is_current() -> None:
    import json

    shipped = json.loads((ROOT / "protocols" / "spec.schema.json").read_text())
    assert shipped == json_schema(), "run: auditor schema > protocols/spec.schema.json"
