import pytest

from index.errors import InvalidQuestionError, VerbatimError


@pytest.mark.parametrize("question", ["", "   \n\t ", "?!…", "\x00\x07"])
def test_empty_questions_get_a_clear_message(seed_engine, question):
    with pytest.raises(InvalidQuestionError, match="question"):
        seed_engine.ask(question)


def test_a_huge_question_is_refused_with_the_limit(seed_engine):
    with pytest.raises(InvalidQuestionError, match="limit is 1,000"):
        seed_engine.ask("killed " * 1500)


def test_control_characters_are_dropped(seed_engine):
    answer = seed_engine.ask("How many\x00 civilians\x1b were\u202e killed?\r\n")
    assert answer.question == "How many civilians were killed?"
    assert answer.answered and "973" in answer.text


def test_right_to_left_text_gets_a_normal_answer(seed_engine):
    answer = seed_engine.ask("\u202bكم عدد المدنيين الذين قتلوا؟\u202c")
    assert answer.language == "ar"
    assert answer.citations  # answered or declined, it cites what it found


def test_unknown_source_id_is_a_clear_error(seed_engine):
    with pytest.raises(VerbatimError, match="verbatim sources"):
        seed_engine.ask("Who?", doc_id="no-such-article")


# ---------------------------------------------------------------- issue 10

LONE_SURROGATE = "How many civilians were \udfff killed?"


def test_a_lone_surrogate_is_dropped_in_ask_search_and_context(seed_engine):
    answer = seed_engine.ask(LONE_SURROGATE)
    assert answer.question == "How many civilians were killed?"
    assert answer.answered and "973" in answer.text
    hits = seed_engine.search("Marco \ud800Rubio")
    assert hits and "Rubio" in hits[0].text
    follow_up = seed_engine.ask("And who \udc80 demanded accountability?", context="killed \udfff civilians \ud83d")
    assert follow_up.question == "And who demanded accountability?"


def test_a_lone_surrogate_in_an_arabic_question_is_dropped(seed_engine):
    answer = seed_engine.ask("كم عدد \udfff المدنيين الذين قتلوا؟")
    assert answer.language == "ar" and "\udfff" not in answer.question


def test_a_surrogate_pair_becomes_the_character_it_encodes(seed_engine):
    from index.engine import clean_question

    assert clean_question("killed \ud83d\ude00 civilians", 100) == "killed \U0001F600 civilians"
    assert clean_question("killed\ufffe \uffff civilians\U0010ffff\ufdd0", 100) == "killed civilians"


def test_a_question_of_only_surrogates_is_empty(seed_engine):
    with pytest.raises(InvalidQuestionError, match="empty"):
        seed_engine.ask("\udfff\ud800 \udc00")


def test_a_huge_question_is_refused_before_it_is_cleaned(seed_engine):
    import time

    started = time.perf_counter()
    with pytest.raises(InvalidQuestionError, match="limit is 1,000"):
        seed_engine.ask("a" * 10_000_000)
    with pytest.raises(InvalidQuestionError, match="limit is 1,000"):
        seed_engine.search("a" * 10_000_000)
    with pytest.raises(InvalidQuestionError, match="limit is 1,000"):
        seed_engine.ask("Who?", context="a" * 10_000_000)
    assert time.perf_counter() - started < 0.2


def test_spaces_around_a_question_do_not_count_towards_the_limit(seed_engine):
    answer = seed_engine.ask(" " * 2_500 + "How many civilians were killed?" + "\n" * 500)
    assert answer.question == "How many civilians were killed?"


@pytest.mark.parametrize("k", [0, -1, 51, 10**9, True, False, 2.0, "3", [3]])
def test_k_must_be_a_whole_number_in_range(seed_engine, k):
    with pytest.raises(InvalidQuestionError, match="k must be a whole number from 1 to 50"):
        seed_engine.ask("How many civilians were killed?", k=k)
    with pytest.raises(InvalidQuestionError, match="k must be a whole number from 1 to 50"):
        seed_engine.search("How many civilians were killed?", k=k)


def test_k_in_range_is_used(seed_engine):
    assert len(seed_engine.search("Marco Rubio", k=1)) == 1
    assert seed_engine.ask("How many civilians were killed?", k=50).answered


@pytest.mark.parametrize("doc_id", [5, b"syria-vows-accountability", ["syria-vows-accountability"]])
def test_doc_id_must_be_text(seed_engine, doc_id):
    with pytest.raises(InvalidQuestionError, match="source id must be text"):
        seed_engine.ask("Who?", doc_id=doc_id)
    with pytest.raises(InvalidQuestionError, match="source id must be text"):
        seed_engine.search("Who?", doc_id=doc_id)


@pytest.mark.parametrize("context", [5, b"bytes"])
def test_context_must_be_text(seed_engine, context):
    with pytest.raises(InvalidQuestionError):
        seed_engine.ask("Who?", context=context)
