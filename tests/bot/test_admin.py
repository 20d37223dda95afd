"""/reindex: Manage Server only, progress and a summary, and the bot keeps answering meanwhile."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import discord
import pytest
from simcord import SetupError

from bot.discord.client import create_bot
from bot.discord.errors import unwrap
from index.engine import Engine, LiveEngine
from index.errors import ReindexInProgressError
from index.sources.fetch import FetchError
from index.store.build import build_index
from tests.bot.conftest import SETTLE_TIMEOUT, bot_settings, wait_until, write_article


@pytest.fixture
def own_settings(tmp_path, encoders):
    """An index of its own: these tests change the corpus and swap the engine."""
    # Loopback is refused by default; these tests serve an article page from it.
    settings = bot_settings(tmp_path, fetch_allowed_networks=["127.0.0.1/32"], fetch_timeout_seconds=5)
    build_index(settings, encoders=encoders)
    return settings


@pytest.fixture
def own_live(own_settings, encoders):
    return LiveEngine(own_settings, Engine.load(own_settings, encoders=encoders))


@pytest.fixture
def simcord_bot(own_settings, own_live):
    return create_bot(own_settings, own_live)


@pytest.fixture
def admin(env, guild):
    managers = guild.create_role("Managers", permissions=discord.Permissions(manage_guild=True))
    return guild.add_member(env.create_user("carol"), roles=[managers])


@contextmanager
def without_settling(env):
    """Send an action and return at once, leaving the bot working: simcord normally waits for the bot
    to finish, which would make two things happening at once impossible to arrange."""
    settle = env._settle_internal

    async def return_at_once(**_kwargs):
        return None

    env._settle_internal = return_at_once
    try:
        yield
    finally:
        env._settle_internal = settle


def hold_reindex_at_first_progress(live: LiveEngine) -> tuple[threading.Event, threading.Event]:
    """Make the real re-index pause, mid-run and holding its lock, until the test releases it."""
    started, release = threading.Event(), threading.Event()
    real = live.reindex

    def held(full=False, progress=None, **kwargs):
        def report(event):
            if not started.is_set():
                started.set()
                release.wait(SETTLE_TIMEOUT)
            if progress is not None:
                progress(event)

        return real(full=full, progress=report, **kwargs)

    live.reindex = held
    return started, release


async def test_reindex_is_hidden_from_members_without_manage_server(env, channel, alice):
    assert "reindex" not in alice.available_commands(channel)
    assert "ask" in alice.available_commands(channel)
    with pytest.raises(SetupError, match="not visible"):
        await alice.slash(channel, "reindex")


async def test_reindex_is_refused_at_run_time_without_manage_server(env, guild, channel, alice, own_live):
    # A server may show the command to someone anyway (a per-user override): the check still refuses.
    command = env.backend.find_command("reindex", None, type=1)
    guild.set_command_permissions(int(command["id"]), {alice: True})

    result = await alice.slash(channel, "reindex")

    assert result.ephemeral and "needs the Manage Server permission" in result.response.content
    assert [type(e).__name__ for e in env.errors] == ["MissingPermissions"]
    assert not own_live.reindexing


async def test_reindex_updates_while_the_bot_keeps_answering(env, guild, channel, admin, bob, own_settings, own_live):
    old_engine = own_live.current
    write_article(own_settings.corpus_dir, "harbour", "Latakia harbour reopens",
                  "The harbour of Latakia reopened to cargo ships on Monday after a week of closure.",
                  url="https://example.org/harbour")
    started, release = hold_reindex_at_first_progress(own_live)

    with without_settling(env):
        reindex = await admin.slash(channel, "reindex")
    await wait_until(started.is_set)  # the real re-index is now running, and holding its lock

    with without_settling(env):
        second = await admin.slash(channel, "reindex")
        asked = await bob.slash(channel, "ask", question="How many civilians were killed?")
    await wait_until(lambda: asked.response is not None and asked.response.embeds
                     and second.response is not None and second.response.content)

    # Meanwhile: bob got his answer from the current index, and the second re-index was turned away.
    assert "973" in asked.response.embeds[0].description
    assert "already running" in second.response.content and second.ephemeral
    assert own_live.reindexing and own_live.current is old_engine
    assert reindex.ephemeral and not (reindex.response and reindex.response.embeds)

    release.set()
    await env.settle(timeout=SETTLE_TIMEOUT)

    summary = reindex.response.embeds[0]
    assert summary.title == "Re-index finished"
    assert summary.description.startswith("2 documents, ")
    fields = {f.name: f.value for f in summary.fields}
    assert fields["Added (1)"] == "`harbour`"
    assert fields["Changed (0)"] == "none" and fields["Removed (0)"] == "none"
    assert [type(e.original) for e in env.errors] == [ReindexInProgressError]
    # Progress was shown along the way, by editing the same reply.
    edits = [r.json.get("content") for r in env.http_requests if r.method == "PATCH" and r.json]
    assert any(text and text.startswith("Re-indexing… ") for text in edits)

    # The new index answers, and the new article is in the autocomplete list at once.
    assert own_live.current is not old_engine
    answer = await bob.slash(channel, "ask", question="When did the harbour of Latakia reopen?")
    assert "Monday" in answer.response.embeds[0].description
    choices = await bob.autocomplete(channel, "source", "id", "harbour")
    assert [c["value"] for c in choices] == ["harbour"]


ARTICLE_PAGE = b"""<!doctype html><html><head><title>Dam repairs | Valley Herald</title>
<meta property="og:site_name" content="Valley Herald">
<meta property="article:published_time" content="2025-04-02T08:00:00Z"></head>
<body><article><h1>Engineers finish repairs on the Qarun dam</h1>
<p>Engineers finished repairs on the Qarun dam on Tuesday after three weeks of work, the water authority said.</p>
<p>The authority said 41 workers took part and that the reservoir would be refilled by the end of May.</p>
</article></body></html>"""


@pytest.fixture
def news_site():
    """A web server on loopback with one article page, as a news site would serve it."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            self.send_response(200 if self.path == "/dam" else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(ARTICLE_PAGE)))
            self.end_headers()
            self.wfile.write(ARTICLE_PAGE)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_ingest_adds_an_article_by_address(env, channel, admin, alice, news_site):
    assert "ingest" not in alice.available_commands(channel)

    added = await admin.slash(channel, "ingest", url=f"{news_site}/dam")
    card = added.response.embeds[0]
    assert added.ephemeral and card.title == "Article added"
    fields = {f.name: f.value for f in card.fields}
    assert fields["Article"].startswith("Engineers finish repairs on the Qarun dam")
    assert fields["Link"] == f"{news_site}/dam"

    answer = await alice.slash(channel, "ask", question="When did engineers finish repairs on the Qarun dam?")
    assert "on Tuesday" in answer.response.embeds[0].description
    assert "Engineers finish repairs" in answer.response.embeds[0].fields[0].value

    again = await admin.slash(channel, "ingest", url=f"{news_site}/dam")
    assert again.response.embeds[0].title == "Already in the corpus"


async def test_ingest_of_a_bad_address_says_what_is_wrong(env, channel, admin, news_site):
    result = await admin.slash(channel, "ingest", url="not a link")
    assert "not a web address" in result.response.content
    missing = await admin.slash(channel, "ingest", url=f"{news_site}/gone")
    assert "HTTP 404" in missing.response.content
    assert [type(unwrap(e)) for e in env.errors] == [FetchError, FetchError]
