"""Polling followed feeds: fetch each feed (conditionally), take its new items, store each story once,
index what was added.

Two steps, so the network never holds the index: `fetch_feeds` downloads feeds and item pages with no
lock held; `store_items` then, under the build lock, drops duplicates, saves the new articles into
the corpus as Markdown and updates the index incrementally (all or nothing, like `verbatim add`). A
feed's validators (ETag, Last-Modified) and its seen items are only recorded once its items are stored,
so a poll that could not store them fetches them again next time instead of getting a 304.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import feedparser

from index.errors import CorpusError, ReindexInProgressError
from index.settings import Settings
from index.sources.corpus import Article, doc_id_from_url, extract_html, load_corpus, save_article
from index.sources.feeds import AlsoReported, Feed, FeedRegistry, canonical_url, now_utc, open_registry
from index.sources.fetch import FetchError, Validators, fetch_page
from index.sources.ingest import fetch_policy
from index.sources.stories import KnownStories
from index.state import transaction
from index.store.build import BuildReport, Encoders, ProgressCallback, add_articles_locked
from index.store.stores import write_lock

log = logging.getLogger("verbatim.feeds")

FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/rdf+xml",
                        "application/xml", "text/xml", "application/x-rss+xml"})
HTML_CONTENT = {"text/html", "application/xhtml+xml"}


@dataclass(frozen=True)
class FeedItem:
    """A new item of a feed, with its article text (from the feed, or fetched from its page)."""

    feed_url: str
    key: str  # the canonical address, or the item's id when it has no link
    article: Article


@dataclass
class FeedFetch:
    """What fetching one feed found; `store_items` turns it into a FeedResult."""

    feed: Feed
    items: list[FeedItem] = field(default_factory=list)
    seen: int = 0  # items already taken in an earlier poll
    failed: list[str] = field(default_factory=list)  # items whose text could not be had, with why
    error: str | None = None  # the feed itself could not be fetched or read
    not_modified: bool = False
    etag: str = ""
    last_modified: str = ""
    outlet: str | None = None
    more: bool = False  # new items beyond FEED_MAX_ITEMS_PER_POLL wait for the next poll
    retry: bool = False  # an item's page could not be fetched this time; the next poll tries it again


@dataclass(frozen=True)
class Duplicate:
    article: Article  # the copy not stored
    kept: Article  # the story as stored
    reason: str


@dataclass
class FeedResult:
    feed: Feed
    added: list[Article] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    seen: int = 0
    failed: list[str] = field(default_factory=list)
    error: str | None = None
    not_modified: bool = False


@dataclass
class PollReport:
    results: list[FeedResult]
    build: BuildReport | None = None  # only when something was added

    @property
    def added(self) -> list[tuple[Feed, Article]]:
        return [(result.feed, article) for result in self.results for article in result.added]

    @property
    def duplicates(self) -> int:
        return sum(len(result.duplicates) for result in self.results)

    @property
    def seen(self) -> int:
        return sum(result.seen for result in self.results)

    @property
    def failed(self) -> int:
        """Feeds that could not be read, and items whose text could not be had."""
        return sum(len(result.failed) + (result.error is not None) for result in self.results)

    def to_json(self) -> dict[str, object]:
        def article(a: Article) -> dict[str, object]:
            return {"doc_id": a.doc_id, "title": a.title, "source": a.source, "url": a.url, "published": a.published}

        return {
            "feeds": [{
                "url": result.feed.url,
                "error": result.error,
                "not_modified": result.not_modified,
                "added": [article(a) for a in result.added],
                "duplicates": [article(d.article) | {"kept_doc_id": d.kept.doc_id, "reason": d.reason}
                               for d in result.duplicates],
                "seen": result.seen,
                "failed": result.failed,
            } for result in self.results],
            "added": len(self.added), "duplicates": self.duplicates, "seen": self.seen, "failed": self.failed,
            "embedded_passages": self.build.embedded_passages if self.build else 0,
        }


# ---------------------------------------------------------------- fetching


def fetch_feeds(settings: Settings, *, due_only: bool = False, now: dt.datetime | None = None,
                urls: Sequence[str] | None = None) -> list[FeedFetch]:
    """Fetch every followed feed (or only those due by `now`, or only `urls`) and their new items.
    A failing feed is recorded (error, backoff) at once; nothing else is recorded here."""
    moment = now or now_utc()
    with open_registry(settings.data_dir) as registry:
        feeds = registry.due(moment) if due_only else registry.feeds()
        if urls is not None:
            feeds = [feed for feed in feeds if feed.url in set(urls)]
        fetches = [_fetch_feed(settings, registry, feed) for feed in feeds]
        for fetched in fetches:
            if fetched.error is not None:
                log.info("feed %s failed: %s", fetched.feed.url, fetched.error)
                registry.record_failure(fetched.feed, fetched.error,
                                        max_backoff_minutes=settings.feed_max_backoff_minutes, now=moment)
    return fetches


def _fetch_feed(settings: Settings, registry: FeedRegistry, feed: Feed) -> FeedFetch:
    policy = fetch_policy(settings)
    fetched = FeedFetch(feed)
    try:
        page = fetch_page(feed.url, policy, accept=FEED_TYPES,
                          validators=Validators(feed.etag, feed.last_modified))
    except FetchError as error:
        fetched.error = str(error)
        return fetched
    fetched.etag, fetched.last_modified = page.etag, page.last_modified
    if page.status == 304:
        fetched.not_modified = True
        return fetched
    # A stream, never bytes or text: given those, feedparser may open a file or a URL of that name.
    parsed = feedparser.parse(io.BytesIO(page.html), response_headers={
        "content-location": page.url, "content-type": page.content_type})
    if parsed.get("bozo") and not parsed.entries and not parsed.feed.get("title"):
        problem = " ".join(str(parsed.get("bozo_exception") or "unreadable").split())[:200]
        fetched.error = f"{feed.url} is not an RSS or Atom feed ({problem}); check the address."
        return fetched
    fetched.outlet = _plain(parsed.feed.get("title"), parsed.feed.get("title_detail")) or None
    language = _plain(parsed.feed.get("language")) or None
    for entry in parsed.entries:
        if len(fetched.items) + len(fetched.failed) >= settings.feed_max_items_per_poll:
            fetched.more = True
            break
        link = entry.get("link")
        try:
            key = canonical_url(link) if link else _plain(entry.get("id"))
        except FetchError:
            key = ""
        if not key:
            fetched.failed.append(f"an item of {feed.url} has no usable link or id")
            continue
        if registry.seen(feed.url, key):
            fetched.seen += 1
            continue
        try:
            article = _item_article(settings, entry, key, has_link=bool(link), outlet=fetched.outlet,
                                    language=language)
        except (FetchError, CorpusError) as error:
            fetched.failed.append(f"{link or key}: {error}")
            fetched.retry = True
            continue
        fetched.items.append(FeedItem(feed.url, key, article))
    return fetched


def _item_article(settings: Settings, entry: Any, key: str, *, has_link: bool, outlet: str | None,
                  language: str | None) -> Article:
    """The item as an article: the feed's full content when it carries it, else its page's text."""
    title = _plain(entry.get("title"), entry.get("title_detail"))
    doc_id = doc_id_from_url(key)
    content = _full_content(entry)
    if content is not None:
        body, kind = content
        if kind in HTML_CONTENT:
            # The page extractor reads the fragment, with the item's title as the page title so a
            # headline repeated at the top of the content is not kept as its first sentence.
            page = (f"<html><head><title>{html.escape(title)}</title></head>"
                    f"<body><article>{body}</article></body></html>")
            article = extract_html(page, url=key if has_link else None, doc_id=doc_id, origin=key)
        else:
            article = Article(doc_id=doc_id, title=title, text=body.strip(), origin=key)
    elif has_link:
        page_found = fetch_page(key, fetch_policy(settings))
        article = extract_html(page_found.html, url=key, doc_id=doc_id, origin=key)
    else:
        raise CorpusError(f"{key}: the item has neither full content nor a link to its page")
    if not article.text.strip():
        raise CorpusError(f"{key}: the item has no text")
    return replace(
        article,
        title=title or article.title,
        url=key if has_link else article.url,
        source=outlet or article.source,
        published=_entry_date(entry) or article.published,
        author=_plain(entry.get("author")) or article.author,
        lang=article.lang or language,
    )


def _full_content(entry: Any) -> tuple[str, str] | None:
    """The item's full text (content:encoded, Atom content) and its type; a summary is not the article."""
    for content in entry.get("content") or []:
        value = content.get("value") or ""
        if value.strip():
            return value, (content.get("type") or "text/html").lower()
    return None


def _entry_date(entry: Any) -> str | None:
    for name in ("published_parsed", "updated_parsed"):
        parsed = entry.get(name)
        if parsed:
            return time.strftime("%Y-%m-%d", parsed)
    return None


_TAG = re.compile(r"</?[A-Za-z][^>]*>")  # a real tag: `<@&123>` or `a < b` in a title is text


def _plain(value: object, detail: object = None) -> str:
    """A feed's title or name as one line of plain text. feedparser says when a title is HTML
    (`title_detail.type`): then its tags are dropped and its entities read."""
    if not isinstance(value, str):
        return ""
    if isinstance(detail, dict) and "html" in str(detail.get("type", "")):
        value = html.unescape(_TAG.sub(" ", value))
    return " ".join(value.split())


# ---------------------------------------------------------------- storing


def store_items(settings: Settings, fetches: Sequence[FeedFetch], *, encoders: Encoders | None = None,
                progress: ProgressCallback | None = None, now: dt.datetime | None = None) -> PollReport:
    """Store the fetched items once each and index the new ones, then record every feed's poll."""
    moment = now or now_utc()
    results = [FeedResult(f.feed, seen=f.seen, failed=list(f.failed), error=f.error, not_modified=f.not_modified)
               for f in fetches]
    report = PollReport(results)
    with open_registry(settings.data_dir) as registry:
        if any(f.items for f in fetches):
            try:
                report.build = _store_new(settings, registry, fetches, results, encoders, progress, moment)
            except ReindexInProgressError:
                raise  # another build is running: not the feeds' fault, the next poll retries at once
            except Exception as error:
                # Back off as for a feed error, or a build that keeps failing would be retried every tick.
                for fetched in fetches:
                    if fetched.items:
                        registry.record_failure(fetched.feed, f"its new items could not be stored: {error}",
                                                max_backoff_minutes=settings.feed_max_backoff_minutes, now=moment)
                raise
        with transaction(registry.conn):
            for fetched, result in zip(fetches, results, strict=True):
                if fetched.error is None:
                    # With items left over or to retry, the next poll must not be answered "not modified".
                    left = fetched.more or fetched.retry
                    validators = ("", "") if left else (fetched.etag, fetched.last_modified)
                    registry.record_success(fetched.feed, etag=validators[0], last_modified=validators[1],
                                            outlet=fetched.outlet, added=len(result.added), now=moment)
    return report


def _store_new(settings: Settings, registry: FeedRegistry, fetches: Sequence[FeedFetch], results: list[FeedResult],
               encoders: Encoders | None, progress: ProgressCallback | None, moment: dt.datetime) -> BuildReport | None:
    with write_lock(settings):
        existing = (load_corpus([settings.corpus_dir], max_article_chars=settings.max_article_chars).articles
                    if settings.corpus_dir.exists() else [])
        corpus = KnownStories(existing, settings.feed_duplicate_similarity)
        saved: list[tuple[Path, bytes | None]] = []
        seen: list[tuple[str, str, str | None]] = []
        also: list[tuple[AlsoReported, str]] = []
        try:
            for fetched, result in zip(fetches, results, strict=True):
                for item in fetched.items:
                    copy = corpus.copy_of(item.article, item.key)
                    if copy is not None:
                        kept, reason = copy
                        result.duplicates.append(Duplicate(item.article, kept, reason))
                        seen.append((item.feed_url, item.key, kept.doc_id))
                        if item.key != _address(kept):  # the same address twice is not another outlet's report
                            also.append((AlsoReported(kept.doc_id, item.article.source, item.article.title,
                                                      item.article.url or item.key, item.article.published),
                                         item.feed_url))
                        continue
                    article = _unique_id(item.article, corpus)
                    target = settings.corpus_dir / f"{article.doc_id}.md"
                    saved.append((target, target.read_bytes() if target.is_file() else None))
                    save_article(settings.corpus_dir, article, extra={"feed": item.feed_url})
                    corpus.keep(article)
                    result.added.append(article)
                    seen.append((item.feed_url, item.key, article.doc_id))
            # Only the new articles are indexed (one small segment), read back as saved so the index holds
            # exactly what the corpus does.
            build = (add_articles_locked(settings, load_corpus([path for path, _ in saved],
                                                               max_article_chars=settings.max_article_chars).articles,
                                         encoders=encoders, progress=progress)
                     if saved else None)
        except BaseException:
            for path, replaced in reversed(saved):  # all or nothing: the corpus never holds unindexed articles
                if replaced is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(replaced)
            for result in results:
                result.added.clear()
            raise
        with transaction(registry.conn):
            for feed_url, key, doc_id in seen:
                registry.mark_seen(feed_url, key, doc_id, moment)
            for report, feed_url in also:
                registry.record_also_reported(report, feed_url, moment)
    return build


def _address(article: Article) -> str | None:
    try:
        return canonical_url(article.url) if article.url else None
    except FetchError:
        return None


def _unique_id(article: Article, corpus: KnownStories) -> Article:
    """The article under an id no other corpus article has (two addresses can share a last path part
    and, rarely, a short hash)."""
    doc_id, n = article.doc_id, 2
    while doc_id in corpus.by_id:
        doc_id, n = f"{article.doc_id}-{n}", n + 1
    return replace(article, doc_id=doc_id)


def poll_feeds(settings: Settings, *, due_only: bool = False, now: dt.datetime | None = None,
               encoders: Encoders | None = None, progress: ProgressCallback | None = None) -> PollReport:
    """Fetch, then store: what `verbatim feeds poll` runs (a live engine runs the steps itself, see
    LiveEngine.poll_feeds)."""
    return store_items(settings, fetch_feeds(settings, due_only=due_only, now=now),
                       encoders=encoders, progress=progress, now=now)
