"""Runs on Dask: a LocalCluster of processes gives byte-identical reports, index and history to a serial run, and
a spec whose chain is down fails alone with its reason in the index."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auditor import engine
from auditor.chain.rpc import ChainError, ConfigError
from auditor.cli import main
from auditor.lab.deploy import Contract
from auditor.lab.node import rpc
from tests.conftest import Lab

pytest.importorskip("distributed")

USDC = 10**6
KEY = "0x" + "42" * 32
CLOSED_PORT_URL = "http://127.0.0.1:9"  # discard port: nothing listens, the connection is refused


def _raise_chain(_: int) -> None:
    raise ChainError("ethereum", "eth_call", "latest", "header not found")


def _square(n: int) -> int:
    return n * n


def test_tasks_fail_alone_and_come_back_in_order() -> None:
    tasks = [engine.Task("a", _square, (3,)), engine.Task("b", _raise_chain, (1,)), engine.Task("c", _square, (4,))]
    seen: list[tuple[int, int, int]] = []
    outcomes = engine.run(tasks, progress=lambda *p: seen.append(p))
    assert [o.value for o in outcomes] == [9, None, 16]
    assert outcomes[1].error is not None and "header not found" in outcomes[1].error
    assert seen == [(1, 0, 3), (2, 1, 3), (3, 1, 3)]
    with pytest.raises(ConfigError, match="same key"):
        engine.run([tasks[0], tasks[0]])
    with pytest.raises(ConfigError, match="--scheduler needs --engine dask"):
        engine.run(tasks, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ConfigError, match="--engine 'spark'"):
        engine.run(tasks, engine="spark")


def test_a_bug_is_raised_not_hidden() -> None:
    with pytest.raises(ZeroDivisionError):
        engine.run([engine.Task("x", _square, (1,)), engine.Task("y", divmod, (1, 0))])


@pytest.fixture
def site(chain: Lab, tmp_path: Path) -> dict[str, Any]:
    """Three specs: alpha and beta on the lab chain, gamma on a chain whose node is down."""
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "registry.yaml").write_text(
        "chains:\n  ethereum: {chain_id: 1}\n  down: {chain_id: 5}\n"
        f"assets:\n  ethereum:\n    USDC: {{address: \"{chain.usdc.address}\", decimals: 6, price: par}}\n")
    for index, (name, symbol, on) in enumerate((("alpha", "aUSD", "ethereum"), ("beta", "bUSD", "ethereum"),
                                               ("gamma", "gUSD", "down"))):
        treasury = chain.accounts[3 + index]
        token = Contract.deploy(chain.url, chain.lab_contracts["LabToken"], f"{name} USD", symbol, 6)
        token.transact("mint", chain.accounts[8], (index + 1) * 1000 * USDC)
        chain.usdc.transact("mint", treasury, 900 * USDC)
        (specs / f"{name}.yaml").write_text(
            f"id: {name}\nname: {name}\ntoken:\n  symbol: {symbol}\n  deployments:\n"
            f"    - {{chain: {on}, address: \"{token.address}\"}}\n"
            f"accounts:\n  - {{chain: {on}, address: \"{treasury}\", label: treasury}}\n")
    block = int(rpc(chain.url, "eth_blockNumber"), 16)
    return {"specs": specs, "block": block, "url": chain.url}


def publish(site: dict[str, Any], out: Path, *extra: str) -> tuple[int, str]:
    specs = site["specs"]
    result = CliRunner(env={"AUDITOR_PRIVATE_KEY": KEY, "AUDITOR_RPC_RETRIES": "1"}).invoke(main, [
        "publish", str(specs / "alpha.yaml"), str(specs / "beta.yaml"), str(specs / "gamma.yaml"),
        "--registry", str(specs / "registry.yaml"), "--out", str(out), "--rpc", f"ethereum={site['url']}",
        "--rpc", f"down={CLOSED_PORT_URL}", "--block", f"ethereum={site['block']}", *extra])
    return result.exit_code, result.output


def test_dask_publishes_the_same_bytes_and_isolates_a_down_chain(site: dict[str, Any], tmp_path: Path) -> None:
    code, serial_output = publish(site, tmp_path / "serial")
    assert code == 1, serial_output
    code, dask_output = publish(site, tmp_path / "dask", "--engine", "dask", "--workers", "2")
    assert code == 1, dask_output
    for output in (serial_output, dask_output):
        assert "gamma: not published" in output and "1 spec(s) not published: gamma" in output
        assert "[3/3] audited, 1 failed" in output
    serial = {p.name: p.read_bytes() for p in sorted((tmp_path / "serial").glob("*.html"))}
    dask = {p.name: p.read_bytes() for p in sorted((tmp_path / "dask").glob("*.html"))}
    assert sorted(serial) == ["alpha.html", "beta.html", "index.html"]
    assert serial == dask  # the reports and the index, byte for byte
    index = serial["index.html"].decode()
    assert "not audited: " in index and "gamma" in index and "127.0.0.1:9" in index
    default = index[index.index('id="by-severity"'):]
    assert default.index("gamma") < default.index("aUSD")  # failures first, in the default (severity) order


def test_dask_history_is_byte_identical_to_serial(site: dict[str, Any], tmp_path: Path) -> None:
    specs = site["specs"]
    outputs = []
    for name, extra in (("serial", ()), ("dask", ("--engine", "dask", "--workers", "2"))):
        out = tmp_path / f"{name}.json"
        result = CliRunner().invoke(main, [
            "history", str(specs / "alpha.yaml"), "--registry", str(specs / "registry.yaml"),
            "--rpc", f"ethereum={site['url']}", "--blocks", f"{site['block'] - 4}:{site['block']}:2",
            "--json", str(out), *extra])
        assert result.exit_code == 0, result.output
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert [row["point"] for row in json.loads(outputs[0])["series"]] == [
        f"block {n}" for n in range(site["block"] - 4, site["block"] + 1, 2)]


def test_a_sharded_trace_on_dask_equals_one_pass(tmp_path: Path) -> None:
    """The reconstruction's loop, traced in one pass and as 3 shards per chain on a LocalCluster: the same JSON."""
    from auditor.lab import reconstruction

    params = reconstruction.load_params()
    eth, plume = reconstruction.start_nodes(params)
    try:
        world = reconstruction.build(params, lambda _line: None, eth, plume)
        inputs = reconstruction.write_inputs(world, params, tmp_path / "inputs")
        pins = world.pins["late-october"]
        outputs = []
        for name, extra in (("one", ()), ("sharded", ("--shards", "3", "--engine", "dask", "--workers", "2"))):
            out = tmp_path / f"{name}.json"
            result = CliRunner().invoke(main, [
                "trace", str(inputs["stream-xusd"]), "--registry", str(inputs["registry"]),
                "--rpc", f"ethereum={eth.url}", "--rpc", f"plume={plume.url}",
                "--window", f"ethereum=0:{pins['ethereum']}", "--window", f"plume=0:{pins['plume']}",
                "--json", str(out), "--no-cache", *extra])
            assert result.exit_code == 0, result.output
            outputs.append(out.read_bytes())
    finally:
        eth.stop()
        plume.stop()
    assert outputs[0] == outputs[1]
    loops = json.loads(outputs[0])["loops"]
    assert loops and loops[0]["iteration_count"] >= 7  # the loop is there, found across shard boundaries


def test_split_covers_the_window_exactly() -> None:
    from auditor.trace_shards import split

    assert split((0, 9), 3) == [(0, 2), (3, 5), (6, 9)]
    assert split((5, 5), 4) == [(5, 5)]
    for start, end, shards in ((0, 100, 7), (10, 11, 5), (1000, 1999, 16)):
        parts = split((start, end), shards)
        assert parts[0][0] == start and parts[-1][1] == end
        assert all(a <= b for a, b in parts) and all(b + 1 == c for (_, b), (c, _) in pairwise(parts))


def test_a_token_bucket_spaces_requests_at_its_rate() -> None:
    """A fake clock: 4 requests a second with a burst of 4, then every request waits its 0.25 s."""
    from auditor.chain.ratelimit import TokenBucket

    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(8):
        bucket.acquire()
    assert waits == [0.25, 0.25, 0.25, 0.25]  # the burst of 4 is free, then 1/rate each
    now[0] += 10  # idle: the bucket refills to its burst, never beyond
    waits.clear()
    for _ in range(5):
        bucket.acquire()
    assert waits == [0.25]


def test_rates_are_read_strictly(monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor.chain.ratelimit import rate_for

    assert rate_for("ethereum", {}) is None
    assert rate_for("ethereum", {"AUDITOR_RPC_RATE": "25", "AUDITOR_RPC_RATE_ETHEREUM": "5"}) == 5
    assert rate_for("plume", {"AUDITOR_RPC_RATE": "25", "AUDITOR_RPC_RATE_ETHEREUM": "5"}) == 25
    for bad in ("0", "-1", "fast", "inf", "nan"):
        with pytest.raises(ConfigError, match="requests per second"):
            rate_for("ethereum", {"AUDITOR_RPC_RATE": bad})


def _worker_rate() -> str | None:
    import os

    return os.environ.get("AUDITOR_RPC_RATE")


def test_a_dask_run_divides_the_rate_among_its_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers each get half of AUDITOR_RPC_RATE: the URL's total holds across processes."""
    monkeypatch.setenv("AUDITOR_RPC_RATE", "10")
    tasks = [engine.Task(f"rate-{n}", _worker_rate, ()) for n in range(4)]
    assert {o.value for o in engine.run(tasks, "dask", workers=2)} == {"5.0"}


def test_every_http_request_of_an_audit_takes_a_token(chain: Lab, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With AUDITOR_RPC_RATE set, each request to the URL passes its bucket: the proxy counts as many as the bucket."""
    from auditor.chain import ratelimit
    from tests.faultproxy import FaultProxy
    from tests.support import audit_alpha, write_alpha

    token = Contract.deploy(chain.url, chain.lab_contracts["LabToken"], "Alpha USD", "aUSD", 6)
    token.transact("mint", chain.accounts[5], 100 * USDC)
    write_alpha(tmp_path, chain, token, chain.accounts[3])
    monkeypatch.setenv("AUDITOR_RPC_RATE", "1000")
    ratelimit.reset()
    try:
        with FaultProxy(chain.url) as proxy:
            audit_alpha(tmp_path, proxy.url, int(rpc(chain.url, "eth_blockNumber"), 16))
            limit = ratelimit.bucket("ethereum", proxy.url)
            assert limit is not None and limit.rate == 1000
            assert limit.taken == proxy.state.http_requests > 0
    finally:
        ratelimit.reset()


def test_publish_refuses_unknown_chains_and_missing_nodes_before_any_audit(site: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    specs = site["specs"]
    base = ["publish", str(specs / "alpha.yaml"), "--registry", str(specs / "registry.yaml"), "--out",
            str(tmp_path / "out")]
    for extra, words in ((["--rpc", f"ethereum={site['url']}", "--block", "mars=1"], "mars"),
                         (["--rpc", f"ethereum={site['url']}", "--rpc", "mars=http://x/"], "mars"),
                         ([], "no RPC URL for chain 'ethereum'")):
        result = CliRunner(env={"AUDITOR_PRIVATE_KEY": KEY, "ETH_RPC_URL": "", "AUDITOR_RPC_ETHEREUM": ""}).invoke(
            main, [*base, *extra])
        assert result.exit_code == 2 and words in result.output, result.output
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_published_pages_are_readable_by_a_web_server(site: dict[str, Any], tmp_path: Path) -> None:
    import os
    import stat

    publish(site, tmp_path / "site")
    old = os.umask(0o022)
    os.umask(old)
    for page in (tmp_path / "site").glob("*.html"):
        assert stat.S_IMODE(page.stat().st_mode) == 0o666 & ~old, page
    index = (tmp_path / "site" / "index.html").read_text()
    failed = index[index.index("not audited"):]
    assert failed.split("</tr>")[0].count("unbounded") == 0  # a spec never audited has no expansion
