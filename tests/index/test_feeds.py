"""Following feeds: add, poll, remove; conditional requests; one story from two outlets stored once;
a failing feed backs off and recovers. Feeds and pages come from a loopback server, the index is real."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import pytest

from index.engine import Engine, LiveEngine
from index.errors import ReindexInProgressError
from index.sources.corpus import Article, doc_id_from_url, load_corpus, read_markdown
from index.sources.feed_poll import poll_feeds
from index.sources.feeds import FeedError, backoff_minutes, canonical_url, open_registry
from index.sources.stories import KnownStories, shingles, similarity
from index.store.build import build_index
from index.store.files import build_lock
from tests.conftest import SEED_ARTICLE, make_settings
from tests.index.feed_support import (
    FERRY_TEXT,
    FeedSite,
    courier_items,
    html_page,
    outlets_site,
    page,
    rss,
    xml,
)
from tests.index.test_cli import run

LOOPBACK = {"FETCH_ALLOWED_NETWORKS": "127.0.0.1/32"}
START = dt.datetime(2025, 3, 4, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def site():
    with outlets_site() as base:
        yield base


@pytest.fixture
def newsroom(tmp_path, encoders):
    """The seed article, indexed, with loopback allowed so the test server can be fetched."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / SEED_ARTICLE.name).write_bytes(SEED_ARTICLE.read_bytes())
    settings = make_settings(tmp_path, corpus, fetch_allowed_networks=["127.0.0.1/32"], fetch_timeout_seconds=5)
    build_index(settings, encoders=encoders)
    return settings


def follow(settings, url, every=30, channel=None):
    with open_registry(settings.data_dir) as registry:
        return registry.add(url, every_minutes=every, channel_id=channel, now=START)[0]


def feeds(settings):
    with open_registry(settings.data_dir) as registry:
        return {feed.url: feed for feed in registry.feeds()}


def requests_for(path):
    return [r for r in FeedSite.seen if r["path"].split("?")[0] == path]


def test_canonical_url_drops_what_does_not_name_the_article():
    assert (canonical_url("HTTPS://News.Example.ORG:443/a/story/?utm_source=rss&id=7&fbclid=x&gclid=y#top")
            == "https://news.example.org/a/story?id=7")
    assert canonical_url("http://example.org") == "http://example.org/"
    assert canonical_url("http://example.org:8080/x/") == "http://example.org:8080/x"
    with pytest.raises(Exception, match="not a web address"):
        canonical_url("javascript:alert(1)")


def test_backoff_doubles_and_is_capped():
    assert [backoff_minutes(10, n, 360) for n in (1, 2, 3, 4, 5, 6)] == [20, 40, 80, 160, 320, 360]
    assert backoff_minutes(600, 3, 360) == 600  # never sooner than the feed's own interval


def test_shingle_similarity_tells_a_copy_from_another_story():
    ferry = shingles(FERRY_TEXT)
    assert similarity(ferry, shingles(FERRY_TEXT + " Reporting by the Fen wire desk.")) > 0.85
    assert similarity(ferry, shingles(FERRY_TEXT.replace("214", "215"))) > 0.85
    assert similarity(ferry, shingles("The ferry between two other towns stopped on Friday after storms.")) < 0.1


def test_copies_are_found_among_many_stories_by_their_sketches():
    towns = ["Marrowby", "Eastfen", "Kestrel Point", "Saltmarsh", "Oldwick"]
    stories = [Article(doc_id=f"s{n}", title=f"Notice {n}", url=f"https://courier.example/notices/{n}",
                       text=f"The {towns[n % 5]} council said on day {n} that road {n} would close for "
                            f"{n % 7 + 2} days while crews of {n + 3} workers resurfaced it near the {n}th milestone.")
               for n in range(300)]
    corpus = KnownStories(stories, threshold=0.8)
    for n in (0, 123, 299):
        wire = replace(stories[n], doc_id="w", url=None, text=stories[n].text + " Reporting by the Fen wire desk.")
        kept, reason = corpus.copy_of(wire, f"https://gazette.example/wire/{n}")
        assert kept.doc_id == f"s{n}" and reason.startswith("near-identical")
    other = replace(stories[5], doc_id="o", url=None,
                    text="The Oldwick ferry timetable changes on Monday, the port office said.")
    assert corpus.copy_of(other, "https://gazette.example/other") is None
    moved = replace(stories[9], doc_id="m", text="Other words.")
    # The same address, whatever the text.
    assert corpus.copy_of(moved, "https://courier.example/notices/7")[0].doc_id == "s7"


def test_add_poll_and_remove_a_feed(site, newsroom, encoders):
    follow(newsroom, f"{site}/courier/feed.xml", every=15)

    report = poll_feeds(newsroom, encoders=encoders, now=START)

    titles = sorted(a.title for _feed, a in report.added)
    assert titles == ["Ferry service resumes between Marrowby and Kestrel Point",
                      "Marrowby library reopens after flood repairs"]
    assert report.build is not None and report.build.documents == 3
    # The feed carried the full articles (content:encoded): no item page was fetched.
    assert [r["path"] for r in FeedSite.seen] == ["/courier/feed.xml"]
    ferry = next(a for _feed, a in report.added if a.title.startswith("Ferry"))
    saved = read_markdown(newsroom.corpus_dir / f"{ferry.doc_id}.md")
    assert saved.text == FERRY_TEXT.replace(". ", ".\n\n")
    assert saved.source == "Marrowby Courier" and saved.published == "2025-03-03" and saved.lang == "en"
    assert saved.url == f"{site}/courier/ferry-resumes"  # tracking parameters gone
    front = (newsroom.corpus_dir / f"{ferry.doc_id}.md").read_text(encoding="utf-8")
    assert f"feed: {site}/courier/feed.xml" in front

    answer = Engine.load(newsroom, encoders=encoders).ask("How many passengers crossed on the ferry on the first day?")
    assert answer.answered and "214 passengers" in answer.text
    assert answer.citations[0].source == "Marrowby Courier" and answer.citations[0].published == "2025-03-03"

    status = feeds(newsroom)[f"{site}/courier/feed.xml"]
    assert status.items_added == 2 and status.outlet == "Marrowby Courier" and status.every_minutes == 15
    assert status.last_success_at == START.isoformat() and status.last_error is None
    assert status.next_poll_at == (START + dt.timedelta(minutes=15)).isoformat()

    with open_registry(newsroom.data_dir) as registry:
        removed = registry.remove(f"{site}/courier/feed.xml?utm_source=x")  # the same feed, however written
        assert removed.items_added == 2 and registry.feeds() == []
        with pytest.raises(FeedError, match="No feed .* is followed"):
            registry.remove(f"{site}/courier/feed.xml")
    assert len(load_corpus([newsroom.corpus_dir]).articles) == 3  # its articles stay


def test_conditional_requests_get_304_and_add_nothing(site, newsroom, encoders):
    follow(newsroom, f"{site}/courier/feed.xml")
    follow(newsroom, f"{site}/gazette/atom.xml")
    poll_feeds(newsroom, encoders=encoders, now=START)
    index_before = Engine.load(newsroom, encoders=encoders).info().version
    corpus_before = sorted(p.name for p in newsroom.corpus_dir.iterdir())
    FeedSite.seen.clear()

    again = poll_feeds(newsroom, encoders=encoders, now=START + dt.timedelta(hours=1))

    courier, gazette = requests_for("/courier/feed.xml"), requests_for("/gazette/atom.xml")
    assert courier[0]["if-none-match"] == '"courier-v1"'
    assert gazette[0]["if-modified-since"] == feeds(newsroom)[f"{site}/gazette/atom.xml"].last_modified
    assert [r.not_modified for r in again.results] == [True, True]
    assert again.added == [] and again.build is None
    assert len(FeedSite.seen) == 2  # no item page either
    assert sorted(p.name for p in newsroom.corpus_dir.iterdir()) == corpus_before
    assert Engine.load(newsroom, encoders=encoders).info().version == index_before

    # The feed changes: only its new item is taken, the earlier ones are known.
    items = courier_items(site) + [{"title": "Saltmarsh footbridge to close for painting",
                                    "link": f"{site}/courier/footbridge", "date": "Tue, 04 Mar 2025 08:00:00 GMT",
                                    "content": "<p>The Saltmarsh footbridge in Marrowby will close for three weeks "
                                               "from Monday for painting, the town engineer said.</p>"}]
    FeedSite.routes["/courier/feed.xml"] = xml(rss("Marrowby Courier", items, base=site), etag='"courier-v2"')
    changed = poll_feeds(newsroom, encoders=encoders, now=START + dt.timedelta(hours=2))
    courier_result = changed.results[0]
    assert [a.title for a in courier_result.added] == ["Saltmarsh footbridge to close for painting"]
    assert courier_result.seen == 2
    assert feeds(newsroom)[f"{site}/courier/feed.xml"].etag == '"courier-v2"'


def test_the_same_story_from_a_second_outlet_is_stored_once(site, newsroom, encoders):
    follow(newsroom, f"{site}/courier/feed.xml")
    follow(newsroom, f"{site}/gazette/atom.xml")

    report = poll_feeds(newsroom, encoders=encoders, now=START)

    courier, gazette = report.results
    assert len(courier.added) == 2
    assert [a.title for a in gazette.added] == ["Eastfen approves harbour-to-hospital bus route"]
    reasons = {d.article.title: (d.kept.title, d.reason) for d in gazette.duplicates}
    assert reasons["Estuary ferry back in service"][0] == "Ferry service resumes between Marrowby and Kestrel Point"
    assert "near-identical" in reasons["Estuary ferry back in service"][1]
    assert reasons["Library reopens (via the Courier)"] == (
        "Marrowby library reopens after flood repairs", "the same address is already in the corpus")
    corpus = load_corpus([newsroom.corpus_dir]).articles
    assert sum("Kestrel Point" in a.text for a in corpus) == 1
    assert len(corpus) == 4

    engine = Engine.load(newsroom, encoders=encoders)
    answer = engine.ask("What did the landing stage repairs at Kestrel Point cost?")
    assert answer.answered and "38,000 crowns" in answer.text
    kept = answer.citations[0].doc_id
    also = engine.also_reported([c.doc_id for c in answer.citations])
    assert [(r.source, r.title, r.url, r.published) for r in also[kept]] == [
        ("Eastfen Gazette", "Estuary ferry back in service", f"{site}/gazette/estuary-ferry", "2025-03-04")]
    # The same address from another feed is the same article, not another outlet's report of it.
    library = next(a.doc_id for a in corpus if a.title.startswith("Marrowby library"))
    assert engine.also_reported([library]) == {}

    # From the terminal: `ask --json` carries it on the citation, and the text says it.
    payload = json.loads(run(["ask", "--json", "What did the landing stage repairs at Kestrel Point cost?"],
                             newsroom).stdout)
    cited = next(c for c in payload["citations"] if c["doc_id"] == kept)
    assert cited["also_reported"] == [{"source": "Eastfen Gazette", "title": "Estuary ferry back in service",
                                       "url": f"{site}/gazette/estuary-ferry", "published": "2025-03-04"}]
    text = run(["ask", "What did the landing stage repairs at Kestrel Point cost?"], newsroom).stdout
    assert "also reported by Eastfen Gazette, 2025-03-04" in text


def test_a_failing_feed_backs_off_then_recovers(site, newsroom, encoders):
    FeedSite.routes["/flaky/feed.xml"] = [
        (500, {"Content-Type": "text/plain"}, b"upstream down", 0.0),
        (200, {"Content-Type": "text/html"}, b"<html>maintenance page</html>", 0.0),
        xml(rss("Kestrel Point Bulletin", [{"title": "Footbridge closes for painting", "link": f"{site}/flaky/bridge",
                                             "date": "Tue, 04 Mar 2025 08:00:00 GMT"}], base=site)),
    ]
    FeedSite.routes["/flaky/bridge"] = html_page(page(
        "Footbridge closes for painting", "Kestrel Point Bulletin",
        "The Saltmarsh footbridge in Marrowby will close for three weeks from Monday for painting, the town "
        "engineer said. Walkers are asked to use the ferry road instead.", "2025-03-04T08:00:00Z"))
    url = f"{site}/flaky/feed.xml"
    follow(newsroom, url, every=10)
    live = LiveEngine(newsroom, Engine.load(newsroom, encoders=encoders))

    first = poll_feeds(newsroom, encoders=encoders, now=START)
    assert "HTTP 500" in first.results[0].error and first.added == []
    status = feeds(newsroom)[url]
    assert status.failing and status.failures == 1 and "HTTP 500" in status.last_error
    assert status.last_error_at == START.isoformat() and status.last_success_at is None
    assert status.next_poll_at == (START + dt.timedelta(minutes=20)).isoformat()  # twice the interval

    # Backing off: not due at its usual interval, due at the backed-off time.
    with open_registry(newsroom.data_dir) as registry:
        assert registry.due(START + dt.timedelta(minutes=10)) == []
        assert [f.url for f in registry.due(START + dt.timedelta(minutes=20))] == [url]

    second = poll_feeds(newsroom, encoders=encoders, now=START + dt.timedelta(minutes=20))
    assert "text/html" in second.results[0].error
    status = feeds(newsroom)[url]
    assert status.failures == 2 and status.next_poll_at == (START + dt.timedelta(minutes=60)).isoformat()

    # `feeds list` shows the failure from the terminal.
    listed = json.loads(run(["feeds", "list", "--json"], newsroom).stdout)
    assert listed[0]["url"] == url and listed[0]["failing"] is True and listed[0]["failures"] == 2

    # The live engine's poll (what `verbatim run` does) takes the feeds due by the clock (this one
    # was due in March 2025), and the feed recovers.
    old = live.current
    recovered = live.poll_feeds()
    assert [a.title for _feed, a in recovered.added] == ["Footbridge closes for painting"]
    assert live.current is not old  # swapped to the new index
    status = feeds(newsroom)[url]
    assert not status.failing and status.failures == 0 and status.items_added == 1
    assert status.last_success_at is not None and "text/html" in status.last_error  # the last error is kept
    answer = live.current.ask("How long will the Saltmarsh footbridge close?")
    assert "three weeks" in answer.text


def test_feed_commands_from_the_terminal(site, newsroom):
    refused = run(["feeds", "add", f"{site}/courier/feed.xml"], newsroom)
    assert refused.returncode == 0  # following is allowed; fetching from loopback is not, by default
    polled = run(["feeds", "poll"], newsroom)
    assert "failed: 127.0.0.1 resolves to 127.0.0.1, a private, loopback" in polled.stdout
    assert "0 added, 0 duplicates, 0 already seen, 1 failed." in polled.stdout

    added = run(["feeds", "add", f"{site}/courier/feed.xml", "--every", "5", "--channel", "123"], newsroom)
    assert added.returncode == 0, added.stderr
    assert "Updated" in added.stdout and "every 5 minutes" in added.stdout
    bad = run(["feeds", "add", "not a feed"], newsroom)
    assert bad.returncode == 1 and "not a web address" in bad.stderr

    polled = run(["feeds", "poll"], newsroom, extra_env=LOOPBACK)
    assert polled.returncode == 0, polled.stderr
    assert "added Ferry service resumes between Marrowby and Kestrel Point — Marrowby Courier, 2025-03-03" \
        in polled.stdout
    assert "2 added, 0 duplicates, 0 already seen, 0 failed." in polled.stdout

    assert run(["feeds", "add", f"{site}/gazette/atom.xml"], newsroom).returncode == 0
    FeedSite.routes["/courier/feed.xml"] = xml(rss("Marrowby Courier", courier_items(site), base=site),
                                               etag='"courier-v2"')  # changed, so its items are read again
    second = json.loads(run(["feeds", "poll", "--json"], newsroom, extra_env=LOOPBACK).stdout)
    assert (second["added"], second["duplicates"], second["seen"], second["failed"]) == (1, 2, 2, 0)

    listed = json.loads(run(["feeds", "list", "--json"], newsroom).stdout)
    assert [(f["url"], f["every_minutes"], f["channel_id"], f["items_added"]) for f in listed] == [
        (f"{site}/courier/feed.xml", 5, 123, 2), (f"{site}/gazette/atom.xml", 30, None, 1)]
    table = run(["feeds", "list"], newsroom).stdout
    assert "Marrowby Courier" in table and "Eastfen Gazette" in table

    removed = run(["feeds", "remove", f"{site}/courier/feed.xml"], newsroom)
    assert removed.returncode == 0 and "No longer following" in removed.stdout
    missing = run(["feeds", "remove", f"{site}/courier/feed.xml"], newsroom)
    assert missing.returncode == 1 and "feeds list" in missing.stderr


def test_items_that_cannot_be_stored_are_taken_next_time(site, newsroom, encoders):
    url = f"{site}/courier/feed.xml"
    follow(newsroom, url, every=10)
    corpus_before = sorted(p.name for p in newsroom.corpus_dir.iterdir())

    # Another build holds the index: nothing is saved or recorded, and the feed stays due.
    with build_lock(newsroom.index_dir), pytest.raises(ReindexInProgressError):
        poll_feeds(newsroom, encoders=encoders, now=START)
    assert sorted(p.name for p in newsroom.corpus_dir.iterdir()) == corpus_before
    status = feeds(newsroom)[url]
    assert status.etag == "" and status.last_success_at is None and not status.failing

    # Saving fails (a folder where the ferry article's file goes): all or nothing, and the feed backs off.
    ferry_id = doc_id_from_url(f"{site}/courier/ferry-resumes")
    (newsroom.corpus_dir / f"{ferry_id}.md").mkdir()
    with pytest.raises(OSError):
        poll_feeds(newsroom, encoders=encoders, now=START)
    assert sorted(p.name for p in newsroom.corpus_dir.iterdir()) == sorted([*corpus_before, f"{ferry_id}.md"])
    status = feeds(newsroom)[url]
    assert status.failures == 1 and "could not be stored" in status.last_error and status.etag == ""

    (newsroom.corpus_dir / f"{ferry_id}.md").rmdir()
    FeedSite.seen.clear()
    report = poll_feeds(newsroom, encoders=encoders, now=START + dt.timedelta(minutes=20))
    assert len(report.added) == 2 and "if-none-match" not in FeedSite.seen[0]  # fetched again in full
    assert feeds(newsroom)[url].items_added == 2 and not feeds(newsroom)[url].failing


def test_items_beyond_the_limit_are_taken_at_the_next_poll(site, newsroom, encoders):
    settings = newsroom.model_copy(update={"feed_max_items_per_poll": 2})
    notes = ["the slipway is closed", "divers inspect the pier", "the dredger arrives", "buoys are repainted",
             "the lifeboat trains at dawn"]
    items = [{"title": f"Oldwick harbour notice {n}", "link": f"{site}/tides/{n}",
              "date": f"Tue, 0{n} Apr 2025 06:00:00 GMT",
              "content": f"<p>On the {n}th of April {note}, the Oldwick harbour office said.</p>"}
             for n, note in enumerate(notes, start=1)]
    FeedSite.routes["/tides/feed.xml"] = xml(rss("Oldwick Harbour Office", items, base=site), etag='"tides-v1"')
    follow(settings, f"{site}/tides/feed.xml")

    taken = []
    for hour in range(4):
        report = poll_feeds(settings, encoders=encoders, now=START + dt.timedelta(hours=hour))
        taken.append([a.title.rsplit(" ", 1)[1] for _feed, a in report.added])
    assert taken == [["1", "2"], ["3", "4"], ["5"], []]
    assert report.results[0].not_modified  # all taken: the validators are sent again, and answered 304


def test_a_feed_belongs_to_the_server_that_added_it_and_old_data_folders_gain_the_column(tmp_path):
    from index.state import connect_state

    conn = connect_state(tmp_path)  # the feeds table as it was before feeds belonged to a server
    conn.execute("CREATE TABLE feeds (url TEXT PRIMARY KEY, every_minutes INTEGER NOT NULL, channel_id INTEGER, "
                 "outlet TEXT, added_at TEXT NOT NULL, etag TEXT NOT NULL DEFAULT '', last_modified TEXT NOT NULL "
                 "DEFAULT '', last_polled_at TEXT, last_success_at TEXT, last_error TEXT, last_error_at TEXT, "
                 "failures INTEGER NOT NULL DEFAULT 0, next_poll_at TEXT NOT NULL, "
                 "items_added INTEGER NOT NULL DEFAULT 0)")
    conn.execute("INSERT INTO feeds (url, every_minutes, added_at, next_poll_at) VALUES "
                 "('https://old.example/feed', 30, '2025-01-01T00:00:00+00:00', '2025-01-01T00:00:00+00:00')")
    conn.close()
    with open_registry(tmp_path) as registry:
        [old] = registry.feeds()
        assert old.guild_id is None  # the operator's
        registry.add("https://a.example/feed", every_minutes=10, guild_id=1)
        registry.add("https://b.example/feed", every_minutes=10, guild_id=2)
        assert [f.url for f in registry.feeds(guild_id=1)] == ["https://a.example/feed"]
        assert len(registry.feeds()) == 3  # the terminal sees them all
        with pytest.raises(FeedError, match="already followed"):
            registry.add("https://a.example/feed", every_minutes=5, guild_id=2)
        with pytest.raises(FeedError, match="followed by this server"):
            registry.remove("https://old.example/feed", guild_id=1)
        assert registry.add("https://a.example/feed", every_minutes=5, guild_id=1)[0].every_minutes == 5
        registry.remove("https://b.example/feed")  # the terminal may remove any
        assert {f.url for f in registry.feeds()} == {"https://old.example/feed", "https://a.example/feed"}


def test_an_item_page_that_failed_is_fetched_again_at_the_next_poll(site, newsroom, encoders):
    # The feed carries no content, so the item's page is fetched; it fails once, then answers.
    story = page("Lantern fair returns to Oldwick quay", "Oldwick Harbour Office",
                 "The lantern fair returns to Oldwick quay on Saturday, the harbour office said. "
                 "Stalls open at dusk and the quay is closed to cars from noon.", "2025-04-05")
    FeedSite.routes["/fair/story"] = [(503, {"Content-Type": "text/plain"}, b"busy", 0.0), html_page(story)]
    items = [{"title": "Lantern fair returns to Oldwick quay", "link": f"{site}/fair/story",
              "date": "Sat, 05 Apr 2025 06:00:00 GMT"}]
    FeedSite.routes["/fair/feed.xml"] = xml(rss("Oldwick Harbour Office", items, base=site), etag='"fair-v1"')
    follow(newsroom, f"{site}/fair/feed.xml")

    first = poll_feeds(newsroom, encoders=encoders, now=START)
    assert first.added == [] and first.results[0].failed
    second = poll_feeds(newsroom, encoders=encoders, now=START + dt.timedelta(hours=1))
    # Not answered 304: the feed's validators were not kept while an item was left to fetch.
    assert not second.results[0].not_modified
    assert [a.title for _feed, a in second.added] == ["Lantern fair returns to Oldwick quay"]
