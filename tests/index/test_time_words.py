"""Time words in questions, read against the asking day, and the dates sentences name."""

from __future__ import annotations

import datetime as dt

import pytest

from index.retrieval.question import parse_question
from index.retrieval.time_words import named_days, read_time_words, sentence_date

ASKED = dt.date(2026, 3, 11)  # a Wednesday
D = dt.date


@pytest.mark.parametrize("question, start, end, newest, rest", [
    ("What happened today?", D(2026, 3, 11), D(2026, 3, 11), False, "What happened?"),
    ("What did officials say yesterday?", D(2026, 3, 10), D(2026, 3, 10), False, "What did officials say?"),
    ("Who spoke last week in Vellmoor?", D(2026, 3, 2), D(2026, 3, 8), False, "Who spoke in Vellmoor?"),
    ("What happened this week?", D(2026, 3, 9), D(2026, 3, 11), False, "What happened?"),
    ("What did the mayor say in March?", D(2026, 3, 1), D(2026, 3, 31), False, "What did the mayor say?"),
    ("What did the mayor say in April?", D(2025, 4, 1), D(2025, 4, 30), False, "What did the mayor say?"),
    ("What happened in March 2024?", D(2024, 3, 1), D(2024, 3, 31), False, "What happened?"),
    ("What was the toll on 9 March?", D(2026, 3, 9), D(2026, 3, 9), False, "What was the toll?"),
    ("What was the toll on March 9, 2025?", D(2025, 3, 9), D(2025, 3, 9), False, "What was the toll?"),
    ("Who was rescued before 4 March?", None, D(2026, 3, 3), False, "Who was rescued?"),
    ("Who was rescued after 4 March?", D(2026, 3, 5), None, False, "Who was rescued?"),
    ("How many died since March 4?", D(2026, 3, 4), ASKED, False, "How many died?"),
    ("What is the latest toll?", None, None, True, "What is toll?"),
    ("How many people died so far?", None, None, True, "How many people died?"),
    ("Where are the rescuers now?", None, None, True, "Where are the rescuers?"),
    ("What is the most recent figure?", None, None, True, "What is figure?"),
])
def test_english_time_words(question, start, end, newest, rest):
    frame, kept = read_time_words(question, ASKED)
    assert frame is not None
    assert (frame.start, frame.end, frame.newest) == (start, end, newest)
    assert kept == rest


@pytest.mark.parametrize("question, start, end, newest", [
    ("ماذا حدث اليوم؟", D(2026, 3, 11), D(2026, 3, 11), False),
    ("ماذا قال المسؤولون أمس؟", D(2026, 3, 10), D(2026, 3, 10), False),
    ("ماذا حدث الأسبوع الماضي؟", D(2026, 3, 2), D(2026, 3, 8), False),
    ("ماذا قال رئيس البلدية في مارس؟", D(2026, 3, 1), D(2026, 3, 31), False),
    ("ماذا قال رئيس البلدية في آذار؟", D(2026, 3, 1), D(2026, 3, 31), False),
    ("ما آخر حصيلة للقتلى؟", None, None, True),
    ("كم عدد القتلى حتى الآن؟", None, None, True),
    ("أين فرق الإنقاذ الآن؟", None, None, True),
])
def test_arabic_time_words(question, start, end, newest):
    frame, kept = read_time_words(question, ASKED)
    assert frame is not None and (frame.start, frame.end, frame.newest) == (start, end, newest)
    assert all(word not in kept for word in frame.words)


def test_arabic_akhir_is_latest_only_before_the_noun_it_modifies():
    for question in ("ما آخر الأخبار عن الفيضانات؟", "ما آخر التطورات في المدينة؟", "ما هي آخر الأرقام؟"):
        frame, kept = read_time_words(question, ASKED)
        assert frame is not None and frame.newest and "آخر" not in kept, question
    for question in ("ما هو سبب آخر للفيضانات؟", "هل هناك سبب آخر؟", "ما اسم اخر سلالة ملكية في الصين؟"):
        assert read_time_words(question, ASKED) == (None, question), question


@pytest.mark.parametrize("question", [
    "How many civilians were killed?",
    "Since what date have civilians been killed, according to the Observatory?",
    "What did May say about the march on the capital?",
    "When did the fighting start?",
])
def test_questions_without_time_words_are_read_as_before(question):
    parsed = parse_question(question, asked_on=ASKED)
    assert parsed.time is None and parsed.topic_text is None
    assert parsed.retrieval_text == question


def test_time_words_leave_the_searched_words_and_the_names():
    parsed = parse_question("What did Mayor Quarrie say in March?", asked_on=ASKED)
    assert parsed.retrieval_text == "What did Mayor Quarrie say?"
    assert "march" not in parsed.terms and "quarri" in " ".join(parsed.terms)
    assert parsed.names == ("Mayor Quarrie",)  # "March" is a time, not something the sources must mention


def test_as_of_sets_the_asking_day_and_closes_the_range():
    parsed = parse_question("What happened yesterday?", as_of=D(2026, 3, 5))
    assert parsed.asked_on == D(2026, 3, 5) and (parsed.time.start, parsed.time.end) == (D(2026, 3, 4), D(2026, 3, 4))
    plain = parse_question("How many people died?", as_of=D(2026, 3, 5))
    assert plain.time is not None and plain.time.start is None and plain.time.end == D(2026, 3, 5)
    assert plain.retrieval_text == "How many people died?"


@pytest.mark.parametrize("sentence, published, day, named, earlier", [
    ("Officials said on 9 March that 41 people had died.", "2026-03-10", D(2026, 3, 9), True, False),
    ("The river burst its banks on Sunday.", "2026-03-02", D(2026, 3, 1), True, False),
    ("Fighting erupted last Thursday.", "2025-03-09", D(2025, 3, 6), True, False),
    ("More than 973 civilians were killed since March 6.", "2025-03-09", D(2025, 3, 9), False, False),
    ("Prior reports had detailed at least 830 deaths.", "2025-03-09", D(2025, 3, 9), False, True),
    ("The toll rose to 27.", None, None, False, False),
])
def test_sentence_dates(sentence, published, day, named, earlier):
    when = sentence_date(sentence, published)
    assert (when.day, when.named, when.earlier) == (day, named, earlier)


def test_over_undated_sources_time_words_are_only_words():
    parsed = parse_question("ما اسم اخر سلالة ملكية في الصين؟", asked_on=ASKED, dated_sources=False)
    assert parsed.time is None and parsed.retrieval_text == "ما اسم اخر سلالة ملكية في الصين؟"


@pytest.mark.parametrize("question", ["What helps scientists to date fossils?",
                                      "The Charter and the Convention now co-exist under what?"])
def test_words_that_only_look_like_time_words(question):
    assert read_time_words(question, ASKED)[0] is None


def test_nothing_typed_or_dated_at_the_calendar_edges_crashes():
    import random

    from index.answers.figures import Count, figure_in

    words = ("on in since before after until by as of last this week month year today yesterday now latest so far "
             "March May 9 31 29 February 2024 1,000 ، ؟ اليوم أمس آذار في قبل منذ حتى الآن آخر Sunday Monday , . ? "
             "2026-02-30 0001-01-01 9999-12-31 ٩ ٢٠٢٥ deaths killed people 12 %").split()
    pick = random.Random(11)  # noqa: S311 - repeatable texts, not a secret
    for _ in range(2000):
        text = " ".join(pick.choice(words) for _ in range(pick.randint(0, 10)))
        for asked in (D(1, 1, 1), D(1, 1, 20), D(9999, 12, 31), ASKED):
            read_time_words(text, asked)
        sentence_date(text, pick.choice([None, "garbage", "0001-01-01", "0001-01-03", "9999-12-31", "2026-03-09"]))
        figure_in(text, Count(frozenset({"peopl"}), False))
        figure_in(text, Count(frozenset(), True))
    assert read_time_words("What happened yesterday?", D(1, 1, 1)) == (None, "What happened yesterday?")


def test_named_days_meet_however_a_day_is_written():
    assert named_days("How many were killed on March 7 alone?") == (("March 7", "3-7"),)
    assert [key for _, key in named_days("on 7 March 2025, the 7th of March and 2025-03-07")] == ["3-7"]
    assert named_days("كم قتيلا سقط في ٧ آذار؟") == (("٧ آذار", "3-7"),)
    assert named_days("29 February") == (("29 February", "2-29"),)
    # A month alone, an impossible day and numbers that are no days name nothing.
    for text in ("What happened in March?", "on 30 February", "May 32 people march?", "973 civilians"):
        assert named_days(text) == (), text


def test_a_day_the_question_names_is_a_name_the_sources_must_mention():
    parsed = parse_question("How many civilians were killed on March 7 alone?", asked_on=ASKED)
    assert parsed.names == ("March 7",)
    assert parse_question("What happened in March?", asked_on=ASKED).names == ()


@pytest.mark.parametrize("text, day", [
    ("What may 5 people do?", None),  # "may" the verb
    ("Article 12 may apply to the inquiry.", None),
    ("Where did the march 12 protesters gather?", None),  # "march" the noun
    ("How many died on may 5?", "5-5"),  # lower case, but after a date's preposition
    ("on the 5th of may", "5-5"),
    ("may 5, 2025", "5-5"),  # or before a year
    ("How many died May 5?", "5-5"),  # capitalised: a month
])
def test_may_and_march_next_to_a_number_are_dates_only_when_written_as_dates(text, day):
    assert [key for _, key in named_days(text)] == ([day] if day else [])
    frame, _ = read_time_words(text, ASKED)
    assert (frame is not None and frame.narrows) == (day is not None), frame


@pytest.mark.parametrize("text", ["What happened on Auguſt 5?", "aprİl 9", "ſeptember 3 2025"])
def test_a_month_written_with_letters_that_only_match_without_case_does_not_crash(text):
    # Python's re.I equates "ſ" with "s" and "İ" with "i": such a month name matches but is no key of MONTHS.
    from index.answers.features import folded_words

    frame, _ = read_time_words(text, ASKED)
    assert frame is not None and frame.narrows
    assert len(named_days(text)) == 1
    parse_question(text, asked_on=ASKED)
    sentence_date(text, "2026-03-09")
    folded_words(f"An article that writes {text} in its text.")


@pytest.mark.parametrize("text, day", [
    ("what happened march 7?", "3-7"),  # lower case, as typed in Discord: nothing but punctuation follows
    ("how many died may 5", "5-5"),
    ("what happened march 7th in vellmoor", "3-7"),  # an ordinal
    ("what happened the 5th of may?", "5-5"),  # "of"
])
def test_may_and_march_typed_in_lower_case_are_dates_when_nothing_else_reads_them(text, day):
    assert [key for _, key in named_days(text)] == [day]
    frame, _ = read_time_words(text, ASKED)
    assert frame is not None and frame.narrows


@pytest.mark.parametrize("article, question", [
    ("Rain fell on Vellmoor on March 7-8.", "What happened on 8 March?"),
    ("Rain fell on Vellmoor on 7-8 March.", "What happened on March 7?"),
    ("Rain fell on Vellmoor on 7 and 8 March.", "What happened on March 7?"),
    ("Rain fell on Vellmoor on 7–8 March.", "What happened on 7 March?"),
])
def test_a_day_in_a_range_of_days_is_mentioned(article, question):
    from index.answers.features import folded_words, mentions

    name = parse_question(question, asked_on=ASKED).names[-1]
    assert mentions(folded_words(article), name), (article, name)
    assert not mentions(folded_words(article), "March 9")


def test_a_weekday_written_with_letters_that_only_match_without_case_does_not_crash():
    frame, _ = read_time_words("What happened on Thurſday?", ASKED)
    assert frame is not None and frame.start == D(2026, 3, 5)
    assert sentence_date("Fighting erupted last Thurſday.", "2026-03-09").day == D(2026, 3, 5)


@pytest.mark.parametrize("question", ["How many people have died since March 1?", "How many had died by March 5?",
                                      "What happened after 3 March?", "What happened between March 1 and March 10?"])
def test_a_day_that_only_bounds_a_range_is_no_name_the_sources_must_mention(question):
    parsed = parse_question(question, asked_on=ASKED)
    assert parsed.time is not None and parsed.time.start != parsed.time.end
    assert parsed.names == ()


def test_weekdays_an_article_dates_by_are_days_of_its_publication_week():
    from index.answers.features import folded_words
    from index.retrieval.time_words import weekday_days

    words = folded_words("The river burst its banks on Sunday; the inquiry opened last Monday.")
    assert weekday_days(words, D(2026, 3, 2)) == {"3-1", "2-23"}  # a Monday: that Sunday, the Monday before
    assert weekday_days(folded_words("They met on Sunday."), D(1, 1, 1)) == set()  # before the calendar
    assert weekday_days(folded_words("Sunday is a day of rest."), D(2026, 3, 2)) == set()


@pytest.mark.parametrize("question, start, end", [
    ("What happened on 7-8 March?", D(2026, 3, 7), D(2026, 3, 8)),
    ("What happened March 7-8?", D(2026, 3, 7), D(2026, 3, 8)),
    ("What happened on the 7th and 8th of March 2025?", D(2025, 3, 7), D(2025, 3, 8)),
    ("كم قتيلا سقط في 7-8 آذار؟", D(2026, 3, 7), D(2026, 3, 8)),
    ("What happened on 8 March?", D(2026, 3, 8), D(2026, 3, 8)),
])
def test_a_range_of_days_is_read_whole_and_leaves_the_searched_words(question, start, end):
    frame, kept = read_time_words(question, ASKED)
    assert frame is not None and (frame.start, frame.end) == (start, end)
    assert not any(ch.isdigit() for ch in kept) and " on?" not in kept and "في؟" not in kept, kept
