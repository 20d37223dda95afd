"""One reader of numbers, digits and month names for the checks of written answers, the figures of claims
and the figures of answers (index/retrieval/numbers.py): they must agree on what a number is."""

from __future__ import annotations

import datetime as dt

import pytest

from index.answers.checks import dates_in, numbers_in
from index.answers.figures import count_asked, figure_in
from index.retrieval.numbers import read_numbers
from index.retrieval.question import parse_question
from index.retrieval.statement import read_statement, statement_figures
from index.retrieval.time_words import read_time_words

PEOPLE = count_asked(parse_question("How many people died?", asked_on=dt.date(2026, 3, 20)))


@pytest.mark.parametrize("sentence, written, value", [
    ("Fifteen people were killed in the floods.", "Fifteen", 15),
    ("About 1.2 million people died of hunger that year.", "About 1.2 million", 1_200_000),
    ("At least 1,068 people were killed, the monitor said.", "At least 1,068", 1068),
    ("قتل ١٢٠٠ شخص في الفيضانات", "١٢٠٠", 1200),  # as written
])
def test_the_three_readers_agree_on_a_figure(sentence, written, value):
    assert str(value) in numbers_in(sentence)  # the checks of written answers
    assert [f.value for f in statement_figures(sentence)] == [value]  # claims
    assert figure_in(sentence, PEOPLE) == (written, value)  # figures in answers


def test_a_lone_one_dates_and_words_inside_names_are_no_figures():
    assert numbers_in("One of them said so.") == set() and statement_figures("One of them said so.") == ()
    assert [n.value for n in read_numbers("H5N1 spread in 12 farms")] == [12]
    assert statement_figures("قتل 12 شخصا في 9 آذار")[0].value == 12  # 9 آذار is a date, not a figure
    assert [f.value for f in statement_figures("قتل 12 شخصا في 9 آذار")] == [12]


def test_one_month_table_and_one_digit_map():
    assert dates_in("في ١٢ اذار") == ({3}, {(3, 12)})  # the Levantine name without hamza, Arabic digits
    frame, _ = read_time_words("What happened on ۹ March?", dt.date(2026, 3, 20))  # Persian digits
    assert frame is not None and frame.start == frame.end == dt.date(2026, 3, 9)


def test_claims_read_lacks_as_negation_and_the_scorer_list_stays_as_fitted():
    from index.retrieval.statement import SCORER_NEGATION

    assert read_statement("The levee lacks inspection.").negated
    assert not SCORER_NEGATION.search("The levee lacks inspection.")
    assert SCORER_NEGATION.search("The levee didn't hold.") and SCORER_NEGATION.search("لم يصمد السد")
