"""On-disk cache of immutable JSON-RPC answers (reads at a pinned block), in SQLite."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from auditor.chain.rpc import Response


def cache_dir() -> Path:
    """Where the tool keeps caches: $AUDITOR_CACHE_DIR, else ~/.cache/reserve-auditor."""
    configured = os.environ.get("AUDITOR_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reserve-auditor"


class SqliteCache:
    """Key -> JSON answer. Keys already include chain id and pin hash (see CachingLayer)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "rpc-cache.sqlite3"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A log scan's next windows are fetched on a worker thread while the last ones are consumed: SQLite itself
        # serialises the connection (sqlite3.threadsafety 3), one thread uses it at a time.
        self.db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")
        self.db.commit()

    def get_many(self, keys: Sequence[str]) -> dict[str, Response]:
        out: dict[str, Response] = {}
        # SQLite caps the number of bound parameters per statement.
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT key, answer FROM answers WHERE key IN ({marks})", chunk)  # noqa: S608
            out.update((key, json.loads(answer)) for key, answer in rows)
        return out

    def put_many(self, items: Sequence[tuple[str, Response]]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO answers (key, answer) VALUES (?, ?)",
            [(key, json.dumps(answer, separators=(",", ":"))) for key, answer in items],
        )
        self.db.commit()

    def close(self) -> None:
        self.db.close()
