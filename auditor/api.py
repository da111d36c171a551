"""`auditor serve`: a read-only HTTP API over the audits the command line runs, and the service it shares with MCP.

`Service` is the part both front ends use: the specs of one folder (ids checked against the spec-id pattern,
never used as paths), the registry, and audits run by the same code as `auditor audit --json`. Audits pinned at
fixed blocks are kept (an audit at a pin never changes); identical requests in flight share one run; a bounded
pool runs at most `max_parallel` audits at a time and refuses work past `max_queue`. A failed read or an
unreachable node is an error with its reason, never figures: `ServiceError` carries the HTTP status.

`create_app` wraps it in a Starlette app: routes, JSON errors, a per-client rate limit, request limits and the
OpenAPI schema (built from the endpoints' docstrings, after their `---`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator

from auditor import __version__
from auditor.audit_output import audit_text
from auditor.findings import AuditResult
from auditor.spec import SPEC_ID, Registry, Spec

BLOCK_TAGS = ("latest", "finalized", "safe")
MAX_URL = 2048  # path and query, in bytes
MAX_PARAMS = 16  # query parameters per request
AT_SPACE = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+ \d\d:\d\d")
SETTLED_AFTER = dt.timedelta(minutes=10)  # an `at` this far in the past pins the same blocks every time


class ServiceError(Exception):
    """An answer that is not figures: HTTP status, a short code and the reason, said once."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"status": self.status, "code": self.code, "message": self.message}}


@dataclass(frozen=True)
class Settings:
    specs_dir: Path
    registry_path: Path
    rpc: Mapping[str, str] = field(default_factory=dict)
    policies_dir: Path | None = None
    signing: tuple[bytes, str] | None = None  # key, and where it came from (said, never printed)
    use_cache: bool = True  # the on-disk cache of pinned reads (`auditor audit --no-cache` when False)
    max_parallel: int = 2  # audits running at once
    max_queue: int = 16  # distinct audits running or waiting; past it, 503 busy
    timeout_s: float = 120.0  # a request waits this long for its audit (which still finishes and is kept)
    rate_per_minute: int = 60  # per client address
    kept: int = 256  # pinned audits (and their signed reports) kept in memory


@dataclass(frozen=True)
class Pins:
    """What a request pins: `--block`-style pins per chain and an optional time; `fixed` when the blocks are."""

    blocks: tuple[tuple[str, str | int], ...] = ()
    at: dt.datetime | None = None
    fixed: bool = False

    def key(self) -> tuple[Any, ...]:
        return (self.blocks, self.at.isoformat() if self.at else None)


@dataclass
class Counters:
    runs: int = 0  # audits actually run
    kept_hits: int = 0  # answered from kept pinned audits
    shared: int = 0  # requests that joined an audit already in flight


class Service:
    """The specs of one folder and the audits of them, kept at fixed pins and shared while in flight."""

    def __init__(self, settings: Settings) -> None:
        from auditor.audit import known_specs
        from auditor.ledger import chains_needed, issuers_in_audit
        from auditor.spec import load_registry, load_spec, spec_paths

        self.settings = settings
        self.registry: Registry = load_registry(settings.registry_path)
        self.specs: dict[str, Spec] = {}
        self.chains: dict[str, tuple[str, ...]] = {}  # spec id -> every chain its audit pins
        for path in spec_paths([settings.specs_dir]):
            spec = load_spec(path, self.registry)
            self.specs[spec.id] = spec
            known = known_specs(spec, self.registry)
            self.chains[spec.id] = tuple(chains_needed(known, issuers_in_audit(spec.id, known)))
        self.counters = Counters()
        self._pool = ThreadPoolExecutor(max_workers=max(1, settings.max_parallel), thread_name_prefix="audit")
        self._lock = threading.RLock()  # a report starts its audit while holding it
        self._flight: dict[tuple[Any, ...], Future[Any]] = {}
        self._kept: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- what a request names ------------------------------------------------------------------------------

    def spec(self, token: str, by_symbol: bool = False) -> Spec:
        """A spec by id (or, for agents, by token symbol): checked against the id pattern, never used as a path."""
        if SPEC_ID.fullmatch(token) and token in self.specs:
            return self.specs[token]
        named = [s for s in self.specs.values() if by_symbol and s.token.symbol.lower() == token.lower()]
        if len(named) == 1:
            return named[0]
        if not SPEC_ID.fullmatch(token) and not named:
            raise ServiceError(400, "bad-id", "a token id is lowercase letters, digits and dashes (at most 64), "
                                              "as the spec file's name: see /v1/tokens")
        raise ServiceError(404, "unknown-token", f"no spec {token!r} here; known: {', '.join(sorted(self.specs))}")

    def spec_path(self, spec: Spec) -> Path:
        return self.settings.specs_dir / f"{spec.id}.yaml"

    def pins(self, spec: Spec, blocks: Sequence[str] = (), at: str | None = None) -> Pins:
        """`block=chain:N` (or latest/finalized/safe) values and an ISO `at`, checked; 400 on anything else."""
        from auditor.audit import parse_time
        from auditor.chain.rpc import ConfigError

        pinned: dict[str, str | int] = {}
        for value in blocks:
            name, sep, number = value.partition(":")
            if not sep or name not in self.registry.chains:
                raise ServiceError(400, "bad-block", f"block={value[:80]!r}: expected CHAIN:N with a registry chain "
                                                     f"({', '.join(self.registry.chains)})")
            if not (number in BLOCK_TAGS or (number.isascii() and number.isdigit() and len(number) <= 12)):
                raise ServiceError(400, "bad-block", f"block={value[:80]!r}: N is a block number or "
                                                     f"{'/'.join(BLOCK_TAGS)}")
            if name in pinned:
                raise ServiceError(400, "bad-block", f"block: {name} pinned twice")
            pinned[name] = int(number) if number.isdigit() else number
        when = None
        if at is not None:
            if AT_SPACE.fullmatch(at):  # an unescaped "+01:00" offset reads as " 01:00" in a query string
                at = at[:-6] + "+" + at[-5:]
            if len(at) > 40:
                raise ServiceError(400, "bad-time", "at: expected an ISO time such as 2025-10-28T00:00:00Z")
            try:
                when = parse_time(at)
            except ConfigError as exc:
                raise ServiceError(400, "bad-time", str(exc).replace("--at", "at")) from None
        needed = self.chains.get(spec.id, ())
        fixed = bool(needed) and all(isinstance(pinned.get(n), int) for n in needed)
        if when is not None and not any(isinstance(pinned.get(n), str) for n in needed):
            fixed = fixed or when <= dt.datetime.now(dt.UTC) - SETTLED_AFTER
        return Pins(tuple(sorted(pinned.items())), when, fixed)

    # -- audits, kept and shared ---------------------------------------------------------------------------

    def audit(self, spec: Spec, pins: Pins) -> tuple[Future[AuditResult], str]:
        """The audit of `spec` at `pins`, and whether it was kept, shared with a request in flight, or run.

        Kept when the pins are fixed and every read answered; one run per key at a time."""
        return self._shared(("audit", spec.id, *pins.key()), pins.fixed,
                            lambda: self._pool.submit(self._run_audit, spec, pins))

    def report(self, spec: Spec, pins: Pins) -> tuple[Future[tuple[str, dict[str, Any]]], str]:
        """The signed HTML report of the audit at `pins` and its signature block (an incomplete audit: an error)."""
        return self._shared(("report", spec.id, *pins.key()), pins.fixed,
                            lambda: then(self.audit(spec, pins)[0], self._sign))

    def _shared(self, key: tuple[Any, ...], keep: bool, start: Callable[[], Future[Any]]) -> tuple[Future[Any], str]:
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                self.counters.kept_hits += 1
                done: Future[Any] = Future()
                done.set_result(self._kept[key])
                return done, "kept"
            if key in self._flight:
                self.counters.shared += 1
                return self._flight[key], "shared"
            if len(self._flight) >= self.settings.max_queue:
                raise ServiceError(503, "busy", f"{len(self._flight)} audits already running or waiting; retry "
                                                "shortly", retry_after=5)
            future = start()
            self._flight[key] = future

        def settle(finished: Future[Any]) -> None:
            with self._lock:
                self._flight.pop(key, None)
                if keep and not finished.cancelled() and finished.exception() is None:
                    self._kept[key] = finished.result()
                    while len(self._kept) > self.settings.kept:
                        self._kept.popitem(last=False)

        future.add_done_callback(settle)
        return future, "run"

    def _run_audit(self, spec: Spec, pins: Pins) -> AuditResult:
        from auditor.audit_output import audit_with_inputs
        from auditor.chain.reader import ConnectOptions
        from auditor.chain.rpc import ChainError, ConfigError
        from auditor.spec import SpecError

        with self._lock:
            self.counters.runs += 1
        options = ConnectOptions(rpc=dict(self.settings.rpc), blocks=dict(pins.blocks), at=pins.at,
                                 use_cache=self.settings.use_cache)
        try:
            result = audit_with_inputs(spec, self.registry, options, self.spec_path(spec), self.settings.registry_path)
        except ChainError as exc:
            raise ServiceError(503, "chain-unavailable", f"{exc}; the audit is incomplete and no figures are "
                                                         "given") from None
        except ConfigError as exc:  # the server's set-up (no node for a chain, a wrong chain id) or a pin it refused
            raise ServiceError(503, "cannot-audit", f"{exc}; no figures are given") from None
        except SpecError as exc:
            raise ServiceError(422, "bad-spec", str(exc)) from None
        if not result.complete:
            raise ServiceError(503, "incomplete", f"the audit is incomplete: {result.why_incomplete()}; no figures "
                                                  "are given; retry when the node answers", retry_after=30)
        return result

    def _sign(self, result: AuditResult) -> tuple[str, dict[str, Any]]:
        from auditor.report.publish import write_report

        if self.settings.signing is None:
            raise ServiceError(503, "no-key", "this server has no signing key: reports are not served")
        with tempfile.TemporaryDirectory(prefix="auditor-report-") as folder:
            path = Path(folder) / f"{result.spec}.html"
            signature = write_report(result.document, path, self.settings.signing[0])
            assert signature is not None  # a key was given
            return path.read_text(encoding="utf-8"), signature.as_dict()

    def check(self, spec: Spec, pins: Pins, policy_name: str) -> tuple[Future[str], str]:
        """`auditor check SPEC --policy NAME --format json`, on the shared audit."""
        from auditor.gate import evaluate, load_policy, render
        from auditor.spec import SpecError

        folder = self.settings.policies_dir
        if folder is None:
            raise ServiceError(404, "no-policies", "this server serves no policies (auditor serve --policies DIR)")
        if not SPEC_ID.fullmatch(policy_name):
            raise ServiceError(400, "bad-policy", "a policy name is lowercase letters, digits and dashes: the name "
                                                  "of a .yaml file in the server's policies folder")
        path = folder / f"{policy_name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in folder.glob("*.yaml") if SPEC_ID.fullmatch(p.stem))
            raise ServiceError(404, "unknown-policy", f"no policy {policy_name!r}; known: {', '.join(known)}")
        try:
            policy = load_policy(path)
        except SpecError as exc:
            raise ServiceError(422, "bad-policy", str(exc)) from None
        def apply(result: AuditResult) -> str:
            checks = evaluate(result, policy, str(self.spec_path(spec)))
            return render(checks, "json", {result.spec: result.coverage.get(result.spec)})

        audited, source = self.audit(spec, pins)
        return then(audited, apply), source

    def exposure(self, token: str, chain: str) -> dict[str, Any]:
        """Who lends against `token` (an address, or a spec's id or symbol) on `chain`, as `auditor exposure`."""
        from auditor.chain.reader import ConnectOptions, connect
        from auditor.chain.rpc import ChainError
        from auditor.exposure import run_exposure

        if chain not in self.registry.chains:
            raise ServiceError(400, "bad-chain", f"chain {chain[:40]!r} is not in the registry "
                                                 f"({', '.join(self.registry.chains)})")
        if token.startswith("0x"):
            if len(token) != 42 or not all(c in "0123456789abcdefABCDEF" for c in token[2:]):
                raise ServiceError(400, "bad-address", "an address is 0x and 40 hex digits")
            address = token
        else:
            spec = self.spec(token, by_symbol=True)
            found = [d.address for d in spec.token.deployments if d.chain == chain]
            if not found:
                raise ServiceError(404, "not-on-chain", f"{spec.id} has no deployment on {chain}")
            address = found[0]
        try:
            client = connect({chain: self.registry.chains[chain]},
                             ConnectOptions(rpc=dict(self.settings.rpc), use_cache=self.settings.use_cache))[chain]
            return run_exposure(address, chain, self.registry, client)
        except ChainError as exc:
            raise ServiceError(503, "chain-unavailable", f"{exc}; no exposure map is given") from None


def then(future: Future[Any], step: Callable[[Any], Any]) -> Future[Any]:
    """A future of `step(result)`, run in the thread that finished `future`; its error, if it failed."""
    chained: Future[Any] = Future()

    def go(done: Future[Any]) -> None:
        try:
            chained.set_result(step(done.result()))
        except BaseException as exc:  # handed to whoever waits, which answers it
            chained.set_exception(exc)

    future.add_done_callback(go)
    return chained


def backing_summary(result: AuditResult) -> dict[str, Any]:
    """Is the audited token backed: its figures as exact strings, and a yes only when every read answered."""
    figures = result.backing.issuers[result.spec]
    shown = result.document["backing"]["issuers"][result.spec]
    ratio: Decimal | None = figures.backing_ratio
    return {
        "spec": result.spec,
        "token": result.token,
        "backed": bool(result.complete and ratio is not None and ratio >= 1),
        "complete": result.complete,
        "bound": result.bound(result.spec),
        "backing_ratio": shown["backing_ratio"],
        "expansion_ratio": shown["expansion_ratio"],
        "supply_usd": shown["supply_usd"],
        "verifiable_backing_usd": shown["verifiable_backing_usd"],
        "coverage": shown["coverage"],
        "flags": [{"id": f["id"], "severity": f["severity"], "issuer": f.get("issuer")}
                  for f in result.document["flags"]],
        "pins": {name: {"number": pin["number"], "time": pin["time"]} for name, pin in result.document["pins"].items()},
    }


# -- the HTTP front end ----------------------------------------------------------------------------------------


def _error(exc: ServiceError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return JSONResponse(exc.as_dict(), status_code=exc.status, headers=headers)


async def _wait(service: Service, future: Future[Any]) -> Any:
    try:
        return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), service.settings.timeout_s)
    except TimeoutError:
        raise ServiceError(504, "timeout", f"the audit took more than {service.settings.timeout_s:g} s; it goes on, "
                                           "and a pinned one is kept: ask again shortly", retry_after=10) from None


def _target(request: Request) -> tuple[Service, Spec, Pins]:
    """The service, the spec the path names and the pins the query asks for, each checked (4xx otherwise)."""
    service: Service = request.app.state.service
    spec = service.spec(request.path_params["spec_id"])
    blocks, at = _query(request)
    return service, spec, service.pins(spec, blocks, at)


def _query(request: Request) -> tuple[list[str], str | None]:
    allowed = {"block", "at", "policy"}
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise ServiceError(400, "bad-parameter", f"unknown parameter {unknown[0][:40]!r}; known: "
                                                 f"{', '.join(sorted(allowed))}")
    ats = request.query_params.getlist("at")
    if len(ats) > 1:
        raise ServiceError(400, "bad-time", "at: give one time")
    return request.query_params.getlist("block"), (ats[0] if ats else None)


def _cache_headers(pins: Pins, source: str) -> dict[str, str]:
    """Pinned answers never change; `X-Audit` says kept, shared (joined a run in flight) or run."""
    control = "public, max-age=86400, immutable" if pins.fixed else "no-store"
    return {"Cache-Control": control, "X-Audit": source}


async def healthz(request: Request) -> Response:
    """Liveness, and how many specs are served.
    ---
    summary: Liveness
    responses:
      200: {description: "{status: ok, version, specs}"}
    """
    service: Service = request.app.state.service
    return JSONResponse({"status": "ok", "version": __version__, "specs": len(service.specs)})


async def tokens(request: Request) -> Response:
    """Every spec served: id, name, symbol, deployments and the chains its audit pins.
    ---
    summary: Tokens with a spec
    responses:
      200: {description: "{tokens: [{id, name, symbol, deployments: [{chain, address, bridged}], chains}]}"}
    """
    service: Service = request.app.state.service
    rows = [{"id": s.id, "name": s.name, "symbol": s.token.symbol, "chains": list(service.chains[s.id]),
             "deployments": [{"chain": d.chain, "address": d.address, "bridged": d.bridged}
                             for d in s.token.deployments]}
            for s in sorted(service.specs.values(), key=lambda s: s.id)]
    return JSONResponse({"tokens": rows})


async def audit(request: Request) -> Response:
    """The findings of an audit: the same JSON as `auditor audit --json`, or an error, never partial figures.
    ---
    summary: Audit a token
    parameters:
      - {name: spec_id, in: path, required: true, schema: {type: string, pattern: "^[a-z0-9][a-z0-9-]{0,63}$"}}
      - {name: block, in: query, schema: {type: array, items: {type: string}}, style: form, explode: true,
         description: "CHAIN:N or CHAIN:latest|finalized|safe; repeat per chain"}
      - {name: at, in: query, schema: {type: string, format: date-time},
         description: "pin every chain at its last block at or before this time"}
    responses:
      200: {description: "findings (kept when every chain is pinned at a number: X-Audit: kept)"}
      400: {description: "bad id, block or time: {error: {status, code, message}}"}
      404: {description: "unknown token"}
      503: {description: "a read failed or a node is unreachable: the reason, no figures"}
      504: {description: "the audit is still running"}
    """
    service, spec, pins = _target(request)
    future, source = service.audit(spec, pins)
    result: AuditResult = await _wait(service, future)
    return Response(audit_text(result), media_type="application/json", headers=_cache_headers(pins, source))


async def check(request: Request) -> Response:
    """A named policy applied to the audit: the JSON of `auditor check --format json`.
    ---
    summary: Apply a named policy
    parameters:
      - {name: spec_id, in: path, required: true, schema: {type: string}}
      - {name: policy, in: query, required: true, schema: {type: string},
         description: "a policy file's name (without .yaml) in the server's policies folder"}
      - {name: block, in: query, schema: {type: array, items: {type: string}}, style: form, explode: true}
      - {name: at, in: query, schema: {type: string, format: date-time}}
    responses:
      200: {description: "{passed, decided, coverage, checks: [...]}"}
      404: {description: "unknown token or policy"}
      503: {description: "the audit could not be completed: the gate does not decide on missing reads"}
    """
    service, spec, pins = _target(request)
    names = request.query_params.getlist("policy")
    if len(names) != 1:
        raise ServiceError(400, "bad-policy", "give one policy=NAME")
    future, source = service.check(spec, pins, names[0])
    text: str = await _wait(service, future)
    return Response(text, media_type="application/json", headers=_cache_headers(pins, source))


async def report(request: Request) -> Response:
    """The signed, self-contained HTML report of the audit (verify it with `auditor verify`).
    ---
    summary: Signed HTML report
    parameters:
      - {name: spec_id, in: path, required: true, schema: {type: string}}
      - {name: block, in: query, schema: {type: array, items: {type: string}}, style: form, explode: true}
      - {name: at, in: query, schema: {type: string, format: date-time}}
    responses:
      200: {description: "text/html; X-Report-Signer and X-Report-Digest name the signature"}
      503: {description: "an incomplete audit is never signed"}
    """
    service, spec, pins = _target(request)
    future, source = service.report(spec, pins)
    html, signature = await _wait(service, future)
    headers = {**_cache_headers(pins, source), "X-Report-Signer": signature["signer"],
               "X-Report-Digest": signature["digest"]}
    return HTMLResponse(html, headers=headers)


async def openapi(request: Request) -> Response:
    """This document."""
    generator: SchemaGenerator = request.app.state.schemas
    return JSONResponse(generator.get_schema(routes=request.app.routes))


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class Limits(BaseHTTPMiddleware):
    """Read-only and small: GET only, no body, a bounded URL, and a token bucket per client address."""

    def __init__(self, app: Any, rate_per_minute: int) -> None:
        super().__init__(app)
        self.rate = max(1, rate_per_minute)
        self.buckets: dict[str, _Bucket] = {}
        self.lock = threading.Lock()

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _error(ServiceError(405, "read-only", f"{request.method[:16]} is not served: this API is "
                                                         "read-only (GET)"))
        if request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers:
            return _error(ServiceError(413, "body-refused", "requests carry no body"))
        size = len(request.scope.get("raw_path") or b"") + len(request.scope.get("query_string") or b"")
        if size > MAX_URL:
            return _error(ServiceError(414, "url-too-long", f"the URL is {size} bytes; at most {MAX_URL}"))
        if len(request.query_params.multi_items()) > MAX_PARAMS:
            return _error(ServiceError(400, "too-many-parameters", f"at most {MAX_PARAMS} query parameters"))
        wait = self._take(request.client.host if request.client else "unknown")
        if wait > 0:
            return _error(ServiceError(429, "rate-limited", f"at most {self.rate} requests a minute per client",
                                       retry_after=math.ceil(wait)))
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    def _take(self, client: str) -> float:
        """Take a token from the client's bucket; the seconds to wait when it is empty (0 when allowed)."""
        now = time.monotonic()
        per_second = self.rate / 60
        with self.lock:
            if len(self.buckets) > 10_000:  # forget clients whose buckets are full again
                self.buckets = {k: b for k, b in self.buckets.items() if (now - b.stamp) * per_second < self.rate}
            bucket = self.buckets.setdefault(client, _Bucket(float(self.rate), now))
            bucket.tokens = min(float(self.rate), bucket.tokens + (now - bucket.stamp) * per_second)
            bucket.stamp = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / per_second


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return _error(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    message = "no such resource: see /openapi.json" if exc.status_code == 404 else str(exc.detail)
    return _error(ServiceError(exc.status_code, code, message))


async def _crash(request: Request, exc: Exception) -> Response:
    # Never the traceback, nor the text of an error this module did not write: it may quote chain data.
    return _error(ServiceError(500, "internal", f"the server failed on this request ({type(exc).__name__})"))


def create_app(service: Service) -> Starlette:
    """The read-only API over `service`."""
    routes = [
        Route("/healthz", healthz),
        Route("/v1/tokens", tokens),
        Route("/v1/audit/{spec_id}", audit),
        Route("/v1/check/{spec_id}", check),
        Route("/v1/reports/{spec_id}", report),
        Route("/openapi.json", openapi, include_in_schema=False),
    ]
    app = Starlette(routes=routes,
                    middleware=[Middleware(Limits, rate_per_minute=service.settings.rate_per_minute)],
                    exception_handlers={ServiceError: _service_error, HTTPException: _http_error, Exception: _crash})
    app.state.service = service
    app.state.schemas = SchemaGenerator({
        "openapi": "3.0.0",
        "info": {"title": "reserve-auditor", "version": __version__,
                 "description": "Read-only audits of yield-bearing tokens from chain state. Errors are "
                                "{error: {status, code, message}}; an incomplete audit is a 503, never figures."},
    })
    return app
