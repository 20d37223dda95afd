"""Feeds and article pages of invented outlets, served from loopback, for the feed tests.

The outlets, towns and events are invented: the Marrowby Courier (RSS with full content), the Eastfen
Gazette (Atom, summaries only, so the bot fetches each page) and a Kestrel Point wire copy of the
Courier's ferry story.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from html import escape
from urllib.parse import urlsplit

from tests.index.web_support import Pages, serving

FERRY_TEXT = (
    "The river ferry between Marrowby and Kestrel Point resumed service on Friday after a week of storms, "
    "the Marrowby port office said. Officials said 214 passengers crossed on the first day and that the "
    "timetable would return to normal next week. Repairs to the landing stage at Kestrel Point cost "
    "38,000 crowns, the office added, and were paid from the harbour reserve fund."
)
LIBRARY_TEXT = (
    "The Marrowby public library reopened on Saturday after four months of flood repairs. Librarian Odile "
    "Farrant said 6,200 books had been dried and rebound by volunteers, and that the children's room would "
    "open in April."
)
BUS_TEXT = (
    "Eastfen council approved a new bus route linking the harbour with the hospital on Tuesday. The route "
    "will run every twenty minutes from June, councillor Bram Ellery said, and will cost 1.2 million crowns a year."
)
BRIDGE_TEXT = (
    "The Saltmarsh footbridge in Marrowby will close for three weeks from Monday for painting, the town "
    "engineer said. Walkers are asked to use the ferry road instead."
)

LAST_MODIFIED = formatdate(1741000000, usegmt=True)  # a fixed time, so a conditional request can match it


def rss(outlet: str, items: list[dict[str, str]], *, base: str) -> bytes:
    """An RSS 2.0 feed; an item with `content` carries it as content:encoded (the full article)."""
    entries = []
    for item in items:
        content = f"<content:encoded><![CDATA[{item['content']}]]></content:encoded>" if "content" in item else ""
        entries.append(
            f"<item><title>{escape(item['title'])}</title><link>{escape(item['link'])}</link>"
            f"<guid>{escape(item['link'])}</guid><pubDate>{item['date']}</pubDate>"
            f"<description>{escape(item.get('summary', 'Read more.'))}</description>{content}</item>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>{escape(outlet)}</title><link>{base}/</link><description>News</description><language>en</language>"
        + "".join(entries) + "</channel></rss>").encode("utf-8")


def atom(outlet: str, items: list[dict[str, str]], *, base: str) -> bytes:
    """An Atom feed with summaries only: the article is on each item's page."""
    entries = "".join(
        f"<entry><title>{escape(item['title'])}</title><link href=\"{escape(item['link'])}\"/>"
        f"<id>{escape(item['link'])}</id><updated>{item['date']}</updated>"
        f"<summary>{escape(item.get('summary', 'Read more.'))}</summary></entry>"
        for item in items)
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(outlet)}</title><id>{base}/</id><updated>2025-03-04T10:00:00Z</updated>"
        + entries + "</feed>").encode("utf-8")


def page(title: str, outlet: str, text: str, date: str) -> bytes:
    return (f"<!doctype html><html><head><title>{escape(title)} | {escape(outlet)}</title>"
            f'<meta property="og:site_name" content="{escape(outlet)}">'
            f'<meta property="article:published_time" content="{date}"></head>'
            f"<body><article><h1>{escape(title)}</h1>{paragraphs(text)}</article></body></html>").encode()


def paragraphs(text: str) -> str:
    return "".join(f"<p>{escape(sentence.strip())}.</p>" for sentence in text.rstrip(".").split(". "))


class FeedSite(Pages):
    """Pages that also answers conditional requests as a feed server does (304 when the ETag or the
    Last-Modified date still matches), and serves a route given as a list one answer after another."""

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        self.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        path = urlsplit(self.path).path  # tracking parameters do not change the page
        route = self.routes.get(path, (404, {"Content-Type": "text/plain"}, b"no", 0.0))
        if isinstance(route, list):
            self.routes[path] = route[1:] or route  # the last answer repeats
            route = route[0]
        status, headers, body, _delay = route
        etag, modified = headers.get("ETag"), headers.get("Last-Modified")
        if ((etag and self.headers.get("If-None-Match") == etag)
                or (not etag and modified and self.headers.get("If-Modified-Since") == modified)):
            status, body = 304, b""
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def xml(body: bytes, *, etag: str | None = None, content_type: str = "application/rss+xml"):
    headers = {"Content-Type": content_type, "Last-Modified": LAST_MODIFIED}
    if etag:
        headers["ETag"] = etag
    return (200, headers, body, 0.0)


def html_page(body: bytes):
    return (200, {"Content-Type": "text/html; charset=utf-8"}, body, 0.0)


def courier_items(base: str) -> list[dict[str, str]]:
    return [
        {"title": "Ferry service resumes between Marrowby and Kestrel Point",
         "link": f"{base}/courier/ferry-resumes?utm_source=rss&utm_medium=feed",
         "date": "Mon, 03 Mar 2025 09:00:00 GMT", "content": paragraphs(FERRY_TEXT)},
        {"title": "Marrowby library reopens after flood repairs",
         "link": f"{base}/courier/library-reopens",
         "date": "Sun, 02 Mar 2025 18:30:00 GMT", "content": paragraphs(LIBRARY_TEXT)},
    ]


def gazette_items(base: str) -> list[dict[str, str]]:
    return [
        {"title": "Estuary ferry back in service", "link": f"{base}/gazette/estuary-ferry",
         "date": "2025-03-04T07:15:00Z"},
        {"title": "Eastfen approves harbour-to-hospital bus route", "link": f"{base}/gazette/bus-route",
         "date": "2025-03-04T08:00:00Z"},
        # The Courier's library story, linked with tracking parameters, a fragment and a trailing slash.
        {"title": "Library reopens (via the Courier)",
         "link": f"{base}/courier/library-reopens/?fbclid=XYZ&utm_campaign=share#comments",
         "date": "2025-03-04T09:00:00Z"},
    ]


def serve_outlets(base: str) -> None:
    """The Courier's RSS feed (with an ETag) and the Gazette's Atom feed (Last-Modified only), with
    the pages the Gazette links to. The Gazette's ferry page is the Courier's story as a wire copy."""
    FeedSite.routes["/courier/feed.xml"] = xml(rss("Marrowby Courier", courier_items(base), base=base),
                                               etag='"courier-v1"')
    FeedSite.routes["/gazette/atom.xml"] = xml(atom("Eastfen Gazette", gazette_items(base), base=base),
                                               content_type="application/atom+xml")
    FeedSite.routes["/gazette/estuary-ferry"] = html_page(page(
        "Estuary ferry back in service", "Eastfen Gazette", FERRY_TEXT + " Reporting by the Fen wire desk.",
        "2025-03-04T07:15:00Z"))
    FeedSite.routes["/gazette/bus-route"] = html_page(page(
        "Eastfen approves harbour-to-hospital bus route", "Eastfen Gazette", BUS_TEXT, "2025-03-04T08:00:00Z"))
    FeedSite.routes["/courier/library-reopens"] = html_page(page(
        "Marrowby library reopens after flood repairs", "Marrowby Courier", LIBRARY_TEXT, "2025-03-02T18:30:00Z"))


@contextmanager
def outlets_site() -> Iterator[str]:
    """A loopback FeedSite serving the invented outlets; yields its base address."""
    with serving(FeedSite) as httpd:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        serve_outlets(base)
        yield base
