"""Issue 21: `auditor serve` on a free loopback port against the lab chain, queried with a real HTTP client."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import CliRunner

from auditor.api import Service, Settings, create_app
from auditor.cli import main
from tests.faultproxy import FaultProxy, ItemFault
from tests.test_gate import world  # noqa: F401 (the fixture: alpha 60% backed, markets lending on it)

KEY = "0x" + "42" * 32
BALANCE_OF = "70a08231"


class Served:
    """A uvicorn server in a thread, on a port the OS picked; `url`, `service`, `client` (httpx)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        config = uvicorn.Config(create_app(service), log_level="warning", proxy_headers=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.listener]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def close(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(10)
        self.service.close()


def settings(world: dict[str, Any], rpc_url: str | None = None, **more: Any) -> Settings:  # noqa: F811
    folder: Path = world["folder"]
    policies = folder.parent / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "strict.yaml").write_text("min_backing_ratio: 0.95\nmax_expansion: 1.1\n")
    from auditor.report.sign import resolve_signing_key

    signing = resolve_signing_key(None)  # AUDITOR_PRIVATE_KEY, from the key_env fixture
    return Settings(specs_dir=folder, registry_path=folder / "registry.yaml",
                    rpc={"ethereum": rpc_url or world["url"]}, policies_dir=policies, signing=signing,
                    use_cache=False, **more)


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITOR_PRIVATE_KEY", KEY)
    monkeypatch.setenv("AUDITOR_RPC_RETRIES", "1")


@pytest.fixture
def served(world: dict[str, Any], key_env: None) -> Iterator[Served]:  # noqa: F811
    api = Served(Service(settings(world)))
    try:
        yield api
    finally:
        api.close()


def cli_audit_json(world: dict[str, Any], tmp_path: Path, block: int) -> bytes:  # noqa: F811
    folder = world["folder"]
    out = tmp_path / "cli.json"
    result = CliRunner().invoke(main, ["audit", str(folder / "alpha.yaml"), "--registry", str(folder / "registry.yaml"),
                                       "--rpc", f"ethereum={world['url']}", "--block", f"ethereum={block}",
                                       "--json", str(out), "--no-cache"])
    assert result.exit_code == 0, result.output
    return out.read_bytes()


def test_audit_is_the_cli_json_byte_for_byte_and_kept_at_its_pin(served: Served, world: dict[str, Any],  # noqa: F811
                                                                  tmp_path: Path) -> None:
    block = world["block"]
    first = served.client.get(f"/v1/audit/alpha?block=ethereum:{block}")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/json"
    assert first.headers["x-audit"] == "run" and "immutable" in first.headers["cache-control"]
    assert first.content == cli_audit_json(world, tmp_path, block)
    figures = first.json()["backing"]["issuers"]["alpha"]
    assert figures["backing_ratio"] == "0.6" and figures["complete"] is True
    runs = served.service.counters.runs
    started = time.perf_counter()
    again = served.client.get(f"/v1/audit/alpha?block=ethereum:{block}")
    elapsed = time.perf_counter() - started
    assert again.headers["x-audit"] == "kept" and again.content == first.content
    assert served.service.counters.runs == runs  # no second audit
    assert elapsed < 0.5, f"a kept audit took {elapsed * 1000:.0f} ms"
    print(f"kept audit answered in {elapsed * 1000:.1f} ms")
    latest = served.client.get("/v1/audit/alpha")  # unpinned: audited, never kept
    assert latest.status_code == 200 and latest.headers["cache-control"] == "no-store"


def test_concurrent_identical_requests_share_one_audit(served: Served, world: dict[str, Any]) -> None:  # noqa: F811
    path = f"/v1/audit/alpha?block=ethereum:{world['block'] - 1}"
    runs = served.service.counters.runs
    gate = threading.Barrier(8)

    def ask(_: int) -> httpx.Response:
        with httpx.Client(base_url=served.url, timeout=60) as client:
            gate.wait()
            return client.get(path)

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    elapsed = time.perf_counter() - started
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert served.service.counters.runs == runs + 1, "8 identical requests ran more than one audit"
    sources = sorted(a.headers["x-audit"] for a in answers)
    assert sources.count("run") == 1 and set(sources) <= {"run", "shared", "kept"}
    print(f"8 concurrent identical requests: 1 audit, {elapsed * 1000:.0f} ms, {sources}")


def test_check_applies_a_named_policy(served: Served, world: dict[str, Any]) -> None:  # noqa: F811
    answer = served.client.get(f"/v1/check/alpha?policy=strict&block=ethereum:{world['block']}")
    assert answer.status_code == 200, answer.text
    gate = answer.json()
    assert gate["passed"] is False and gate["decided"] is True
    assert {c["id"]: c["passed"] for c in gate["checks"]} == {"min-backing-ratio": False, "max-expansion": False}
    for path, status, code in [("/v1/check/alpha?policy=lenient", 404, "unknown-policy"),
                               ("/v1/check/alpha?policy=../registry", 400, "bad-policy"),
                               ("/v1/check/alpha", 400, "bad-policy")]:
        bad = served.client.get(path)
        assert (bad.status_code, bad.json()["error"]["code"]) == (status, code), path


def test_report_is_signed_html_that_verifies(served: Served, world: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    from eth_account import Account

    answer = served.client.get(f"/v1/reports/alpha?block=ethereum:{world['block']}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    signer = Account.from_key(KEY).address
    assert answer.headers["x-report-signer"] == signer
    page = tmp_path / "alpha.html"
    page.write_bytes(answer.content)
    verified = CliRunner().invoke(main, ["verify", str(page), "--signer", signer])
    assert verified.exit_code == 0, verified.output


def raw(url: str, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    """A request exactly as written (no client-side normalisation of dots or escapes)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/v1/audit/nope", 404, "unknown-token"),
    ("GET", "/v1/audit/registry", 404, "unknown-token"),
    ("GET", "/v1/audit/ALPHA", 400, "bad-id"),  # a symbol is not an id (agents may use symbols over MCP)
    ("GET", "/v1/audit/alpha.yaml", 400, "bad-id"),
    ("GET", "/v1/audit/..%2F..%2Fetc%2Fpasswd", 404, "not-found"),
    ("GET", "/v1/audit/../registry", 404, "not-found"),
    ("GET", "/v1/audit/%2e%2e", 400, "bad-id"),
    ("GET", "/v1/audit/alpha%00", 400, "bad-id"),
    ("GET", "/v1/audit/alpha?block=ethereum:12x", 400, "bad-block"),
    ("GET", "/v1/audit/alpha?block=mars:1", 400, "bad-block"),
    ("GET", "/v1/audit/alpha?block=ethereum:1&block=ethereum:2", 400, "bad-block"),
    ("GET", "/v1/audit/alpha?at=yesterday", 400, "bad-time"),
    ("GET", "/v1/audit/alpha?spec=../../x", 400, "bad-parameter"),
    ("GET", "/v1/audit/alpha?" + "&".join(f"block=c{i}:1" for i in range(17)), 400, "too-many-parameters"),
    ("GET", "/v1/audit/alpha?at=" + "9" * 3000, 414, "url-too-long"),
    ("POST", "/v1/audit/alpha", 405, "read-only"),
    ("DELETE", "/v1/tokens", 405, "read-only"),
    ("GET", "/nothing/here", 404, "not-found"),
])
def test_bad_requests_get_a_json_4xx(served: Served, method: str, path: str, status: int, code: str) -> None:
    got, body = raw(served.url, method, path)
    assert (got, body["error"]["code"]) == (status, code), body
    assert body["error"]["status"] == status and body["error"]["message"]


def test_a_body_is_refused(served: Served) -> None:
    got, body = raw(served.url, "GET", "/v1/tokens", b"x" * 100)
    assert (got, body["error"]["code"]) == (413, "body-refused")


def test_tokens_health_and_openapi(served: Served, world: dict[str, Any]) -> None:  # noqa: F811
    listed = served.client.get("/v1/tokens").json()["tokens"]
    assert [t["id"] for t in listed] == ["alpha"] and listed[0]["symbol"] == "ALPHA"
    assert listed[0]["chains"] == ["ethereum"]
    assert served.client.get("/healthz").json()["status"] == "ok"
    schema = served.client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert {"/healthz", "/v1/tokens", "/v1/audit/{spec_id}", "/v1/check/{spec_id}",
            "/v1/reports/{spec_id}"} <= set(schema["paths"])
    parameters = {p["name"] for p in schema["paths"]["/v1/audit/{spec_id}"]["get"]["parameters"]}
    assert parameters == {"spec_id", "block", "at"}


def test_rate_limit_per_client(world: dict[str, Any], key_env: None) -> None:  # noqa: F811
    api = Served(Service(settings(world, rate_per_minute=3)))
    try:
        codes = [api.client.get("/healthz").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = api.client.get("/v1/tokens")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["code"] == "rate-limited"
    finally:
        api.close()


def test_an_unreachable_chain_is_a_503_with_the_reason(world: dict[str, Any], key_env: None) -> None:  # noqa: F811
    with FaultProxy(world["url"], faults=["503"] * 200) as proxy:
        api = Served(Service(settings(world, proxy.url)))
        try:
            for path in (f"/v1/audit/alpha?block=ethereum:{world['block']}", "/v1/reports/alpha",
                         "/v1/check/alpha?policy=strict"):
                answer = api.client.get(path)
                assert answer.status_code == 503, answer.text
                error = answer.json()["error"]
                assert error["code"] in {"chain-unavailable", "cannot-audit"} and "503" in error["message"], error
                assert "backing" not in answer.text
            assert api.client.get("/healthz").status_code == 200
        finally:
            api.close()


def test_a_failed_read_is_a_503_never_partial_figures(world: dict[str, Any], key_env: None) -> None:  # noqa: F811
    with FaultProxy(world["url"], item_faults=[ItemFault("error", contains=BALANCE_OF)]) as proxy:
        api = Served(Service(settings(world, proxy.url)))
        try:
            path = f"/v1/audit/alpha?block=ethereum:{world['block']}"
            for _ in range(2):  # a failed audit is not kept
                answer = api.client.get(path)
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["code"] in {"incomplete", "chain-unavailable"}
                assert "header not found" in answer.json()["error"]["message"]
                assert "verifiable_backing" not in answer.text
            assert api.service.counters.runs == 2
        finally:
            api.close()


def test_serve_command_listens_and_says_where(world: dict[str, Any], key_env: None) -> None:  # noqa: F811
    folder = world["folder"]
    process = subprocess.Popen([sys.executable, "-m", "auditor.cli", "serve", "--port", "0", "--json",
                                "--specs", str(folder), "--rpc", f"ethereum={world['url']}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        said = json.loads(process.stdout.readline())
        assert said["specs"] == ["alpha"] and said["url"].startswith("http://127.0.0.1:")
        assert httpx.get(said["url"] + "/healthz", timeout=10).json()["specs"] == 1
    finally:
        process.terminate()
        process.wait(10)
    help_text = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "Examples:" in help_text and "/v1/audit/ID" in help_text
    bad = CliRunner().invoke(main, ["serve", "--specs", str(folder / "missing")])
    assert bad.exit_code == 2 and "no such folder" in bad.output


def test_at_pins_by_time_and_a_slow_node_is_a_504(world: dict[str, Any], key_env: None) -> None:  # noqa: F811
    with FaultProxy(world["url"]) as proxy:
        api = Served(Service(settings(world, proxy.url, timeout_s=0.5)))
        try:
            pinned = api.client.get(f"/v1/audit/alpha?block=ethereum:{world['block']}").json()["pins"]["ethereum"]
            offset = pinned["time"].replace("Z", "+00:00")  # sent unescaped: the "+" arrives as a space
            by_time = api.client.get("/v1/audit/alpha", params={"at": offset.replace("+", " ")})
            assert by_time.status_code == 200, by_time.text
            assert by_time.json()["pins"]["ethereum"]["number"] >= world["block"]
            proxy.state.faults = ["delay"] * 50  # every answer 1.5 s late
            slow = api.client.get(f"/v1/audit/alpha?block=ethereum:{world['block'] - 2}")
            assert slow.status_code == 504 and slow.json()["error"]["code"] == "timeout"
            assert int(slow.headers["retry-after"]) > 0
            proxy.state.faults = []
            deadline = time.monotonic() + 30  # the audit went on; once done it is kept, and answered at once
            while (again := api.client.get(str(slow.request.url))).status_code == 504:
                assert time.monotonic() < deadline
            assert again.status_code == 200 and again.headers["x-audit"] in {"shared", "kept"}
            assert api.service.counters.runs == 3
        finally:
            proxy.state.faults = []
            api.close()
