"""The data folder's own database: what outlives any index version (feeds, feedback, server settings).

The index is rebuilt and swapped; this file is not. Each feature creates its own tables on first use
(`CREATE TABLE IF NOT EXISTS`), so a data folder from an older Verbatim simply gains them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

STATE_FILE = "verbatim.sqlite3"


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def connect_state(data_dir: Path) -> sqlite3.Connection:
    """A connection to the data folder's database, created if missing. Several processes (the bot and a
    `verbatim feeds poll` from a terminal) may use it at once: WAL lets readers go on while one writes,
    and a writer waits for another rather than failing at once."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(state_path(data_dir), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, lock: threading.Lock | None = None) -> Iterator[sqlite3.Connection]:
    """One write transaction (connections from `connect_state` autocommit otherwise). `lock`, when
    threads share the connection, keeps their statements from interleaving."""
    with lock or nullcontext():
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
