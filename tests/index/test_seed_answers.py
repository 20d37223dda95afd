"""The questions in seed-dev, answered (or declined) by the real engine over the seed article."""

import re

import pytest

from tests.conftest import seed_questions

QUESTIONS = seed_questions()


@pytest.mark.parametrize("case", QUESTIONS, ids=[q["id"] for q in QUESTIONS])
def test_seed_question(seed_engine, case):
    answer = seed_engine.ask(case["question"])
    assert answer.answered is case["answerable"], answer.text
    if case["answerable"]:
        assert any(expected in answer.text for expected in case["answer_contains_any"]), answer.text
        assert answer.citations, answer.text  # an answer always quotes, so it always cites
    for citation in answer.citations:
        article = seed_engine.article_text(citation.doc_id)
        assert article[citation.start : citation.end] == citation.quote
        assert citation.url and citation.title and citation.source and citation.published
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
    assert markers == {c.n for c in answer.citations}


def test_the_killed_civilians_figure_is_quoted_and_cited(seed_engine):
    answer = seed_engine.ask("How many civilians were killed?")
    assert answer.answered and "973" in answer.text
    assert any("973" in c.quote for c in answer.citations)


def test_arabic_question_says_it_quotes_english_sources(seed_engine):
    answer = seed_engine.ask("من هو وزير الخارجية الأمريكي الذي طالب بالمحاسبة؟")
    assert answer.language == "ar" and answer.answered
    assert "English" in answer.note


def test_a_declined_answer_lists_the_closest_sources(seed_engine):
    answer = seed_engine.ask("What is the population of Damascus?")
    assert not answer.answered
    assert answer.text.startswith("The sources I have don't say")
    assert answer.citations and answer.citations[0].doc_id == "syria-vows-accountability"


def test_follow_up_uses_the_earlier_question(seed_engine):
    answer = seed_engine.ask("and how many security forces?", context="How many civilians were killed?")
    assert answer.answered and "125" in answer.text


def test_source_filter_limits_the_search(seed_engine):
    hits = seed_engine.search("Rubio", doc_id="syria-vows-accountability")
    assert hits and all(h.doc_id == "syria-vows-accountability" for h in hits)
