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
