"""Every document's date: from the page (trafilatura, htmldate as fallback), shown in every citation, or "undated"."""

from __future__ import annotations

from index.answers.compose import Answer, Citation
from index.sources.corpus import extract_html

BODY = "<p>" + "The Vellmoor council met to discuss the flood defences along the Harrowbeck river. " * 5 + "</p>"


def page(head: str = "", article: str = "") -> str:
    return (f"<html><head><title>Council meets</title>{head}</head><body><article><h1>Council meets</h1>"
            f"{article}{BODY}</article></body></html>")


def test_a_page_is_dated_by_its_metadata_its_text_or_its_address():
    meta = page('<meta property="article:published_time" content="2026-03-04T10:00:00Z">')
    assert extract_html(meta, url=None, doc_id="a", origin="a").published == "2026-03-04"
    in_text = page(article="<p>Published on 5 March 2026.</p>")
    assert extract_html(in_text, url=None, doc_id="b", origin="b").published == "2026-03-05"
    by_address = extract_html(page(), url="https://courier.example/2026/03/06/council", doc_id="c", origin="c")
    assert by_address.published == "2026-03-06"


def test_a_page_without_any_date_is_undated():
    assert extract_html(page(), url="https://courier.example/council", doc_id="d", origin="d").published is None


def test_the_terminal_citation_says_undated(capsys):
    from bot.cli import print_answer

    quote = "The Vellmoor council met."
    answer = Answer("q?", True, f"{quote} [1]", [Citation(1, "d", "Council meets", "Courier", None, None, quote,
                                                            "d#0", 0, len(quote))], "en")
    print_answer(answer)
    assert "[1] Council meets — Courier — undated" in capsys.readouterr().out
