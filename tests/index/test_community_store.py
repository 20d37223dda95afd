"""Feedback votes, servers' settings and the engine's source filter, against real SQLite and a real index."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from index.engine import Engine
from index.feedback import AnswerTooOldError, FeedbackStore, parse_since
from index.server_settings import ServerSettingError, ServerSettingsStore, allowed_doc_ids
from index.settings import Settings
from index.state import STATE_FILE, connect_state
from index.store.build import build_index
from tests.conftest import make_settings
from tests.index.test_cli import run as run_cli

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path) -> FeedbackStore:
    return FeedbackStore(connect_state(tmp_path / "var"), retention_days=30)


def test_a_vote_is_stored_once_per_user_and_changes(store, seed_engine):
    answer = seed_engine.ask("How many civilians were killed?")
    answer_id = store.record_answer(answer, guild_id=7, channel_id=70, now=T0)

    assert store.vote(answer_id, 1001, "up", now=T0).previous is None
    changed = store.vote(answer_id, 1001, "down", reason="  quotes the  wrong\nfigure ", now=T0 + timedelta(minutes=1))
    assert (changed.vote, changed.previous) == ("down", "up")
    store.vote(answer_id, 1002, "up", now=T0 + timedelta(minutes=2))

    rows = store.export()
    assert [(r.vote, r.reason) for r in rows] == [("down", "quotes the wrong figure"), ("up", None)]
    first = rows[0]
    assert first.question == answer.question and first.answer == answer.text and first.guild_id == 7
    assert [c["quote"] for c in first.citations] == [c.quote for c in answer.citations]
    # Users are kept only as salted hashes: never the id itself, and two users never share one.
    assert "1001" not in json.dumps([r.to_json() for r in rows])
    assert first.user_hash == store.user_hash(1001) != store.user_hash(1002)

    # 👎 again without a reason keeps the reason; 👍 clears it.
    store.vote(answer_id, 1001, "down", now=T0 + timedelta(minutes=3))
    assert store.user_vote(answer_id, 1001) == ("down", "quotes the wrong figure")
    store.vote(answer_id, 1001, "up", now=T0 + timedelta(minutes=4))
    assert store.user_vote(answer_id, 1001) == ("up", None)

    summary = store.summary(7)
    assert (summary.up, summary.down, summary.answers_rated) == (2, 0, 1)
    assert store.summary(8).up == 0  # another server's answers are not counted


def test_the_salt_is_kept_in_the_data_folder(tmp_path, seed_engine):
    first = FeedbackStore(connect_state(tmp_path / "var"))
    again = FeedbackStore(connect_state(tmp_path / "var"))
    other = FeedbackStore(connect_state(tmp_path / "other"))
    assert first.user_hash(5) == again.user_hash(5) != other.user_hash(5)


def test_old_or_unknown_answers_cannot_be_rated(store, seed_engine):
    answer = seed_engine.ask("Who promised accountability?")
    answer_id = store.record_answer(answer, guild_id=None, channel_id=None, now=T0)
    with pytest.raises(AnswerTooOldError, match="too old to rate"):
        store.vote(answer_id, 1, "up", now=T0 + timedelta(days=31))
    with pytest.raises(AnswerTooOldError):
        store.vote("0123456789abcdef", 1, "up", now=T0)
    # An unrated answer past the retention is forgotten when the next one is recorded; a rated one stays.
    rated = store.record_answer(answer, guild_id=None, channel_id=None, now=T0)
    store.vote(rated, 1, "up", now=T0)
    store.record_answer(answer, guild_id=None, channel_id=None, now=T0 + timedelta(days=40))
    ids = {r[0] for r in store.conn.execute("SELECT answer_id FROM feedback_answers")}
    assert answer_id not in ids and rated in ids


def test_export_since_filters_by_vote_time(store, seed_engine):
    answer = seed_engine.ask("How many civilians were killed?")
    answer_id = store.record_answer(answer, guild_id=3, channel_id=4, now=T0)
    store.vote(answer_id, 1, "up", now=T0)
    store.vote(answer_id, 2, "down", now=T0 + timedelta(days=2))
    assert [r.vote for r in store.export(since=parse_since("2026-11-02"))] == ["down"]
    assert len(store.export(since=parse_since("2026-11-01"))) == 2
    assert store.export(since=parse_since("2026-11-04")) == []


def test_the_cli_exports_feedback_as_json_and_text(tmp_path, seed_engine):
    settings = make_settings(tmp_path, tmp_path / "corpus")
    store = FeedbackStore(connect_state(settings.data_dir))
    answer = seed_engine.ask("How many civilians were killed?")
    answer_id = store.record_answer(answer, guild_id=3, channel_id=4, now=T0)
    store.vote(answer_id, 1, "down", reason="old figure", now=T0 + timedelta(days=1))

    rows = json.loads(run_cli(["feedback", "--json"], settings).stdout)
    assert [(r["vote"], r["reason"], r["question"]) for r in rows] == [("down", "old figure", answer.question)]
    assert json.loads(run_cli(["feedback", "--json", "--since", "2026-11-03"], settings).stdout) == []
    text = run_cli(["feedback"], settings).stdout
    assert "👎" in text and "old figure" in text and answer.question in text
    bad = run_cli(["feedback", "--since", "last tuesday"], settings)
    assert bad.returncode != 0 and "--since must be a date" in bad.stdout + bad.stderr


# ---------------------------------------------------------------- servers' settings


def test_a_server_overrides_only_what_it_sets(tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path / "var", allowed_channel_ids=[11], ask_burst=5,
                        answer_visibility="public")
    servers = ServerSettingsStore.open(settings)
    servers.set_answer_channels(1, [21, 22, 21])
    servers.set_visibility(1, "ephemeral")
    servers.set_question_budget(1, 2, 30)
    servers.set_announcement_channel(1, 99)
    servers.set_forum_tag(1, " question ")

    one, two = servers.config(1, settings), servers.config(2, settings)
    assert one.answer_channels == (21, 22) and one.visibility == "ephemeral" and one.forum_tag == "question"
    assert (one.question_budget.burst, one.question_budget.window_seconds) == (2, 30.0)
    assert not one.from_environment("visibility") and two.from_environment("visibility")
    assert two.answer_channels == (11,) and two.visibility == "public" and two.question_budget.burst == 5
    assert one.answers_in(22) and not one.answers_in(11) and one.answers_in(500, parent_id=21)

    # Stored in the data folder: a new store (the bot restarted) reads the same.
    assert ServerSettingsStore.open(settings).config(1, settings) == one
    assert one.announcement_channel == 99 and two.announcement_channel is None

    servers.reset(1, "visibility")
    assert servers.config(1, settings).visibility == "public"
    assert servers.config(1, settings).answer_channels == (21, 22)
    servers.reset(1)
    assert servers.config(1, settings).overridden == frozenset()
    with pytest.raises(ServerSettingError, match="public or ephemeral"):
        servers.set_visibility(1, "secret")
    with pytest.raises(ServerSettingError, match="no setting"):
        servers.reset(1, "colour")


def test_sources_name_articles_or_outlets(tmp_path, seed_engine):
    settings = Settings(_env_file=None, data_dir=tmp_path / "var")
    servers = ServerSettingsStore.open(settings)
    documents = seed_engine.sources()
    outlet = documents[0].source
    servers.set_sources(1, [outlet.upper()], documents)
    assert allowed_doc_ids(servers.config(1, settings).sources, documents) == {documents[0].doc_id}
    assert allowed_doc_ids((), documents) is None
    with pytest.raises(ServerSettingError, match="No indexed article has the id or outlet 'Pravda Nowhere'"):
        servers.set_sources(1, ["Pravda Nowhere"], documents)


# ---------------------------------------------------------------- the engine's source filter


def _write(folder: Path, name: str, title: str, source: str, body: str) -> None:
    (folder / f"{name}.md").write_text(
        f'---\ntitle: "{title}"\nurl: "https://example.org/{name}"\nsource: "{source}"\n'
        f'published: "2025-04-0{len(name) % 9 + 1}"\nlang: en\n---\n\n{body}\n', encoding="utf-8")


@pytest.fixture(scope="module")
def two_outlets(tmp_path_factory, encoders) -> Engine:
    root = tmp_path_factory.mktemp("two-outlets")
    corpus = root / "corpus"
    corpus.mkdir()
    _write(corpus, "brindle-flood", "Flood closes the Brindle bridge", "Vale Courier",
           "The river Brindle flooded on Tuesday and the old bridge at Marrowby was closed to traffic. "
           "Engineers said the bridge would stay closed for nine days.")
    _write(corpus, "marrowby-bridge", "Marrowby bridge repairs begin", "Hollin Gazette",
           "Repairs to the Marrowby bridge began after the Brindle flood. "
           "The council said the bridge would reopen within six days.")
    settings = make_settings(root, corpus)
    build_index(settings, encoders=encoders)
    return Engine.load(settings, encoders=encoders)


def test_excluded_articles_never_appear(two_outlets):
    question = "How long will the Marrowby bridge stay closed?"
    everything = {h.doc_id for h in two_outlets.search(question, k=5)}
    assert everything == {"brindle-flood", "marrowby-bridge"}

    only = frozenset({"marrowby-bridge"})
    assert {h.doc_id for h in two_outlets.search(question, k=5, allowed_doc_ids=only)} == {"marrowby-bridge"}
    answer = two_outlets.ask(question, allowed_doc_ids=only)
    assert answer.citations and {c.doc_id for c in answer.citations} == {"marrowby-bridge"}
    assert "nine days" not in answer.text

    # With one article named as well, the filter still holds; an empty set admits nothing.
    assert two_outlets.search(question, doc_id="brindle-flood", allowed_doc_ids=only) == []
    nothing = two_outlets.ask(question, allowed_doc_ids=frozenset())
    assert not nothing.answered and nothing.citations == []


def test_exporting_feedback_from_a_fresh_data_folder_creates_nothing(tmp_path):
    settings = make_settings(tmp_path, tmp_path / "corpus")
    result = run_cli(["feedback", "--json"], settings)
    assert result.returncode == 0 and json.loads(result.stdout) == []
    assert not (settings.data_dir / STATE_FILE).exists()  # no database, tables or salt made just to read
    conn = connect_state(settings.data_dir)  # a data folder with feeds but no votes yet: left as it is
    conn.execute("CREATE TABLE feeds (url TEXT PRIMARY KEY)")
    conn.close()
    assert "No votes yet" in run_cli(["feedback"], settings).stdout
    with closing(sqlite3.connect(settings.data_dir / STATE_FILE)) as check:
        assert [row[0] for row in check.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["feeds"]
