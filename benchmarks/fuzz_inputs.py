"""Fuzz the input loaders: mutated specs, registries and policies must load or fail with one clean line.

    python benchmarks/fuzz_inputs.py [--cases 10000] [--seed 12] [--out benchmarks/fuzz_inputs.md]

Each case takes a shipped file (protocols/*.yaml, examples/*policy*.yaml), applies one to three
byte, line, key or value mutations, and runs it through its loader and, for specs and registries,
through `auditor validate`. A case fails (a "traceback") if the loader raises anything but a
SpecError, if the command exits other than 0 or 2, or if its output quotes input unescaped or
spends more than one line on a file. The mutations and the check live here so that
tests/test_fuzz_inputs.py runs the same ones, a few hundred at a time, under hypothesis.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from click.testing import CliRunner

from auditor.cli import main
from auditor.policy import load_policy
from auditor.spec import Registry, SpecError, load_registry, load_spec

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = ROOT / "protocols"
REGISTRY = PROTOCOLS / "registry.yaml"


@dataclass(frozen=True)
class Seed:
    kind: str  # "spec" | "registry" | "policy"
    name: str  # file name, kept when mutated: a spec's id must equal it
    data: bytes


def seeds() -> list[Seed]:
    files = [("registry", REGISTRY)]
    files += [("spec", p) for p in sorted(PROTOCOLS.glob("*.yaml")) if p != REGISTRY]
    files += [("policy", p) for p in sorted((ROOT / "examples").glob("*policy*.yaml"))]
    return [Seed(kind, path.name, path.read_bytes()) for kind, path in files]


# ------------------------------------------------------------------ mutations

# Bytes that have broken a loader or a terminal before, or that YAML treats specially.
INSERTS = [
    b"\x00", b"\x1b", b"\x1b[31m", b"\x1b]8;;https://evil.example\x1b\\", b"\x07", b"\x7f", b"\xff", b"\xc3",
    b"\xed\xa0\x80", "\u202e".encode(), "\u2028".encode(), "\u0085".encode(), "\ufeff".encode(), b"\t", b"\r",
    b"\r\n", b"\n", b"&a ", b"*a", b"!!", b"!x ", b"? ", b"- ", b"---\n", b"...\n", b"%YAML 1.1\n", b"{", b"}",
    b"[", b"]", b"'", b'"', b"#", b": ", b"<<: ", b"|", b">", b"\\",
]
# Values in YAML source: the issue-12 reproducers, special numbers, tags, escapes and shapes.
VALUES = [
    '!!bool "6"', '!!timestamp "soon"', '!!int ""', '!!float ""', "!!int 0x", '!!binary "!!"', "!!set {a}",
    "!!omap [a]", "!!python/object:os.system x", "!!python/name:os.system", "!x y", ".nan", ".inf", "-.inf",
    "1.0e+999", "9" * 80, "9" * 5000, "-1", "0", "1_000", "0o17", "1:30", "0b101", "yes", "NO", "~", '""', "[]",
    "{}", "&a x", "*a", "[" * 300 + "]" * 300, "{a: " * 100 + "1" + "}" * 100, "2025-13-45", "2025-11-01",
    "2025-11-01T25:00:00Z", "0x" + "f" * 40, "0x" + "A" * 40, '"\\e]8;;https://evil.example\\e\\\\click"',
    '"\\e[2J\\e[31m"', '"\\u202eevil"', '"\\ud800"', '"\\x85\\u2028"', '"\\0"', '"' + "x" * 20000 + '"',
    "morpho-blue", "par", "circular-dependancy", "|\n  block\n", "'it''s'",
]
# Keys: escapes that reach field paths and messages, YAML-special keys, near-misses of real ones.
KEYS = [
    '"\\e]8;;https://evil.example\\e\\\\k"', '"\\e[31mkey"', '"\\ud800"', '"k\\u202ey"', '"\\u2028"', "<<",
    "? [a]\n", "~", '"' + "k" * 300 + '"', "!!int 1", "!x k", "morpho-blue", "apr", "adress", "chain_id", "feed",
    "fail_on_flag", "&k key", "*k",
]
KEY = re.compile(rb"[A-Za-z_][A-Za-z0-9_-]*(?=:\s)")
VALUE = re.compile(rb"(?<=: )[^\s,{}\[\]#][^,{}\[\]#\n]*")


def _typo(word: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(word))
    change = rng.choice(("drop", "double", "swap", "dash"))
    if change == "drop":
        return word[:at] + word[at + 1:]
    if change == "double":
        return word[:at] + word[at:at + 1] * 2 + word[at + 1:]
    if change == "swap" and at + 1 < len(word):
        return word[:at] + word[at + 1:at + 2] + word[at:at + 1] + word[at + 2:]
    return word.replace(b"_", b"-") if b"_" in word else word.replace(b"-", b"_")


def _replace_match(data: bytes, pattern: re.Pattern[bytes], rng: random.Random,
                   new: Callable[[bytes], bytes]) -> bytes:
    matches = list(pattern.finditer(data))
    if not matches:
        return data
    match = rng.choice(matches)
    return data[:match.start()] + new(match.group()) + data[match.end():]


def _key(data: bytes, rng: random.Random) -> bytes:
    return _replace_match(data, KEY, rng, lambda key: _typo(key, rng) if rng.random() < 0.5
                          else rng.choice(KEYS).encode())


def _value(data: bytes, rng: random.Random) -> bytes:
    return _replace_match(data, VALUE, rng, lambda _value: rng.choice(VALUES).encode())


def _line(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\n")
    at = rng.randrange(len(lines))
    change = rng.choice(("delete", "duplicate", "swap", "indent", "dedent", "truncate"))
    if change == "delete":
        del lines[at]
    elif change == "duplicate":
        lines.insert(at, lines[at])
    elif change == "swap":
        other = rng.randrange(len(lines))
        lines[at], lines[other] = lines[other], lines[at]
    elif change == "indent":
        lines[at] = rng.choice((b"  ", b"\t", b" ")) + lines[at]
    elif change == "dedent":
        lines[at] = lines[at].lstrip()
    else:
        lines = lines[:at]
    return b"\n".join(lines)


def _byte(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    change = rng.choice(("flip", "insert", "insert", "delete"))
    if change == "flip" and at < len(data):
        return data[:at] + bytes([rng.randrange(256)]) + data[at + 1:]
    if change == "delete":
        return data[:at] + data[at + rng.randint(1, 16):]
    return data[:at] + rng.choice(INSERTS) + data[at:]


MUTATIONS = (_byte, _line, _key, _value)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three byte, line, key or value mutations of a file."""
    for _ in range(rng.randint(1, 3)):
        data = rng.choice(MUTATIONS)(data, rng)
    return data


# ------------------------------------------------------------------ the check

SAFE_LINE = re.compile(r"[\x20-\x7e]*")


@dataclass(frozen=True)
class Outcome:
    loaded: str  # "ok" | "SpecError" | the name of any other exception (a failure)
    exit_code: int | None  # of `auditor validate`, None for policies (no command validates them alone)
    problem: str | None  # why the case fails, None if it passes


@cache
def shipped_registry() -> Registry:
    return load_registry(REGISTRY)


@cache
def flag_ids() -> tuple[str, ...]:
    from auditor.flags import all_detectors

    return tuple(detector.ID for detector in all_detectors())


def _load(kind: str, path: Path) -> None:
    if kind == "spec":
        load_spec(path, shipped_registry())  # depends_on checked against the specs beside it, as validate does
    elif kind == "registry":
        load_registry(path)
    else:
        load_policy(path, flag_ids())


def _output_problem(output: str, path: Path) -> str | None:
    lines = output.splitlines()
    unsafe = [line for line in lines if not SAFE_LINE.fullmatch(line)]
    if unsafe:
        return f"raw control or non-ASCII characters in output: {unsafe[0]!r}"
    about = [line for line in lines if str(path) in line]
    if len(about) != 1:
        return f"{len(about)} lines about {path.name}: {about!r}"
    return None


def run_case(kind: str, name: str, data: bytes) -> Outcome:
    """Load one (mutated) file and validate it with the command; the outcome says whether it failed cleanly."""
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        for spec in PROTOCOLS.glob("*.yaml"):  # the other specs, so that depends_on resolves
            if spec != REGISTRY:
                shutil.copy(spec, workdir / spec.name)
        path = workdir / ("mutated-" + name if kind == "registry" else name)
        path.write_bytes(data)
        error: SpecError | None = None
        try:
            _load(kind, path)
            loaded = "ok"
        except SpecError as exc:
            loaded, error = "SpecError", exc
        except Exception as exc:  # any other exception is what this run looks for
            return Outcome(type(exc).__name__, None, f"loader raised {exc!r}")
        if error is not None and (problem := _output_problem(f"error {error}", path)):
            return Outcome(loaded, None, problem)
        if kind == "policy":
            return Outcome(loaded, None, None)
        args = (["validate", "--registry", str(path), str(workdir / "stream-xusd.yaml")] if kind == "registry"
                else ["validate", "--registry", str(REGISTRY), str(path)])
        result = CliRunner().invoke(main, args)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            return Outcome(loaded, result.exit_code, f"validate raised {result.exception!r}")
        problem = _output_problem(result.output, path)
        if problem is None and result.exit_code not in (0, 2):
            problem = f"validate exited {result.exit_code}"
        if problem is None and error is not None and f"error {error}" not in result.output.splitlines():
            problem = f"validate did not print the loader's error: {result.output!r}"
        return Outcome(loaded, result.exit_code, problem)


# ------------------------------------------------------------------ the 10,000-case run


def run(cases: int, seed: int) -> tuple[Counter[str], list[tuple[str, str, bytes, str]], float]:
    rng = random.Random(seed)
    pool = seeds()
    counts: Counter[str] = Counter()
    failures: list[tuple[str, str, bytes, str]] = []
    started = time.perf_counter()
    for _ in range(cases):
        chosen = rng.choice(pool)
        data = mutate(chosen.data, rng)
        outcome = run_case(chosen.kind, chosen.name, data)
        counts[f"kind {chosen.kind}"] += 1
        counts[f"loader {outcome.loaded}"] += 1
        counts[f"exit {outcome.exit_code if outcome.exit_code is not None else '- (policy)'}"] += 1
        if outcome.problem is not None:
            counts["tracebacks"] += 1
            failures.append((chosen.kind, chosen.name, data, outcome.problem))
    return counts, failures, time.perf_counter() - started


def report(counts: Counter[str], failures: list[tuple[str, str, bytes, str]], elapsed: float,
           cases: int, seed: int) -> str:
    rows = [("cases", cases), ("tracebacks (must be 0)", counts["tracebacks"])]
    rows += sorted((key, value) for key, value in counts.items() if key != "tracebacks")
    lines = [
        "# Input fuzzing: specs, registries and policies",
        "",
        f"`python benchmarks/fuzz_inputs.py --cases {cases} --seed {seed}`: each case mutates a shipped file "
        "(protocols/*.yaml, examples/*policy*.yaml) by one to three byte, line, key or value mutations, loads it, "
        "and runs `auditor validate` on specs and registries. A traceback is any exception but SpecError, an exit "
        "code other than 0 or 2, or output with raw control characters or more than one line per file.",
        "",
        "| count | value |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in rows),
        f"| seconds | {elapsed:.1f} |",
        "",
    ]
    for kind, name, data, problem in failures[:20]:
        lines.append(f"- {kind} {name}: {problem[:300]!r}; input starts {data[:200]!r}")
    return "\n".join(lines) + "\n"


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "fuzz_inputs.md")
    args = parser.parse_args()
    counts, failures, elapsed = run(args.cases, args.seed)
    text = report(counts, failures, elapsed, args.cases, args.seed)
    args.out.write_text(text)
    print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(cli())
