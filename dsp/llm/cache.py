"""A persistent cache of LLM answers in one SQLite file.

SQLite in WAL mode is the well-kept library here: several processes can read while one writes,
writes are atomic transactions, and a kill mid-write leaves the last committed state. The key is
a pure function of the request (`cache_key`); the API key is never part of it nor stored.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from dsp.errors import DSPError

SCHEMA_VERSION = 1


def cache_key(request: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of everything that changes the answer.

    `request` holds the endpoint kind, model, prompt or messages, sampling parameters and the
    sample index. Key order and float spelling do not matter; None values are dropped so that
    an unset parameter and a missing one agree.
    """
    clean = {k: v for k, v in request.items() if v is not None}
    blob = json.dumps([SCHEMA_VERSION, clean], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class LLMCache:
    """Maps cache_key(request) -> answer (a JSON object). Safe for several processes at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 60.0
        while True:
            try:
                ok = self._open()
                break
            except sqlite3.OperationalError as e:
                # Processes of one job opening a new cache together: switching it to WAL needs a lock that
                # SQLite may refuse at once ("database is locked") instead of waiting. That is not damage.
                if ("locked" not in str(e) and "busy" not in str(e)) or time.monotonic() > deadline:
                    raise DSPError(self._corrupt_message(str(e))) from None
                self._db.close()
                time.sleep(0.05)
            except sqlite3.DatabaseError as e:
                raise DSPError(self._corrupt_message(str(e))) from None
        if ok != "ok":
            raise DSPError(self._corrupt_message(ok))

    def _open(self) -> str:
        """Connect and set the file up (idempotent); returns SQLite's quick_check verdict."""
        # isolation_level=None: autocommit; each INSERT is its own atomic transaction.
        self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=60000")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS answers ("
            " key TEXT PRIMARY KEY, request TEXT NOT NULL, answer TEXT NOT NULL, created REAL NOT NULL)"
        )
        return self._db.execute("PRAGMA quick_check").fetchone()[0]

    def _corrupt_message(self, detail: str) -> str:
        return (
            f"{self.path}: the LLM cache is corrupt or not a cache ({detail}); "
            "move it aside or delete it (answers will be fetched again), or pass another --cache"
        )

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, request: dict[str, Any], answer: dict[str, Any]) -> None:
        # OR IGNORE: the first answer stored wins, so two processes racing on one key agree.
        self._db.execute(
            "INSERT OR IGNORE INTO answers (key, request, answer, created) VALUES (?, ?, ?, ?)",
            (key, json.dumps(request, ensure_ascii=False), json.dumps(answer, ensure_ascii=False), time.time()),
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        self._db.close()
