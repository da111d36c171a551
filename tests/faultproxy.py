"""A loopback JSON-RPC proxy in front of anvil that injects provider faults, bounded in count and time."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("drop", "delay", "429", "500", "503", "truncate", "wrong_ids", "413")
HEADER_NOT_FOUND = {"code": -32000, "message": "header not found"}


@dataclass
class ItemFault:
    """A fault on single JSON-RPC items inside an otherwise good reply, as load-balanced providers give.

    kind "error" answers with `error`; "result" replaces the node's result by `result` (a value, or a
    function of the real result); "block" asks the node at block tag `block` instead of the one requested.
    It hits items of `method` (any if None) whose params contain `contains` (case-insensitive), `count`
    times (None: every time, a persistent fault). `before_block`: only calls at a block number below it, as a
    node that keeps state for the latest blocks only (the default of most non-archive providers).
    """

    kind: str
    method: str | None = "eth_call"
    contains: str | None = None
    count: int | None = None
    error: dict[str, Any] = field(default_factory=lambda: dict(HEADER_NOT_FOUND))
    result: Any = None
    block: str = "latest"
    before_block: int | None = None
    hits: int = 0

    def take(self, request: dict[str, Any]) -> bool:
        if self.method is not None and request.get("method") != self.method:
            return False
        if self.contains is not None and self.contains.lower() not in json.dumps(request.get("params")).lower():
            return False
        if self.before_block is not None:
            params = request.get("params") or []
            tag = params[1] if len(params) > 1 else None
            if not (isinstance(tag, str) and tag.startswith("0x") and int(tag, 16) < self.before_block):
                return False
        if self.count is not None and self.hits >= self.count:
            return False
        self.hits += 1
        return True


def _at_block(request: dict[str, Any], block: str) -> dict[str, Any]:
    """The request asked at another block, as a lagging or misrouted backend would answer it."""
    position = {"eth_call": 1, "eth_getCode": 1, "eth_getBlockByNumber": 0}[request["method"]]
    params = list(request["params"])
    params[position] = block
    return {**request, "params": params}


@dataclass
class ProxyState:
    upstream: str
    faults: list[str] = field(default_factory=list)  # consumed one per request, in order
    item_faults: list[ItemFault] = field(default_factory=list)  # applied to every item they match
    delay_s: float = 1.5
    retry_after_s: str = "0"
    max_body: int | None = None  # 413 for larger request bodies
    max_log_span: int | None = None  # refuse eth_getLogs over wider ranges, like hosted providers
    log_error_style: str = "alchemy"
    refuse_overrides: bool = False
    methods: Counter[str] = field(default_factory=Counter)
    http_requests: int = 0
    faults_injected: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0  # requests being answered now
    most_in_flight: int = 0  # the most ever answered at once
    lock: threading.Lock = field(default_factory=threading.Lock)


def _forward(upstream: str, body: bytes) -> bytes:
    request = urllib.request.Request(upstream, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        data: bytes = reply.read()
        return data


def _log_error(state: ProxyState, request: dict[str, Any]) -> dict[str, Any] | None:
    if request.get("method") != "eth_getLogs" or state.max_log_span is None:
        return None
    window = request["params"][0]
    start, end = int(window["fromBlock"], 16), int(window["toBlock"], 16)
    if end - start + 1 <= state.max_log_span:
        return None
    if state.log_error_style == "alchemy":
        suggestion = f"[{hex(start)}, {hex(start + state.max_log_span - 1)}]"
        message = f"Log response size exceeded. Based on your parameters, this block range should work: {suggestion}"
    elif state.log_error_style == "limit":
        message = f"eth_getLogs is limited to a {state.max_log_span} range"
    else:
        message = "query exceeds max results, please narrow the range"
    return {"jsonrpc": "2.0", "id": request.get("id"), "error": {"code": -32602, "message": message}}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        state = self.server.state
        with state.lock:
            state.in_flight += 1
            state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            self._answer(state)
        finally:
            with state.lock:
                state.in_flight -= 1

    def _answer(self, state: ProxyState) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        payload = json.loads(body)
        requests = payload if isinstance(payload, list) else [payload]
        with state.lock:
            state.http_requests += 1
            for request in requests:
                state.methods[request.get("method", "?")] += 1
            fault = state.faults.pop(0) if state.faults else None
            if fault:
                state.faults_injected[fault] += 1
        if state.max_body is not None and len(body) > state.max_body:
            self._reply(413, b'{"error":"request body too large"}')
            return
        if fault == "drop":
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "delay":
            time.sleep(state.delay_s)
        if fault == "429":
            self._reply(429, b'{"error":"rate limited"}', {"Retry-After": state.retry_after_s})
            return
        if fault in ("500", "503"):
            self._reply(int(fault), b"internal error", {"Retry-After": state.retry_after_s} if fault == "503" else None)
            return
        if fault == "413":
            self._reply(413, b'{"error":"request body too large"}')
            return
        if state.refuse_overrides and any(
            r.get("method") == "eth_call" and len(r.get("params", [])) > 2 for r in requests
        ):
            errors = [{"jsonrpc": "2.0", "id": r.get("id"), "error": {"code": -32602, "message": "too many params"}}
                      for r in requests]
            self._reply(200, json.dumps(errors if isinstance(payload, list) else errors[0]).encode())
            return
        if state.item_faults:
            answers = _with_item_faults(state, requests)
            self._reply(200, json.dumps(answers if isinstance(payload, list) else answers[0]).encode())
            return
        refusals = [_log_error(state, r) for r in requests]
        if any(refusals):
            answers = [refusal or json.loads(_forward(state.upstream, json.dumps(r).encode()))
                       for r, refusal in zip(requests, refusals, strict=True)]
            self._reply(200, json.dumps(answers if isinstance(payload, list) else answers[0]).encode())
            return
        upstream = _forward(state.upstream, body)
        if fault == "truncate":
            self._reply(200, upstream[: max(1, len(upstream) // 2)])
            return
        if fault == "wrong_ids":
            answer = json.loads(upstream)
            for item in answer if isinstance(answer, list) else [answer]:
                item["id"] = 10_000 + int(item.get("id") or 0)
            self._reply(200, json.dumps(answer).encode())
            return
        self._reply(200, upstream)


def _with_item_faults(state: ProxyState, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with state.lock:
        chosen = [next((f for f in state.item_faults if f.take(r)), None) for r in requests]
        for fault in chosen:
            if fault is not None:
                state.faults_injected[f"item_{fault.kind}"] += 1
    sent = [_at_block(r, f.block) if f is not None and f.kind == "block" else r
            for r, f in zip(requests, chosen, strict=True)]
    answers = json.loads(_forward(state.upstream, json.dumps(sent).encode()))
    by_id = {a.get("id"): a for a in answers}
    out = []
    for request, fault in zip(requests, chosen, strict=True):
        answer = dict(by_id[request.get("id")])
        if fault is not None and fault.kind == "error":
            answer.pop("result", None)
            answer["error"] = fault.error
        elif fault is not None and fault.kind == "result":
            real = answer.get("result")
            answer["result"] = fault.result(real) if callable(fault.result) else fault.result
        out.append(answer)
    return out


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ProxyState


class FaultProxy:
    """Context manager: `with FaultProxy(anvil_url) as proxy: proxy.url, proxy.state`."""

    def __init__(self, upstream: str, **options: Any) -> None:
        self.state = ProxyState(upstream=upstream, **options)
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.state = self.state
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
