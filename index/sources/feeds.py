"""Followed feeds (RSS and Atom): which feeds, how each is doing, which items were already taken, and
which stories other outlets also reported. All of it lives in the data folder's database
(index/state.py), which outlives index versions.

Polling is in index/sources/feed_poll.py; this module only remembers.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from index.errors import VerbatimError
from index.state import connect_state, state_path

# index.sources.fetch (and its web client) is imported only where an address is read: answering a
# question looks up "also reported by" here, and should not pay for importing a web client.

# Query parameters that say how a reader arrived, not which article: two addresses that differ only
# in these are the same story.
TRACKING_PARAMETERS = frozenset({
    "fbclid", "gclid", "gclsrc", "dclid", "msclkid", "yclid", "twclid", "igshid", "mc_cid", "mc_eid",
    "_ga", "_gl", "_hsenc", "_hsmi", "mkt_tok", "ref_src", "cmpid", "ocid", "at_medium", "at_campaign",
})
TRACKING_PREFIXES = ("utm_",)
DEFAULT_PORTS = {"http": 80, "https": 443}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feeds (
    url TEXT PRIMARY KEY,
    every_minutes INTEGER NOT NULL,
    channel_id INTEGER,
    outlet TEXT,
    added_at TEXT NOT NULL,
    etag TEXT NOT NULL DEFAULT '',
    last_modified TEXT NOT NULL DEFAULT '',
    last_polled_at TEXT,
    last_success_at TEXT,
    last_error TEXT,
    last_error_at TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    next_poll_at TEXT NOT NULL,
    items_added INTEGER NOT NULL DEFAULT 0,
    guild_id INTEGER                    -- the Discord server that follows it; NULL: the operator (terminal)
);
CREATE TABLE IF NOT EXISTS feed_items (
    feed_url TEXT NOT NULL REFERENCES feeds(url) ON DELETE CASCADE,
    item_key TEXT NOT NULL,
    doc_id TEXT,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (feed_url, item_key)
);
CREATE TABLE IF NOT EXISTS also_reported (
    kept_doc_id TEXT NOT NULL,
    source TEXT,
    title TEXT NOT NULL,
    url TEXT NOT NULL,
    published TEXT,
    feed_url TEXT,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (kept_doc_id, url)
);
"""


class FeedError(VerbatimError):
    pass


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def canonical_url(url: str) -> str:
    """The address two copies of one article share: no fragment, no tracking parameters (utm_*,
    fbclid, gclid…), no default port, no trailing slash, a lower-case host. Raises FetchError for
    anything that is not a web address."""
    from index.sources.fetch import normalise_url

    parts = urlsplit(normalise_url(url))
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True)
             if key.lower() not in TRACKING_PARAMETERS and not key.lower().startswith(TRACKING_PREFIXES)]
    netloc = parts.netloc
    if parts.port is not None and DEFAULT_PORTS.get(parts.scheme) == parts.port:
        netloc = netloc.rsplit(":", 1)[0]
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") or "/",
                       urlencode(query, quote_via=quote, safe="/:@!$'()*,;-._~"), ""))


@dataclass(frozen=True)
class Feed:
    url: str
    every_minutes: int
    channel_id: int | None  # where new articles are announced, if anywhere
    outlet: str | None  # the feed's own title, learned at the first successful poll
    added_at: str
    etag: str
    last_modified: str
    last_polled_at: str | None
    last_success_at: str | None
    last_error: str | None  # kept after a recovery, so `feeds list` can still say what went wrong
    last_error_at: str | None
    failures: int  # consecutive; 0 once a poll succeeds
    next_poll_at: str
    items_added: int
    guild_id: int | None = None  # the server that added it with /feeds add; None: added from the terminal

    def due(self, moment: dt.datetime) -> bool:
        return dt.datetime.fromisoformat(self.next_poll_at) <= moment

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def to_json(self) -> dict[str, object]:
        return asdict(self) | {"failing": self.failing}


@dataclass(frozen=True)
class AlsoReported:
    """Another outlet's copy of a story that is stored once, under `kept_doc_id`."""

    kept_doc_id: str
    source: str | None  # the other outlet
    title: str
    url: str
    published: str | None

    def to_json(self) -> dict[str, object]:
        return {"source": self.source, "title": self.title, "url": self.url, "published": self.published}


def backoff_minutes(every_minutes: int, failures: int, max_backoff_minutes: int) -> int:
    """How long to wait after `failures` failures in a row: twice the feed's interval, doubling with
    each failure, never more than the cap (or the interval itself, if that is longer)."""
    return min(every_minutes * 2 ** min(failures, 30), max(max_backoff_minutes, every_minutes))


class FeedRegistry:
    """The feeds tables of one data folder. Open it for a short while (`open_registry`): several
    processes may use the database at once."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        conn.executescript(_SCHEMA)
        columns = {row["name"] for row in conn.execute("PRAGMA table_info(feeds)")}
        if "guild_id" not in columns:  # a data folder from before feeds belonged to a server
            conn.execute("ALTER TABLE feeds ADD COLUMN guild_id INTEGER")

    # ------------------------------------------------------------ the feeds

    def add(self, url: str, *, every_minutes: int, channel_id: int | None = None, guild_id: int | None = None,
            now: dt.datetime | None = None) -> tuple[Feed, bool]:
        """Follow `url` (polled at the next chance); for a feed already followed, change its interval and
        channel instead. Returns the feed and whether it is new.

        `guild_id` is the Discord server adding it (None: the operator, from the terminal). A server may
        only change its own feeds; the terminal may change any."""
        if every_minutes < 1:
            raise FeedError("A feed is polled at most once a minute: give --every 1 or more.")
        address = _feed_address(url)
        moment = _stamp(now or now_utc())
        existing = self.get(address)
        if existing is not None:
            if guild_id is not None and existing.guild_id != guild_id:
                # The corpus is shared: its articles already reach this server's answers.
                raise FeedError(f"{address} is already followed for the bot as a whole (by another server or "
                                "its operator), so its articles are already indexed. /config sources chooses "
                                "which articles this server's answers use.")
            self.conn.execute("UPDATE feeds SET every_minutes = ?, channel_id = ? WHERE url = ?",
                              (every_minutes, channel_id, address))
        else:
            self.conn.execute(
                "INSERT INTO feeds (url, every_minutes, channel_id, added_at, next_poll_at, guild_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (address, every_minutes, channel_id, moment, moment, guild_id))
        return self._get(address), existing is None

    def remove(self, url: str, *, guild_id: int | None = None) -> Feed:
        """Stop following `url`. With `guild_id`, only a feed that server added (the terminal: any)."""
        address = _feed_address(url)
        feed = self._get(address, guild_id)
        self.conn.execute("DELETE FROM feeds WHERE url = ?", (address,))
        return feed

    def _get(self, url: str, guild_id: int | None = None) -> Feed:
        feed = self.get(url)
        if feed is None or (guild_id is not None and feed.guild_id != guild_id):
            whose = " by this server" if guild_id is not None else ""
            raise FeedError(f"No feed {url} is followed{whose}; `feeds list` shows the feeds.")
        return feed

    def get(self, url: str) -> Feed | None:
        row = self.conn.execute("SELECT * FROM feeds WHERE url = ?", (url,)).fetchone()
        return Feed(**dict(row)) if row else None

    def feeds(self, *, guild_id: int | None = None) -> list[Feed]:
        """Every followed feed, or with `guild_id` only those that server added."""
        rows = self.conn.execute("SELECT * FROM feeds WHERE ? IS NULL OR guild_id = ? ORDER BY added_at, url",
                                 (guild_id, guild_id))
        return [Feed(**dict(row)) for row in rows]

    def due(self, moment: dt.datetime) -> list[Feed]:
        return [feed for feed in self.feeds() if feed.due(moment)]

    # ------------------------------------------------------------ poll results

    def record_success(self, feed: Feed, *, etag: str, last_modified: str, outlet: str | None, added: int,
                       now: dt.datetime) -> None:
        self.conn.execute(
            "UPDATE feeds SET etag = ?, last_modified = ?, outlet = COALESCE(?, outlet), last_polled_at = ?, "
            "last_success_at = ?, failures = 0, next_poll_at = ?, items_added = items_added + ? WHERE url = ?",
            (etag, last_modified, outlet, _stamp(now), _stamp(now),
             _stamp(now + dt.timedelta(minutes=feed.every_minutes)), added, feed.url))

    def record_failure(self, feed: Feed, error: str, *, max_backoff_minutes: int, now: dt.datetime) -> None:
        failures = feed.failures + 1
        wait = backoff_minutes(feed.every_minutes, failures, max_backoff_minutes)
        self.conn.execute(
            "UPDATE feeds SET last_polled_at = ?, last_error = ?, last_error_at = ?, failures = ?, "
            "next_poll_at = ? WHERE url = ?",
            (_stamp(now), error, _stamp(now), failures, _stamp(now + dt.timedelta(minutes=wait)), feed.url))

    def seen(self, feed_url: str, item_key: str) -> bool:
        return self.conn.execute("SELECT 1 FROM feed_items WHERE feed_url = ? AND item_key = ?",
                                 (feed_url, item_key)).fetchone() is not None

    def mark_seen(self, feed_url: str, item_key: str, doc_id: str | None, now: dt.datetime) -> None:
        # A feed removed while it was being polled has no items to remember.
        self.conn.execute("INSERT OR IGNORE INTO feed_items (feed_url, item_key, doc_id, seen_at) "
                          "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM feeds WHERE url = ?)",
                          (feed_url, item_key, doc_id, _stamp(now), feed_url))

    # ------------------------------------------------------------ the same story elsewhere

    def record_also_reported(self, report: AlsoReported, feed_url: str | None, now: dt.datetime) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO also_reported (kept_doc_id, source, title, url, published, feed_url, recorded_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (report.kept_doc_id, report.source, report.title, report.url, report.published, feed_url, _stamp(now)))

    def also_reported(self, doc_ids: Iterable[str]) -> dict[str, list[AlsoReported]]:
        found: dict[str, list[AlsoReported]] = {}
        for doc_id in dict.fromkeys(doc_ids):  # an answer cites a few documents: one query each
            rows = self.conn.execute("SELECT kept_doc_id, source, title, url, published FROM also_reported "
                                     "WHERE kept_doc_id = ? ORDER BY published, recorded_at", (doc_id,))
            reports = [AlsoReported(**dict(row)) for row in rows]
            if reports:
                found[doc_id] = reports
        return found


@contextmanager
def open_registry(data_dir: Path) -> Iterator[FeedRegistry]:
    conn = connect_state(data_dir)
    try:
        yield FeedRegistry(conn)
    finally:
        conn.close()


def also_reported(data_dir: Path, doc_ids: Iterable[str]) -> dict[str, list[AlsoReported]]:
    """The other outlets' copies of these documents' stories, by document id (none: no entry). Reads
    nothing if no feed was ever followed in this data folder."""
    if not state_path(data_dir).exists():
        return {}
    with open_registry(data_dir) as registry:
        return registry.also_reported(doc_ids)


def _feed_address(url: str) -> str:
    from index.sources.fetch import FetchError

    try:
        return canonical_url(url)
    except FetchError as error:
        raise FeedError(str(error).replace("Give a full", "Give the feed's full")) from None
