"""What every benchmark section shares: progress on stderr, counted HTTP, interleaved repetitions, peer processes."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
BENCH_VENV = ROOT / ".venv-bench"  # peers only (dank_mids, cryo, orjson): `make bench-env`, never the project's
PEERS = Path(__file__).with_name("peers")
_STARTED = time.perf_counter()


def progress(message: str) -> None:
    """One line of progress on stderr, with the seconds since the benchmark started."""
    print(f"[{time.perf_counter() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


class CountingSession(requests.Session):
    """Counts HTTP requests, so every in-process contender is counted the same way."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override,unused-ignore]
        self.count += 1
        return super().request(method, url, *args, **kwargs)  # type: ignore[arg-type,unused-ignore]


@dataclass
class Sample:
    """One timed run of one contender: seconds, HTTP requests (None: not countable), and a digest of its answer
    that the caller checks against the expected one, so no contender is fast because it did less."""

    seconds: float
    requests: int | None = None
    digest: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


Runner = Callable[[], Sample]


def interleave(contenders: Mapping[str, Runner], reps: int, label: str,
               only_in: Mapping[str, Sequence[int]] | None = None) -> dict[str, list[Sample]]:
    """Run every contender once per repetition, in an order shuffled afresh for each repetition (seeded by the
    label: the same orders every run), so none is always first after a pause or always right after the heaviest.
    A rotation of one fixed order would not do that: it keeps every contender's neighbours, so the one after the
    heaviest peer (dank_mids, which loads the node for a while) would follow it in every repetition. `only_in`
    limits a contender to some repetitions (a slow one measured fewer times)."""
    names = list(contenders)
    out: dict[str, list[Sample]] = {name: [] for name in names}
    shuffler = random.Random(label)
    for rep in range(reps):
        order = shuffler.sample(names, len(names))
        for name in order:
            if only_in is not None and name in only_in and rep not in only_in[name]:
                continue
            sample = contenders[name]()
            out[name].append(sample)
            count = "" if sample.requests is None else f", {sample.requests} HTTP"
            progress(f"{label}: rep {rep + 1}/{reps} {name}: {sample.seconds:.3f}s{count}")
    return out


def median_s(samples: Sequence[Sample]) -> float:
    return statistics.median(s.seconds for s in samples)


def spread(samples: Sequence[Sample]) -> str:
    """min-max of the runs, for the tables (medians alone hide a noisy machine)."""
    times = [s.seconds for s in samples]
    return f"{min(times):.3f}-{max(times):.3f}"


def requests_of(samples: Sequence[Sample]) -> str:
    counts = sorted({s.requests for s in samples if s.requests is not None})
    if not counts:
        return "n/a"
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def bench_python() -> Path | None:
    python = BENCH_VENV / "bin" / "python"
    return python if python.is_file() else None


class PeerError(RuntimeError):
    """A peer that could not be installed, started or run: recorded in results.md, the benchmark goes on."""


class Peer:
    """A peer's script in the bench-only venv, kept running: it sets up once (imports, connection), then answers
    one timed run per `run` line on stdin with one JSON line on stdout, so peers interleave with the in-process
    contenders and their import time is never counted. Their timing is taken inside the peer, around the same
    work as ours."""

    def __init__(self, script: str, *args: str, timeout_s: float = 600.0) -> None:
        python = bench_python()
        if python is None:
            raise PeerError(f"no bench venv ({BENCH_VENV.name}): run `make bench-env`")
        self.name = script
        self.timeout_s = timeout_s
        self.process = subprocess.Popen(
            [str(python), str(PEERS / script), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.hello = self._reply()  # the peer's versions, once it is ready

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=30)
            assert self.process.stderr is not None
            tail = self.process.stderr.read()[-1500:].strip()
            raise PeerError(f"{self.name} exited ({self.process.returncode}): {tail or 'no output'}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise PeerError(f"{self.name}: {reply['error']}")
        return reply

    def run(self, **request: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._reply()

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=10)


def versions(*names: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)
