"""Adding articles by address, against a real HTTP server on loopback that the tests start."""

from __future__ import annotations

import pytest

from index.engine import Engine
from index.errors import ReindexInProgressError
from index.sources.corpus import doc_id_from_url, read_markdown
from index.sources.fetch import FetchError, normalise_url
from index.sources.ingest import add_url
from index.store.build import build_index
from index.store.files import build_lock
from tests.conftest import SEED_ARTICLE, make_settings
from tests.index.test_cli import run
from tests.index.web_support import Pages, serving

ARTICLE_HTML = """<!doctype html><html><head><title>Dam repairs | Valley Herald</title>
<meta property="og:site_name" content="Valley Herald"><meta name="author" content="Rana Haddad">
<meta property="article:published_time" content="2025-04-02T08:00:00Z"></head>
<body><nav>Home · Region · Sport</nav><article><h1>Engineers finish repairs on the Qarun dam</h1>
<p>Engineers finished repairs on the Qarun dam on Tuesday after three weeks of work, the regional water authority said.</p>
<p>The authority said 41 workers took part and that the reservoir would be refilled by the end of May.</p>
<p>Farmers downstream had lost access to irrigation water while the dam was closed.</p></article>
<footer>© Valley Herald</footer></body></html>"""  # noqa: E501 - a real page's paragraph is one long line


@pytest.fixture
def server():
    with serving(Pages) as httpd:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def html(body: str, status: int = 200, delay: float = 0.0, content_type: str = "text/html; charset=utf-8"):
    return (status, {"Content-Type": content_type}, body.encode("utf-8"), delay)


@pytest.fixture
def library(tmp_path, encoders):
    """A corpus holding the seed article, indexed, with loopback allowed for the test server."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / SEED_ARTICLE.name).write_bytes(SEED_ARTICLE.read_bytes())
    settings = make_settings(tmp_path, corpus, fetch_allowed_networks=["127.0.0.1/32"], fetch_timeout_seconds=2,
                             fetch_max_bytes=50_000)
    build_index(settings, encoders=encoders)
    return settings


def test_add_by_url_end_to_end(server, library, encoders):
    _, base = server
    Pages.routes["/news/dam-repairs"] = html(ARTICLE_HTML)
    report = add_url(library, f"{base}/news/dam-repairs", encoders=encoders)

    assert report.status == "added"
    saved = read_markdown(report.path)
    assert report.path.parent == library.corpus_dir and report.path.suffix == ".md"
    assert saved.title == "Engineers finish repairs on the Qarun dam"
    assert saved.source == "Valley Herald" and saved.published == "2025-04-02" and saved.author == "Rana Haddad"
    assert saved.url == f"{base}/news/dam-repairs"
    assert "41 workers" in saved.text and "Home · Region" not in saved.text
    assert report.build.embedded_documents == 1 and report.build.added == [saved.doc_id]

    answer = Engine.load(library, encoders=encoders).ask("How many workers took part in the dam repairs?")
    assert answer.answered and "41 workers" in answer.text
    assert answer.citations[0].doc_id == saved.doc_id and answer.citations[0].source == "Valley Herald"


def test_the_same_url_or_text_twice_is_a_duplicate(server, library, encoders):
    _, base = server
    Pages.routes["/a"] = html(ARTICLE_HTML)
    Pages.routes["/copy"] = html(ARTICLE_HTML.replace("<nav>Home · Region · Sport</nav>", ""))
    first = add_url(library, f"{base}/a", encoders=encoders)
    files = sorted(library.corpus_dir.iterdir())
    again = add_url(library, f"{base}/a#comments", encoders=encoders)
    copy = add_url(library, f"{base}/copy", encoders=encoders)
    assert again.status == "duplicate" and "address" in again.reason and again.article.doc_id == first.article.doc_id
    assert copy.status == "duplicate" and "same text" in copy.reason
    assert sorted(library.corpus_dir.iterdir()) == files


def test_add_knows_a_story_by_its_address_without_tracking_and_by_a_near_identical_copy(server, library, encoders):
    # The same rules as feed polls (index/sources/stories.py): a shared link with tracking parameters,
    # and another outlet's wire copy with a credit line added, are the story already stored.
    _, base = server
    Pages.routes["/a"] = html(ARTICLE_HTML)
    Pages.routes["/wire"] = html(ARTICLE_HTML.replace(
        "the dam was closed.</p>", "the dam was closed.</p><p>Reporting by the Fen wire desk.</p>"))
    first = add_url(library, f"{base}/a", encoders=encoders)
    files = sorted(library.corpus_dir.iterdir())
    tracked = add_url(library, f"{base}/a?utm_source=share&fbclid=x", encoders=encoders)
    wire = add_url(library, f"{base}/wire", encoders=encoders)
    assert tracked.status == "duplicate" and "address" in tracked.reason
    assert wire.status == "duplicate" and wire.reason.startswith("near-identical")
    assert wire.article.doc_id == first.article.doc_id
    assert sorted(library.corpus_dir.iterdir()) == files


@pytest.mark.parametrize(
    "route, message",
    [
        (html('{"a": 1}', content_type="application/json"), "not a web page"),
        ((200, {"Content-Type": "application/pdf"}, b"%PDF-1.4", 0.0), "not a web page"),
        (html("<p>" + "x" * 60_000 + "</p>"), "bytes"),
        ((200, {"Content-Type": "text/html", "Content-Length": "900000000"}, b"<p>tiny</p>", 0.0), "900,000,000 bytes"),
        (html(ARTICLE_HTML, delay=4.0), "did not answer within 2 s"),
        (html("gone", status=404), "HTTP 404"),
        ((302, {"Location": "http://10.20.30.40/secret", "Content-Type": "text/html"}, b"", 0.0), "10.20.30.40"),
        ((301, {"Location": "http://169.254.169.254/latest/meta-data", "Content-Type": "text/html"}, b"", 0.0),
         "169.254.169.254"),
    ],
    ids=["json", "pdf", "oversized", "oversized-declared", "timeout", "not-found", "redirect-private",
         "redirect-metadata"],
)
def test_bad_pages_are_refused_and_nothing_is_added(server, library, encoders, route, message):
    _, base = server
    Pages.routes["/page"] = route
    before = sorted(p.name for p in library.corpus_dir.iterdir())
    with pytest.raises(FetchError, match=message):
        add_url(library, f"{base}/page", encoders=encoders)
    assert sorted(p.name for p in library.corpus_dir.iterdir()) == before


def test_redirect_chain_to_a_public_copy_is_followed_and_checked(server, library, encoders):
    _, base = server
    Pages.routes["/short"] = (302, {"Location": "/news/full", "Content-Type": "text/html"}, b"", 0.0)
    Pages.routes["/news/full"] = html(ARTICLE_HTML)
    assert add_url(library, f"{base}/short", encoders=encoders).status == "added"


def test_loopback_is_refused_unless_allowed(server, library, encoders):
    _, base = server
    Pages.routes["/a"] = html(ARTICLE_HTML)
    strict = library.model_copy(update={"fetch_allowed_networks": []})
    with pytest.raises(FetchError, match="only fetches public web pages"):
        add_url(strict, f"{base}/a", encoders=encoders)


@pytest.mark.parametrize("url", ["not a url", "ftp://example.org/file", "javascript:alert(1)", ""])
def test_things_that_are_not_addresses_get_a_clear_message(library, url):
    with pytest.raises(FetchError, match="not a web address"):
        add_url(library, url)


def test_html_and_text_files_in_the_corpus_are_indexed(tmp_path, encoders):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "dam.html").write_text(ARTICLE_HTML, encoding="utf-8")
    (corpus / "note.txt").write_text("Council vote\n\nThe council voted 7 to 2 to close the bridge.\n",
                                     encoding="utf-8")
    settings = make_settings(tmp_path, corpus)
    report = build_index(settings, encoders=encoders)
    assert report.documents == 2 and not report.warnings
    engine = Engine.load(settings, encoders=encoders)
    titles = {d.doc_id: d.title for d in engine.sources()}
    assert titles == {"dam": "Engineers finish repairs on the Qarun dam", "note": "Council vote"}
    assert "7 to 2" in engine.ask("How did the council vote on the bridge?").text


def corpus_files(settings) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in settings.corpus_dir.iterdir()}


def test_add_during_a_reindex_is_refused_and_saves_nothing(server, library, encoders):
    _, base = server
    Pages.routes["/a"] = html(ARTICLE_HTML)
    before = corpus_files(library)
    with build_lock(library.index_dir):  # another build or add holds the index
        with pytest.raises(ReindexInProgressError, match="re-index is already running"):
            add_url(library, f"{base}/a", encoders=encoders)
    assert corpus_files(library) == before
    assert add_url(library, f"{base}/a", encoders=encoders).status == "added"  # not "duplicate"


def test_a_failed_build_takes_the_article_back_and_a_retry_adds_it(server, library, encoders, monkeypatch):
    _, base = server
    Pages.routes["/a"] = html(ARTICLE_HTML)
    before = corpus_files(library)

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("index.store.segments.fsync_tree", disk_full)  # writing any segment fails
    with pytest.raises(OSError, match="No space left"):
        add_url(library, f"{base}/a", encoders=encoders)
    assert corpus_files(library) == before
    monkeypatch.undo()
    retry = add_url(library, f"{base}/a", encoders=encoders)
    assert retry.status == "added" and retry.build.added == [retry.article.doc_id]


def test_a_failed_build_puts_back_a_file_it_overwrote(server, library, encoders, monkeypatch):
    _, base = server
    Pages.routes["/a"] = html(ARTICLE_HTML)
    same_name = library.corpus_dir / f"{doc_id_from_url(normalise_url(f'{base}/a'))}.md"
    same_name.write_text("---\ntitle: Written by hand\n---\nA note an editor kept under this name.\n", encoding="utf-8")
    before = corpus_files(library)
    failing_write = lambda *_a, **_k: (_ for _ in ()).throw(OSError(5, "I/O error"))  # noqa: E731
    monkeypatch.setattr("index.store.segments.fsync_tree", failing_write)
    with pytest.raises(OSError, match="I/O error"):
        add_url(library, f"{base}/a", encoders=encoders)
    assert corpus_files(library) == before


def test_a_page_with_an_unknown_charset_and_bad_bytes_is_added(server, library, encoders):
    _, base = server
    head = '<head><meta charset="x-no-such-charset">'
    body = ARTICLE_HTML.replace("<head>", head).encode("utf-8") + b"\xff\xfe\xc3"
    Pages.routes["/odd"] = (200, {"Content-Type": "text/html; charset=x-no-such-charset"}, body, 0.0)
    report = add_url(library, f"{base}/odd", encoders=encoders)
    assert report.status == "added" and "41 workers" in report.article.text


def test_a_corpus_article_with_a_malformed_address_does_not_block_adding(server, library, encoders):
    _, base = server
    Pages.routes["/a"] = html(ARTICLE_HTML)
    (library.corpus_dir / "odd.md").write_text(
        "---\ntitle: Odd\nurl: http://127.0.0.1:99999/bad path\n---\nA note with a broken address.\n", encoding="utf-8")
    assert add_url(library, f"{base}/a", encoders=encoders).status == "added"


@pytest.mark.parametrize(
    "url, message",
    [("http://127.0.0.1:99999/", "port out of range"), ("http://user:pw@example.org/", "user name or password"),
     ("http://☃.example/", "is not valid")],
    ids=["port-out-of-range", "userinfo", "idna"],
)
def test_cli_add_of_a_malformed_address_says_why_in_one_line(tmp_path, url, message):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    result = run(["add", url], make_settings(tmp_path, corpus))
    assert result.returncode == 1, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert list(corpus.iterdir()) == []
