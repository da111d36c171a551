"""Mutated specs, registries and policies load or fail with one clean, located line: never a traceback.

The mutations and the check are the ones benchmarks/fuzz_inputs.py runs 10,000 times; here hypothesis
runs a derandomized few hundred, plus every input that once ended in a traceback (issue 12).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from benchmarks.fuzz_inputs import ROOT, SAFE_LINE, Seed, mutate, run_case, seeds

SEEDS = {seed.name: seed for seed in seeds()}
SPEC, REGISTRY_FILE, POLICY = "stream-xusd.yaml", "registry.yaml", "policy.yaml"


def edited(name: str, old: str, new: str) -> tuple[str, str, bytes]:
    """A shipped file with one edit, as a fuzz case (kind, file name, bytes)."""
    seed = SEEDS[name]
    text = seed.data.decode()
    assert old in text, old
    return seed.kind, seed.name, text.replace(old, new, 1).encode("utf-8", "surrogatepass")


def quoted(key: str) -> str:
    return json.dumps(key)  # JSON's escapes are YAML's double-quoted escapes


# Every input of issue 12 that ended in a traceback or in raw escapes on the terminal.
REPRODUCERS = [
    edited(SPEC, "name: ", "name: a\x1b[31m b #"),  # control character: ReaderError from the loader's constructor
    edited(SPEC, "name: ", "name: a\x00b #"),
    edited(SPEC, "accounts:", quoted("\ud800") + ": 1\naccounts:"),  # lone surrogate: UnicodeEncodeError
    edited(SPEC, "bridged: true", 'bridged: !!bool "6"'),  # KeyError
    edited(SPEC, "as_of: 2025-11-01", 'as_of: !!timestamp "soon"'),  # AttributeError
    edited(SPEC, "par_usd: 1.0", 'par_usd: !!int ""'),  # IndexError
    edited(SPEC, "accounts:", quoted("\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\") + ": 1\naccounts:"),
    edited(SPEC, "accounts:", quoted("\x1b[2J\u202eevil\u2028") + ": 1\naccounts:"),
    edited(SPEC, "par_usd: 1.0", "par_usd: " + "9" * 5000),
    edited(SPEC, "par_usd: 1.0", "par_usd: .nan"),
    edited(SPEC, "accounts:", "deep: " + "[" * 10_000 + "]" * 10_000 + "\naccounts:"),
    edited(SPEC, "accounts:", "a: &a [x]\nb: [*a, *a]\naccounts:"),
    edited(REGISTRY_FILE, "  morpho_blue:", "  morpho-blue:"),  # silently dropped every Morpho position
    edited(REGISTRY_FILE, "chain_id: 1,", 'chain_id: !!int "0x",'),
    edited(POLICY, "fail_on_flags: [circular-dependency", "fail_on_flags: [circular-dependancy"),
    edited(POLICY, "min_backing_ratio: 0.95", "min_backing_ratio: !!float \"\"\nmin_backing_ratio: 1"),
    (SEEDS[POLICY].kind, POLICY, b"allow_unverified_collateral: true\n"),
    (SEEDS[SPEC].kind, SPEC, b"\xef\xbb\xbf\xff\xfe"),
]


def with_reproducers(test: Callable[..., Any]) -> Callable[..., Any]:
    for case in REPRODUCERS:
        test = example(case=case)(test)
    return test


def _mutated(seed: Seed, rng: Any) -> tuple[str, str, bytes]:
    return seed.kind, seed.name, mutate(seed.data, rng)


cases = st.builds(_mutated, st.sampled_from(list(SEEDS.values())), st.randoms(use_true_random=False))


@settings(max_examples=200, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@with_reproducers
@given(case=cases)
def test_mutated_inputs_load_or_fail_with_one_clean_line(case: tuple[str, str, bytes]) -> None:
    outcome = run_case(*case)
    assert outcome.problem is None, outcome
    assert outcome.loaded in ("ok", "SpecError")
    assert outcome.exit_code in ((None,) if case[0] == "policy" else (0, 2))


@pytest.mark.parametrize("case", REPRODUCERS, ids=[f"{i}-{c[1]}" for i, c in enumerate(REPRODUCERS)])
def test_every_reproducer_is_a_spec_error(case: tuple[str, str, bytes]) -> None:
    assert run_case(*case).loaded == "SpecError"


def test_validate_prints_one_inert_line_per_file_under_an_ascii_locale(tmp_path: Path) -> None:
    specs = [data for kind, _name, data in REPRODUCERS if kind == "spec"]
    paths = []
    for index, data in enumerate(specs):
        folder = tmp_path / str(index)
        folder.mkdir()
        paths.append(folder / SPEC)
        paths[-1].write_bytes(data)
    env = {"PATH": os.defpath, "LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii"}
    result = subprocess.run(
        [sys.executable, "-c", "from auditor.cli import main; main()", "validate", *map(str, paths)],
        check=False, capture_output=True, cwd=ROOT, env=env, timeout=120,
    )
    output = result.stdout.decode("ascii", "backslashreplace") + result.stderr.decode("ascii", "backslashreplace")
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert all(SAFE_LINE.fullmatch(line) for line in output.splitlines()), output
    for path in paths:
        assert sum(line.startswith(f"error {path}:") for line in output.splitlines()) == 1, output
    assert output.splitlines()[-1] == f"error: {len(paths)} of {len(paths)} spec file(s) invalid"
