"""What only the Postgres store has: a database that is away or drops connections, its password kept
out of messages, and rows of replaced versions cleaned up. (tests/index/test_store_contract.py runs
the rest against both stores.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from index.engine import Engine
from index.errors import IndexUnavailableError
from index.store import postgres
from index.store.build import build_index
from index.store.stores import open_index
from tests.conftest import MODEL_CACHE, make_settings


@pytest.fixture
def seed_in_postgres(tmp_path, seed_corpus, encoders, database_url):
    settings = make_settings(tmp_path, seed_corpus, database_url=database_url)
    build_index(settings, encoders=encoders)
    return settings


def test_an_unreachable_database_says_what_to_check_without_the_password(tmp_path, seed_corpus, encoders):
    url = f"postgresql://verbatim:s3cret-pw@/verbatim?host={tmp_path}/no-server"
    settings = make_settings(tmp_path, seed_corpus, database_url=url)
    with pytest.raises(IndexUnavailableError) as raised:
        Engine.load(settings, encoders=encoders)
    message = str(raised.value)
    assert "Could not reach the index database" in message and "Check DATABASE_URL" in message
    assert "s3cret-pw" not in message and "postgresql://verbatim@/verbatim" in message

    env = {**os.environ, "DATABASE_URL": url, "CORPUS_DIR": str(seed_corpus), "DATA_DIR": str(tmp_path / "var"),
           "MODEL_CACHE_DIR": str(MODEL_CACHE)}
    done = subprocess.run([sys.executable, "-m", "bot.cli", "ask", "How many civilians were killed?"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2])
    assert done.returncode != 0
    assert "Could not reach the index database" in done.stderr and "Traceback" not in done.stderr
    assert "s3cret-pw" not in done.stdout + done.stderr


def test_answers_go_on_when_the_server_drops_the_connections(seed_in_postgres, encoders, database_url):
    engine = Engine.load(seed_in_postgres, encoders=encoders)
    assert engine.ask("How many civilians were killed?").answered
    pool = engine.stored._pool
    with pool.connection(), pool.connection(), pool.connection(), pool.connection():
        pass  # four idle connections now, all of which the server is about to drop
    # What a Postgres restart or an idle timeout does to the engine's pooled connections.
    with psycopg.connect(database_url, autocommit=True) as admin:
        dropped = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
    assert dropped is not None and dropped[0] >= 4
    answer = engine.ask("How many civilians were killed?")
    assert answer.answered and "973" in answer.text


def test_rows_of_replaced_versions_are_deleted_once_no_reader_needs_them(seed_in_postgres, encoders, database_url,
                                                                        monkeypatch):
    def served_rows() -> tuple[int, int]:
        with psycopg.connect(database_url) as connection:
            row = connection.execute("SELECT (SELECT count(*) FROM verbatim_passages), "
                                     "(SELECT count(*) FROM verbatim_documents)").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    passages, documents = served_rows()
    build_index(seed_in_postgres, encoders=encoders)  # a full rebuild: every row again, the old ones kept
    assert served_rows() == (2 * passages, 2 * documents)
    old = open_index(seed_in_postgres)  # a reader of the version before the next write
    monkeypatch.setattr(postgres, "KEEP_REPLACED_SECONDS", 0)
    build_index(seed_in_postgres, encoders=encoders)
    # The first version's rows are gone; the second's stay (just replaced) with the third's.
    assert served_rows() == (2 * passages, 2 * documents)
    assert old.lookup("syria-vows-accountability") is not None
    old.close()
    answer = Engine.load(seed_in_postgres, encoders=encoders).ask("How many civilians were killed?")
    assert "973" in answer.text


def test_the_command_line_builds_and_answers_on_postgres(tmp_path, seed_corpus, database_url):
    env = {**os.environ, "DATABASE_URL": database_url, "CORPUS_DIR": str(seed_corpus),
           "DATA_DIR": str(tmp_path / "var"), "MODEL_CACHE_DIR": str(MODEL_CACHE)}

    def verbatim(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, capture_output=True, text=True,
                              timeout=300, cwd=Path(__file__).parents[2])
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "9 passages" in verbatim("index", "build")
    assert not (tmp_path / "var" / "index").exists()  # the index went to the database, not to files
    answer = json.loads(verbatim("ask", "How many civilians were killed?", "--json"))
    assert answer["answered"] and "973" in answer["answer"]
    status = json.loads(verbatim("index", "status", "--json"))
    assert status["index"]["folder"].startswith("postgresql://") and status["index"]["documents"] == 1
    assert not status["corpus"]["added"] and not status["corpus"]["removed"]


def test_a_rebuild_with_other_models_tells_old_processes_to_restart(seed_in_postgres, encoders, tmp_path):
    from index.engine import LiveEngine
    from index.errors import IndexMismatchError

    live = LiveEngine(seed_in_postgres, Engine.load(seed_in_postgres, encoders=encoders))
    english_only = seed_in_postgres.model_copy(update={"multilingual_model": "none"})
    build_index(english_only, encoders=type(encoders)(dense=encoders.dense, multilingual=None))
    # The follow check (every INDEX_FOLLOW_SECONDS) finds a version built with other models: it is refused,
    # once, and the old version, whose tables are gone, says what to do instead of answering from nothing.
    with pytest.raises(IndexMismatchError):
        live.follow()
    assert not live.follow()
    with pytest.raises(IndexUnavailableError, match="is gone from.*Restart this process"):
        live.current.ask("How many civilians were killed?")


def test_eval_never_touches_the_served_database(seed_in_postgres, postgres_server, tmp_path):
    """`verbatim eval` builds its own index: in files, or in the scratch database `--database-url` names."""
    served = seed_in_postgres.database_url.get_secret_value()
    env = {**os.environ, "DATABASE_URL": served, "DATA_DIR": str(tmp_path / "var"), "MODEL_CACHE_DIR": str(MODEL_CACHE)}
    vellmoor = Path(__file__).parents[1] / "data" / "vellmoor"
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "q1", "question": "How many people died in the Vellmoor floods?",
                                     "answers": ["41"]}) + "\n", encoding="utf-8")

    def verbatim(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, capture_output=True, text=True,
                              timeout=300, cwd=Path(__file__).parents[2])

    with postgres_server.database() as scratch:
        for extra in ([], ["--database-url", scratch]):
            done = verbatim("eval", "--corpus", str(vellmoor), "--queries", str(questions), "--json", *extra)
            assert done.returncode == 0, done.stderr
            summary = json.loads(done.stdout)
            assert summary["index"]["documents"] == 5 and "database_url" not in summary["settings"]
        refused = verbatim("eval", "--corpus", str(vellmoor), "--queries", str(questions), "--database-url", served)
        assert refused.returncode == 2 and "the index the bot serves" in refused.stderr
    index = open_index(seed_in_postgres)
    try:
        assert set(index.documents) == {"syria-vows-accountability"}  # still the bot's own index
    finally:
        index.close()


@pytest.mark.parametrize("url, shown", [
    ("postgresql://verbatim:s3cret-pw@db.example:5432/news", "postgresql://verbatim@db.example:5432/news"),
    ("postgresql://verbatim@db.example/news?password=s3cret-pw", "postgresql://verbatim@db.example/news"),
    ("host=db.example user=verbatim password=s3cret-pw dbname=news", "postgresql://verbatim@db.example/news"),
    ("postgresql://verbatim:s3cret-pw@h1:5432,h2:5433/news", "postgresql://verbatim@h1,h2:5432,5433/news"),
    ("postgresql://verbatim:s3cret-pw@/news?host=/run/pg", "postgresql://verbatim@/news?host=/run/pg"),
    ("postgresql://verbatim:ab%zzs3cret-pw@db.example/news", "the database in DATABASE_URL"),  # not a valid URL
])
def test_where_the_database_is_is_shown_without_its_password(url, shown):
    assert postgres.redacted(url) == shown
    # psycopg may quote the URL, or its password token, back in an error.
    raw = url.split("password=")[-1].split(" ")[0] if "password=" in url else url.split(":")[2].split("@")[0]
    error = Exception(f'invalid connection option "{url}" (token "{raw}")')
    assert "s3cret" not in postgres._scrubbed(error, url)
