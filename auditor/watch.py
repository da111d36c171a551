"""`auditor watch`: re-audit as the chain moves and alert on transitions only.

A condition is one thing that can be true of an audit: `flag:ID` (or `flag:ID:ISSUER` for another issuer of the
audit), `check:ID` (a policy check that failed), `audit:incomplete`. Every audit gives the set of conditions now
true; the difference with the stored set is the alerts: `raised` and `cleared`.

Fail closed, and never cry wolf:
- a node that cannot be reached is an outage: back off (doubling, capped), never an alert;
- an audit whose reads failed raises `audit:incomplete` and leaves every other condition as it was: no flag is
  raised or cleared from figures the chain did not give;
- state and the alerts it produced are written in one SQLite transaction, then delivered (JSON lines on stdout,
  a webhook with an HMAC-SHA256 signature); a restart resumes from the stored state and delivers only what was
  not delivered, so no alert repeats.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from auditor.audit import AuditRequest, run_audit
from auditor.chain.notify import post
from auditor.chain.reader import ConnectOptions, connect
from auditor.chain.rpc import ChainError
from auditor.findings import AuditResult
from auditor.policy import Policy
from auditor.spec import Registry, Spec
from auditor.text import inert

INCOMPLETE = "audit:incomplete"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS conditions (name TEXT PRIMARY KEY, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert TEXT NOT NULL,
    printed INTEGER NOT NULL DEFAULT 0,
    posted INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class Condition:
    name: str
    detail: dict[str, Any]  # severity and message of a flag, message of a check: what the alert says


def conditions_of(result: AuditResult, policy: Policy | None) -> dict[str, Condition]:
    """What is true of one audit whose reads all answered."""
    from auditor.gate import evaluate

    issuer = result.spec
    found: dict[str, Condition] = {}
    for flag in result.flags:
        name = f"flag:{flag.id}" if flag.issuer in (None, issuer) else f"flag:{flag.id}:{flag.issuer}"
        if name not in found:  # one flag on several markets is one condition; its first message speaks for it
            found[name] = Condition(name, {"severity": str(flag.severity), "message": flag.message})
    for check in evaluate(result, policy) if policy is not None else []:
        if check.decided and not check.passed:
            found[f"check:{check.id}"] = Condition(f"check:{check.id}", {"message": check.message})
    return found


def transitions(before: Mapping[str, Mapping[str, Any]], now: Mapping[str, Condition]) -> list[dict[str, Any]]:
    """Raised (now true, not before) then cleared (true before, not now), each sorted by name."""
    raised = [{"kind": "raised", "condition": name, **now[name].detail} for name in sorted(set(now) - set(before))]
    cleared = [{"kind": "cleared", "condition": name, **dict(before[name])} for name in sorted(set(before) - set(now))]
    return raised + cleared


class Store:
    """The watch's memory: the conditions of the last decided audit, the last block audited, the outbox."""

    def __init__(self, path: Path) -> None:
        from auditor.chain.rpc import ConfigError

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), isolation_level=None)
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"--state {path}: cannot use it as the watch's SQLite state ({exc})") from None

    def close(self) -> None:
        self.db.close()

    def conditions(self) -> dict[str, dict[str, Any]]:
        return {name: json.loads(detail) for name, detail in self.db.execute("SELECT name, detail FROM conditions")}

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def commit(self, conditions: Mapping[str, Condition], alerts: Iterable[dict[str, Any]],
               meta: Mapping[str, str]) -> None:
        """The new state and the alerts it produced, all or nothing."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("DELETE FROM conditions")
            self.db.executemany("INSERT INTO conditions VALUES (?, ?)",
                                [(c.name, json.dumps(c.detail, sort_keys=True)) for c in conditions.values()])
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", sorted(meta.items()))
            for alert in alerts:
                self.db.execute("INSERT INTO outbox (alert) VALUES (?)", (json.dumps(alert, sort_keys=True),))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def pending(self, column: str) -> list[tuple[int, dict[str, Any]]]:
        assert column in ("printed", "posted")
        rows = self.db.execute(f"SELECT seq, alert FROM outbox WHERE {column} = 0 ORDER BY seq")  # noqa: S608
        return [(int(seq), json.loads(alert)) for seq, alert in rows]

    def mark(self, column: str, seq: int) -> None:
        assert column in ("printed", "posted")
        self.db.execute(f"UPDATE outbox SET {column} = 1 WHERE seq = ?", (seq,))  # noqa: S608


@dataclass
class Watch:
    spec: Spec
    registry: Registry
    policy: Policy | None
    options: ConnectOptions
    store: Store
    say: Callable[[str], None]  # status lines (stderr): outages, back-off; never alerts
    emit: Callable[[str], None]  # alert lines (stdout)
    webhook: str | None = None
    secret: bytes = b""
    every_blocks: int = 1
    interval_s: float | None = None
    poll_s: float = 12.0
    backoff_s: float = 5.0
    max_backoff_s: float = 600.0
    sleep: Callable[[float], None] = time.sleep
    breached: bool = field(default=False, init=False)

    @property
    def home(self) -> str:
        return self.spec.token.deployments[0].chain

    def head(self) -> int:
        """The home chain's latest block (one batched request)."""
        client = connect({self.home: self.registry.chains[self.home]}, replace(self.options, blocks={}))[self.home]
        return client.pinned.number

    def due(self) -> int | None:
        """The block to audit now, or None when fewer than --every blocks passed since the last audit."""
        block = self.head()
        last = self.store.meta("last_block")
        if last is not None and block < int(last) + self.every_blocks:
            return None
        return block

    def audit_once(self, block: int | None = None) -> list[dict[str, Any]]:
        """One audit at the home chain's `block` (latest if None; other chains at latest), its alerts committed
        and delivered. Raises ChainError on an outage (nothing stored, nothing alerted)."""
        options = replace(self.options, blocks={self.home: block} if block is not None else {})
        result = run_audit(AuditRequest(self.spec, self.registry, options))
        before = self.store.conditions()
        if result.complete:
            now = conditions_of(result, self.policy)
        else:  # failed reads or unexplained inflows: figures that are bounds decide nothing, every other condition
            # stays as it was (no limit is "cleared" because the gate could not decide it)
            now = {name: Condition(name, detail) for name, detail in before.items() if name != INCOMPLETE}
            now[INCOMPLETE] = Condition(INCOMPLETE, {"message": result.why_incomplete()})
        pins = {chain: {"number": pin.get("number"), "time": pin.get("time")}
                for chain, pin in sorted(result.document.get("pins", {}).items())}
        context = {"spec": self.spec.id, "token": self.spec.token.symbol, "pins": pins}
        alerts = [{**alert, **context} for alert in transitions(before, now)]
        self.store.commit(now, alerts, {"last_block": str(pins.get(self.home, {}).get("number") or block or 0)})
        # A gate that cannot decide fails: an incomplete audit counts as a breach for --exit-on-breach.
        self.breached = any(name.startswith("check:") or name == INCOMPLETE for name in now)
        self.deliver()
        return alerts

    def deliver(self) -> bool:
        """Print, then post, every alert not yet printed or posted (in order). A webhook that fails keeps its
        alerts for the next round; the lines on stdout are never printed twice. True when nothing is left."""
        for seq, alert in self.store.pending("printed"):
            self.emit(json.dumps({"seq": seq, **alert}, sort_keys=True))
            self.store.mark("printed", seq)
        if self.webhook is None:
            return True
        for seq, alert in self.store.pending("posted"):
            try:
                post(self.webhook, self.secret, seq, alert)
            except (OSError, ValueError) as exc:
                self.say(f"webhook: alert {seq} not delivered ({inert(str(exc))}); will retry")
                return False
            self.store.mark("posted", seq)
        return True

    def run(self, max_audits: int | None = None, exit_on_breach: bool = False) -> int:
        """Audit whenever due, until `max_audits` audits (None: forever). Returns 1 on a breach with
        `exit_on_breach`, else 0. Outages back off and retry; they never end the watch."""
        audits, wait = 0, self.backoff_s
        while max_audits is None or audits < max_audits:
            try:
                block = self.due() if self.interval_s is None else None
                if self.interval_s is None and block is None:
                    self.deliver()  # between audits: what an earlier round could not deliver
                    self.sleep(self.poll_s)
                    continue
                self.audit_once(block)  # delivers its alerts and any left from before
                audits += 1
                wait = self.backoff_s
            except ChainError as exc:
                self.say(f"outage: {inert(str(exc))}; retrying in {wait:g} s (no alert)")
                self.sleep(wait)
                wait = min(wait * 2, self.max_backoff_s)
                continue
            if exit_on_breach and self.breached:
                return 1
            if max_audits is None or audits < max_audits:
                self.sleep(self.interval_s if self.interval_s is not None else self.poll_s)
        return 0
