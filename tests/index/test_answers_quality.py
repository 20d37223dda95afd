"""Answer quality on real indexes: sentence choice, refusals, Arabic questions, quotes verbatim.

The held-out questions (tests/data/seed-heldout2-queries.jsonl and seed-heldout3-queries.jsonl) are ours,
written for the seed article apart from seed-dev and from the questions the answer scorer is fitted on; the off-topic
ones (tests/data/offtopic-queries.jsonl) are 15 SciFact claims and 15 ARCD questions (CC BY 4.0 and
MIT), which the seed article cannot answer.
"""

from __future__ import annotations

import pytest

from index.answers.features import kind_offered
from index.evaluation import contains_expected, evaluate, load_questions, summarise
from index.retrieval.question import parse_question
from tests.index.quality_support import DATA, SEED_HELDOUT, SEED_HELDOUT3, build_engine, write_jsonl

OFF_TOPIC = DATA / "offtopic-queries.jsonl"


@pytest.fixture(scope="module")
def engine(seed_corpus, tmp_path_factory, encoders):
    return build_engine(seed_corpus, tmp_path_factory.mktemp("quality-index"), encoders)


def _verbatim(engine, answer) -> bool:
    """Every quote is the article's text at its offsets; an answer citing nothing is not evidence of that."""
    return bool(answer.citations) and all(
        engine.article_text(c.doc_id)[c.start:c.end] == c.quote for c in answer.citations
    )


# ---------------------------------------------------------------- what kind of sentence a question wants


def test_a_how_many_question_wants_a_number_and_a_who_question_a_new_name():
    def offered(question: str, sentence: str) -> float:
        return kind_offered(parse_question(question), sentence)

    assert offered("How many were killed?", "At least 830 people died.") == 1.0
    assert offered("How many were killed?", "Many people died.") == -1.0
    assert offered("Who called for calm?", "The call came from Volker Turk.") == 1.0
    # A name the question already holds is no answer to it.
    assert offered("Who is Volker Turk?", "The statement came from Volker Turk.") == -1.0
    assert offered("When did it start?", "It started on Thursday.") == 1.0
    assert offered("كم عدد القتلى؟", "More than 973 civilians were killed.") == 1.0
    assert offered("What did the president promise?", "He promised an inquiry.") == 0.0


def test_number_question_is_answered_with_the_sentence_that_has_the_number(engine):
    answer = engine.ask("How many Assad loyalists were killed in the clashes?")
    assert answer.answered
    first = answer.citations[0].quote
    assert "148" in first, answer.text
    assert _verbatim(engine, answer)


def test_name_question_is_answered_with_the_sentence_that_names_the_person(engine):
    answer = engine.ask("Who is the British Foreign Secretary?")
    assert answer.answered and "David Lammy" in answer.citations[0].quote, answer.text
    answer = engine.ask("Which UN official called for an immediate end to the killings?")
    assert answer.answered and "Volker Turk" in answer.text, answer.text


def test_an_answer_is_whole_sentences_each_from_its_cited_passage_in_article_order(engine):
    answer = engine.ask("What did al-Sharaa promise?")
    assert answer.answered and 1 <= len(answer.citations) <= 3
    for citation in answer.citations:
        assert citation.quote[0].isupper() or citation.quote[0] in "“\"'"
        assert citation.quote.rstrip("”\"'")[-1] in ".!?"
        assert f"{citation.quote} [{citation.n}]" in answer.text
    starts = [c.start for c in answer.citations]
    assert starts == sorted(starts)  # one article: read in its order


# ---------------------------------------------------------------- answering and refusing, measured


@pytest.mark.parametrize("questions, answerable, unanswerable, right_floor, declined_floor", [
    (SEED_HELDOUT, 30, 15, 0.40, 0.70),  # measured 0.467 / 0.800
    (SEED_HELDOUT3, 26, 14, 0.55, 0.55),  # measured 0.615 / 0.643
])
def test_held_out_seed_questions_answered_and_declined(engine, questions, answerable, unanswerable, right_floor,
                                                        declined_floor):
    # Questions never fitted on, worded unlike the article (docs/quality.md has the figures; these floors
    # sit just under them, so a change that loses answers or answers more of the unanswerable fails).
    summary = summarise(evaluate(engine, load_questions(questions)))
    answers = summary["answers"]
    assert answers["answerable"] == answerable and answers["unanswerable"] == unanswerable
    assert answers["answerable_right"] >= right_floor, answers
    assert answers["unanswerable_declined"] >= declined_floor, answers
    assert answers["quotes_verbatim"] == 1.0


def test_a_question_worded_unlike_the_article_is_answered(engine):
    # The article says "security forces" and "images from social media"; the question says neither.
    answer = engine.ask("In which towns were government troops seen in online videos?")
    assert answer.answered and "Jableh" in answer.text, answer.text
    assert _verbatim(engine, answer)


def test_an_on_topic_question_the_article_does_not_answer_is_declined_and_says_what_is_missing(engine):
    answer = engine.ask("How many people were killed in Homs?")
    assert not answer.answered
    assert answer.not_mentioned == ["Homs"]
    assert answer.text.startswith("The sources don’t mention Homs. The closest they report: ")
    # What they do report is offered, quoted and cited, and marked as the closest, not as the answer.
    assert answer.citations and f"{answer.citations[0].quote} [1]" in answer.text
    assert _verbatim(engine, answer)
    payload = answer.to_json()
    assert payload["answered"] is False and payload["not_mentioned"] == ["Homs"] and payload["citations"]


def test_a_day_the_article_never_names_is_said_to_be_missing(engine):
    # The article counts the dead "since March 6"; of March 7 alone it says nothing.
    answer = engine.ask("How many civilians were killed on March 7 alone?")
    assert not answer.answered and answer.not_mentioned == ["March 7"]
    assert answer.text.startswith("The sources don’t mention March 7. The closest they report: "), answer.text
    assert _verbatim(engine, answer)
    since = engine.ask("How many civilians have been killed since March 6?")
    assert since.not_mentioned == [] and since.answered and "973" in since.text, since.text


@pytest.mark.parametrize("question", [
    "How many bodies were recovered from mass graves near the coast?",  # nothing is said of graves
    "How many children were among the victims?",  # victims are counted, children are not
])
def test_an_on_topic_question_about_something_unreported_is_declined(engine, question):
    answer = engine.ask(question)
    assert not answer.answered, answer.text
    assert answer.text.startswith("The sources I have don't say")


def test_off_topic_questions_are_declined(engine):
    results = evaluate(engine, load_questions(OFF_TOPIC))
    answered = [r.question for r in results if r.answered]
    assert len(results) == 30
    assert len(answered) <= 1, answered
    assert all(r.verbatim for r in results)


def test_a_declined_answer_says_so_and_cites_the_closest_sentence(engine):
    answer = engine.ask("What is the population of Damascus?")
    assert not answer.answered
    assert answer.text.startswith("The sources I have don't say")
    assert _verbatim(engine, answer)


# ---------------------------------------------------------------- Arabic


def test_arabic_question_over_english_sources_quotes_english_and_says_so(engine):
    answer = engine.ask("من هو وزير الخارجية الأمريكي الذي طالب بالمحاسبة؟")
    assert answer.answered and contains_expected(answer.text, ["Marco Rubio"]), answer.text
    assert answer.language == "ar"
    assert answer.note and "English" in answer.note
    assert _verbatim(engine, answer)


def test_arabic_number_question_over_english_sources(engine):
    answer = engine.ask("كم عدد المدنيين الذين قتلوا؟")
    assert answer.answered and ("973" in answer.text or "830" in answer.text), answer.text


ARABIC_CORPUS = [
    {"id": "nile", "title": "نهر النيل",
     "text": "نهر النيل هو أطول أنهار العالم. يبلغ طوله نحو 6650 كيلومترا. ويصب النيل في البحر المتوسط."},
    {"id": "cairo", "title": "القاهرة",
     "text": "القاهرة هي عاصمة مصر وأكبر مدنها. أسسها جوهر الصقلي عام 969 للميلاد."},
]


def test_arabic_question_over_arabic_sources_is_answered_without_a_translation_note(tmp_path, encoders):
    corpus = write_jsonl(tmp_path / "ar.jsonl", ARABIC_CORPUS)
    engine = build_engine(corpus, tmp_path / "index", encoders)
    answer = engine.ask("من أسس القاهرة؟")
    # The right article, quoted without a translation note. (The sentence naming the founder calls Cairo
    # only "it" and ranks second: a known miss, docs/quality.md.)
    assert answer.answered and answer.citations[0].doc_id == "cairo", answer.text
    assert answer.note is None
    assert engine.search("كم يبلغ طول نهر النيل؟")[0].doc_id == "nile"
    assert _verbatim(engine, answer)


def test_nothing_but_the_question_is_embedded_to_answer(engine, monkeypatch):
    # Sentence vectors are stored at build time: answering embeds the question once, and a follow-up
    # also its own words, never a candidate sentence.
    encoded: list[str] = []
    original = engine.encoders.dense.encode_queries

    def counting(texts):
        encoded.extend(texts)
        return original(texts)

    monkeypatch.setattr(engine.encoders.dense, "encode_queries", counting)
    answer = engine.ask("How many Assad loyalists were killed in the clashes?")
    assert answer.answered and "148" in answer.text
    assert encoded == ["How many Assad loyalists were killed in the clashes?"]
