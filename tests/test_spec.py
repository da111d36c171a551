"""Spec and registry loading: every kind of bad input gets one located line, exit 2, no traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor import spec as spec_module
from auditor.cli import main
from auditor.policy import Policy, load_policy
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


def test_yaml_1_1_coercions_never_reach_the_typed_objects(tmp_path: Path, registry: Registry) -> None:
    # Text is read as written and numbers must be numbers: a validator fed yaml.safe_load's values
    # (as pydantic would be) turns `NO` into False, an unquoted address into an int, and `true` into 1.0.
    address = "0xE2Fc85BfB48C4cF147921fBE110cf92Ef9f26F94"
    with_other(tmp_path)
    text = GOOD_SPEC.replace("symbol: GOOD", "symbol: NO").replace(f'"{address}"', address)
    spec = load_spec(write(tmp_path, "good.yaml", text), registry)
    assert (spec.token.symbol, spec.token.deployments[0].address) == ("NO", address)
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, "good.yaml", GOOD_SPEC.replace("apy: 0.18", "apy: true")), registry)
    assert (info.value.line, info.value.field_path, info.value.message) == (15, "claims.apy",
                                                                           "expected a number, got 'true'")


def test_registry_errors_are_located(tmp_path: Path) -> None:
    text = REGISTRY.read_text().replace("USDC: {address", "USDC: {adress")
    path = write(tmp_path, "registry.yaml", text)
    with pytest.raises(SpecError) as info:
        load_registry(path)
    assert info.value.field_path == "assets.ethereum.USDC.adress"
    assert "did you mean 'address'" in str(info.value)

    text = REGISTRY.read_text().replace("  base: {chain_id: 8453, lz_eid: 30184}\n", "") + "  \n"
    with pytest.raises(SpecError) as info:
        load_registry(write(tmp_path, "registry2.yaml", text))
    assert info.value.field_path == "venues.morpho_blue.base"
    assert "unknown chain 'base'" in str(info.value)


def test_one_layerzero_endpoint_id_names_one_chain(tmp_path: Path) -> None:
    clash = "  plasma: {chain_id: 9745, lz_eid: 30101}"  # Ethereum's endpoint id
    text = REGISTRY.read_text().replace("  plasma: {chain_id: 9745, lz_eid: 30383}", clash)
    path = write(tmp_path, "registry.yaml", text)
    with pytest.raises(SpecError) as info:
        load_registry(path)
    assert info.value.field_path == "chains.plasma.lz_eid"
    assert "already ethereum's" in str(info.value)
    assert info.value.line == 1 + text.splitlines().index(clash)


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


# ------------------------------------------------------------------ issue 12: fail closed on bad input

RAW_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def validate_output(path: Path, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str]:
    """`auditor validate PATH` in a child process (bounded memory and time): its exit code and output."""
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "from auditor.cli import main\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "validate", "--registry", str(REGISTRY), str(path)],
        check=False, capture_output=True, cwd=ROOT, timeout=timeout, env=env,
    )
    return result.returncode, (result.stdout + result.stderr).decode("ascii", "backslashreplace")


def assert_clean_exit_2(code: int, output: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    assert not RAW_CONTROL.search(output.replace("\n", "")), output


# (name, line of GOOD_SPEC replaced, replacement, expected line, field, words)
REPRODUCERS = [
    ("control character", "name: Good Token", "name: Good\x1b[31m Token", 2, "", "U+001B is not allowed"),
    ("bool tag", "      bridged: true", '      bridged: !!bool "6"', 9, "token.deployments[1].bridged",
     "expected true or false, got '6' (as !!bool)"),
    ("timestamp tag", "  as_of: 2025-11-01", '  as_of: !!timestamp "soon"', 13, "claims.as_of", "'soon'"),
    ("empty int tag", "  assets_usd: 100", '  assets_usd: !!int ""', 14, "claims.assets_usd", "expected a number"),
    ("binary tag", "name: Good Token", "name: !!binary R29vZA==", 2, "name", "unsupported YAML tag"),
    ("python tag", "name: Good Token", "name: !!python/name:os.system x", 2, "name", "unsupported YAML tag"),
    ("huge integer", "  assets_usd: 100", "  assets_usd: " + "9" * 100, 14, "claims.assets_usd", "more than 256"),
    ("too many digits", "  assets_usd: 100", "  assets_usd: " + "9" * 5000, 14, "claims.assets_usd",
     "expected a number"),
    ("nan", "  apy: 0.18", "  apy: .nan", 15, "claims.apy", "finite"),
    ("infinity", "  assets_usd: 100", "  assets_usd: 1.0e+999", 14, "claims.assets_usd", "finite"),
    ("deep nesting", "depends_on: [other]", "depends_on: " + "[" * 5000 + "]" * 5000, 19, "",
     "nesting is deeper than 64 levels"),
    ("merge key", "depends_on: [other]", "<<: {depends_on: [other]}", 19, "", "keys must be plain names"),
    ("local tag", "depends_on: [other]", "depends_on: !mine [other]", 19, "depends_on", "unsupported YAML tag"),
]


@pytest.mark.parametrize(("case", "old", "new", "line", "field_path", "words"), REPRODUCERS,
                         ids=[c[0] for c in REPRODUCERS])
def test_reproducers_of_issue_12_give_one_located_line(
    tmp_path: Path, registry: Registry, case: str, old: str, new: str, line: int, field_path: str, words: str
) -> None:
    with_other(tmp_path)
    assert old in GOOD_SPEC
    path = write(tmp_path, "good.yaml", GOOD_SPEC.replace(old, new))
    with pytest.raises(SpecError) as info:
        load_spec(path, registry)
    assert (info.value.line, info.value.field_path) == (line, field_path), str(info.value)
    assert words in str(info.value)
    result = CliRunner().invoke(main, ["validate", "--registry", str(REGISTRY), str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert_clean_exit_2(result.exit_code, result.output)


ESCAPES = [
    ("OSC 8 link", "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", "\\x1b]8;;https://evil.example"),
    ("ANSI colour", "\x1b[31mred\x1b[0m", "\\x1b[31mred"),
    ("C1 CSI", "\x9b31mred", "\\x9b31mred"),
    ("bidi override", "apy\u202e81.0", "apy\\u202e81.0"),
    ("line separator", "a\u2028b\x85c", "a\\u2028b\\x85c"),
    ("lone surrogate", "\ud800", "\\ud800"),
    ("non-ASCII", "caf\u00e9", "caf\\xe9"),
]


@pytest.mark.parametrize(("case", "key", "escaped"), ESCAPES, ids=[c[0] for c in ESCAPES])
def test_input_quoted_in_errors_is_inert(tmp_path: Path, case: str, key: str, escaped: str) -> None:
    # Written as escapes in double quotes (JSON's are YAML's), the way input gets past the YAML reader.
    quoted = json.dumps(key)
    path = write(tmp_path, "good.yaml", GOOD_SPEC.replace("  apy: 0.18", f"  {quoted}: 0.18"))
    # Under an ASCII-only locale too: the message must print whatever the terminal's encoding.
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "PYTHONIOENCODING": "ascii", "PYTHONUTF8": "0"}
    code, output = validate_output(path, env)
    assert_clean_exit_2(code, output)
    errors = [line for line in output.splitlines() if line.startswith("error ")]
    assert len(errors) == 1 and escaped in errors[0], output


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    code, output = validate_output(fifo, timeout=30)  # a blocking open() would time out here
    assert_clean_exit_2(code, output)
    assert f"error {fifo}:1: not a regular file (a FIFO)" in output


def test_devices_and_directories_are_refused(tmp_path: Path) -> None:
    code, output = validate_output(Path("/dev/zero"), timeout=30)  # reading it first would never end
    assert_clean_exit_2(code, output)
    assert "error /dev/zero:1: not a regular file (a character device)" in output
    with pytest.raises(SpecError, match="not a regular file \\(a directory\\)"):
        load_registry(tmp_path)


def test_size_is_checked_by_a_bounded_read(tmp_path: Path) -> None:
    path = write(tmp_path, "good.yaml", "# " + "x" * (spec_module.MAX_FILE_BYTES + 10) + "\n" + GOOD_SPEC)
    with pytest.raises(SpecError, match=f"larger than {spec_module.MAX_FILE_BYTES} bytes"):
        spec_module.load_document(path, spec_module.SPEC_FORMAT)
    size = len(path.read_bytes())
    assert spec_module.read_bounded(path, limit=size) == path.read_bytes()
    with pytest.raises(SpecError, match=f"larger than {size - 1} bytes"):
        spec_module.read_bounded(path, limit=size - 1)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_bytes(GOOD_SPEC.replace("Good Token", "Good \xff Token").encode("latin-1"))
    with pytest.raises(SpecError) as info:
        spec_module.load_document(path, spec_module.SPEC_FORMAT)
    assert info.value.line == 2 and "not valid UTF-8 (byte 0xff)" in info.value.message


@pytest.mark.parametrize("typo", ["morpho-blue", "Morpho_Blue"])
def test_unknown_venue_is_an_error_with_did_you_mean(tmp_path: Path, typo: str) -> None:
    # Before issue 12 an unknown venue was accepted, and every position at it silently dropped.
    path = write(tmp_path, "registry.yaml", REGISTRY.read_text().replace("  morpho_blue:\n", f"  {typo}:\n"))
    with pytest.raises(SpecError) as info:
        load_registry(path)
    assert info.value.field_path == f"venues.{typo}"
    assert f"unknown venue '{typo}'" in info.value.message
    assert "did you mean 'morpho_blue'?" in info.value.message
    assert "expected one of: aave_v3, morpho_blue" in info.value.message


def test_venue_names_are_the_registered_adapters() -> None:
    """The catalogue read from the sources is the live registry: venues, pool kinds, every capability."""
    from auditor import catalogue
    from auditor.adapters import TOKEN_ADAPTERS, load_all, load_venues

    assert set(spec_module.VENUE_NAMES) == set(load_all()) - set(TOKEN_ADAPTERS)
    live_kinds = {name for name, venue in load_venues().items() if venue.quote is not None}
    assert set(spec_module.POOL_KINDS) == live_kinds and "uniswap_v2" in spec_module.POOL_KINDS
    live = load_venues()
    for capability, names in catalogue.registered().items():
        assert names == {name for name, venue in live.items() if getattr(venue, capability) is not None}


def test_inert_escapes_everything_a_terminal_would_act_on() -> None:
    dangerous = "".join(map(chr, [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F),
                                  *range(0x2066, 0x206A), 0xFEFF, 0xD800, 0xDFFF, 0x1F600]))
    made_safe = spec_module.inert(dangerous)
    assert made_safe.isascii() and made_safe.isprintable()
    assert spec_module.inert(made_safe) == made_safe  # idempotent
    assert spec_module.inert("plain text: ok") == "plain text: ok"
    assert spec_module.inert("x" * 50, limit=10) == "x" * 10 + "..."


# ------------------------------------------------------------------ policies


@pytest.fixture(scope="module")
def flag_ids() -> list[str]:
    from auditor.flags import all_detectors

    return [detector.ID for detector in all_detectors()]


def test_shipped_policy_loads(flag_ids: list[str]) -> None:
    policy = load_policy(ROOT / "examples" / "policy.yaml", flag_ids)
    assert isinstance(policy, Policy)
    assert policy.min_backing_ratio == Decimal("0.95") and policy.max_expansion == Decimal("1.1")
    assert policy.fail_on_flags == ("circular-dependency", "self-issued-collateral", "oracle-overvalues")
    assert policy.checks() == ("min_backing_ratio", "max_expansion", "fail_on_flags", "max_oracle_deviation")


BAD_POLICIES = [
    ("unknown flag", "max_expansion: 2\nfail_on_flags: [circular-dependancy]\n", 2, "fail_on_flags[0]",
     "unknown flag 'circular-dependancy' (not in the detectors); did you mean 'circular-dependency'? "
     "(expected one of: circular-dependency, "),
    ("unknown key", "min_backing_ratio: 0.95\nmax_expansoin: 2\n", 2, "max_expansoin",
     "did you mean 'max_expansion'?"),
    ("checks nothing", "allow_unverified_collateral: true\nfail_on_flags: []\n", 1, "",
     "a policy that checks nothing cannot pass a token; set at least one of: min_backing_ratio, "),
    ("empty mapping", "{}\n", 1, "", "checks nothing"),
    ("duplicate flag", "fail_on_flags: [opacity, opacity]\n", 1, "fail_on_flags[1]", "duplicate"),
    ("ratio above 1", "min_backing_ratio: 1.5\n", 1, "min_backing_ratio", "<= 1"),
]


@pytest.mark.parametrize(("case", "text", "line", "field_path", "words"), BAD_POLICIES,
                         ids=[c[0] for c in BAD_POLICIES])
def test_bad_policy_is_a_located_spec_error(
    tmp_path: Path, flag_ids: list[str], case: str, text: str, line: int, field_path: str, words: str
) -> None:
    with pytest.raises(SpecError) as info:
        load_policy(write(tmp_path, "policy.yaml", text), flag_ids)
    assert (info.value.line, info.value.field_path) == (line, field_path), str(info.value)
    assert words in info.value.message


def test_a_policy_or_another_registry_beside_the_specs_is_not_taken_for_a_spec(tmp_path: Path,
                                                                                 registry: Registry) -> None:
    """Specs are recognised wherever their tokens turn up, so every spec beside the audited one is loaded: a
    policy or a second registry there is skipped, while a broken spec (it has an id or a token) still fails with
    its file and line."""
    from auditor.audit import known_specs
    from auditor.spec import spec_paths

    good = write(tmp_path, "good.yaml", GOOD_SPEC)
    with_other(tmp_path)
    write(tmp_path, "policy.yaml", (Path(__file__).parent.parent / "examples" / "policy.yaml").read_text())
    write(tmp_path, "mainnet-registry.yaml", REGISTRY.read_text())
    spec = load_spec(good, registry)
    assert sorted(known_specs(spec, registry)) == ["good", "other"]
    assert [p.name for p in spec_paths([tmp_path])] == ["good.yaml", "other.yaml"]
    assert CliRunner().invoke(main, ["validate", str(tmp_path), "--registry", str(REGISTRY)]).exit_code == 0
    write(tmp_path, "broken.yaml", "id: broken\nname: Broken\n")
    with pytest.raises(SpecError, match=r"broken\.yaml"):
        known_specs(load_spec(good, registry), registry)
