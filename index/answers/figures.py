"""Figures that changed as the news did: 830 dead, then 973, then over 1,000.

When a question asks "how many" and the sentences that answer it give different figures for the
same count, the newest report leads and the earlier ones follow, newest first, each with its outlet
and date. A report is dated by the day its sentence names ("by Sunday", "on 9 March"), else by its
article's date; a sentence that relays earlier figures ("prior reports had detailed at least 830")
counts as just before its article's date.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from index.answers.features import Candidate
from index.retrieval.numbers import MONTHS, read_numbers
from index.retrieval.question import ParsedQuestion
from index.retrieval.time_words import SentenceDate, sentence_date
from index.store.lexical import analyse

_QUALIFIER = r"(?:(?:more|fewer|less)\s+than|over|at\s+least|nearly|almost|about|around|some|up\s+to|at\s+most|" \
             r"roughly|approximately|أكثر\s+من|اكثر\s+من|نحو|حوالي|ما\s+لا\s+يقل\s+عن)"
_QUALIFIED = re.compile(rf"(?<!\w){_QUALIFIER}\s+$", re.I)  # "more than " just before a figure
_WORD = re.compile(r"\w+")
_WINDOW = 5  # words either side of a figure that say what it counts
# A question about the dead and a sentence about deaths count the same thing, in whichever words.
_CASUALTY_WORDS = frozenset(analyse(
    "killed kill killing killings dead death deaths died die dying slain victims toll casualties fatalities "
    "lives bodies قتل قتلى قتيل ضحايا وفاة وفيات حصيلة"
))
_PEOPLE_WORDS = frozenset(analyse("people persons civilians residents villagers مدنيين مدنيون أشخاص شخص"))
_MONTH_WORDS = frozenset(name for name in MONTHS if " " not in name)


@dataclass(frozen=True)
class FigureReport:
    """One figure for the asked count, as one source reported it."""

    n: int  # its citation
    figure: str  # as written: "more than 973"
    value: int
    date: str  # "2025-03-09", "before 2025-03-09" (relays earlier reports), or "undated"
    source: str | None  # the outlet

    def to_json(self) -> dict:
        return {"n": self.n, "figure": self.figure, "date": self.date, "source": self.source}


@dataclass(frozen=True)
class _Found:
    candidate: Candidate
    figure: str
    value: int
    when: SentenceDate


@dataclass(frozen=True)
class Count:
    """What a "how many" question counts: its own nouns ("security forces"), or, when it only asks about
    the dead or people in general, any figure of deaths or people."""

    nouns: frozenset[str]
    of_people: bool


_COUNTED = re.compile(r"(?:\b(?:how\s+many|number\s+of)|كم\s+عدد|كم|عدد)\s+(?P<what>.+?)(?=\s+(?:in|at|on|during|"
                      r"across|according|by|since|from|after|before|over|under|near|among|throughout|في|منذ|بعد|قبل|"
                      r"حسب|وفق|خلال)(?!\w)|[?.!,؟،]|$)", re.I)


def count_asked(question: ParsedQuestion) -> Count:
    """What "How many *people died* in the floods?" counts: the words after "how many", up to the
    place or time it asks about (all the question's words when it has no "how many": "the toll")."""
    phrase = _COUNTED.search(question.topic_text or question.text)
    words = frozenset(analyse(phrase.group("what"))) if phrase else frozenset(
        term for term, weight in question.terms.items() if weight == 1.0)
    nouns = words - _CASUALTY_WORDS - _PEOPLE_WORDS
    return Count(nouns, not nouns and bool(words & (_CASUALTY_WORDS | _PEOPLE_WORDS)))


def figure_in(sentence: str, count: Count) -> tuple[str, int] | None:
    """The first figure in `sentence` that counts what was asked (never a year, a day of a month or a
    percentage): its neighbouring words name the question's nouns, or, for a question about people or the
    dead, the figure is of deaths or people ("830 deaths", "973 civilians", "the toll … rose to 41,")."""
    for number in read_numbers(sentence):
        if not float(number.value).is_integer():
            continue  # a count is whole
        value = int(number.value)
        before = _WORD.findall(sentence[:number.start])[-_WINDOW:]
        after = _WORD.findall(sentence[number.end:])[:_WINDOW]
        neighbours = [w.lower() for w in before[-1:] + after[:1]]
        if any(w in _MONTH_WORDS for w in neighbours) or (1900 <= value <= 2100 and number.digits.isdigit()):
            continue  # a date, not a count
        rest = sentence[number.end:].lstrip()
        if rest.startswith("%") or (after and after[0].lower() in {"percent", "per", "pc"}):
            continue
        qualifier = _QUALIFIED.search(sentence[:number.start])
        written = sentence[qualifier.start() if qualifier else number.start:number.end].strip()
        if count.nouns:
            if set(analyse(" ".join(before + after))) & count.nouns:
                return written, value
        elif count.of_people:
            counted = set(analyse(after[0])) if after and rest[:1].isalpha() else set()
            clause = re.split(r"[,;:]", sentence[:number.start])[-1]  # "the death toll … rose to 27"
            if counted & (_CASUALTY_WORDS | _PEOPLE_WORDS) or (
                    not counted and set(analyse(clause)) & _CASUALTY_WORDS):
                return written, value
    return None


def figure_history(question: ParsedQuestion, ranked: Sequence[tuple[Candidate, float]],
                   floor: float, limit: int) -> list[_Found]:
    """The answering sentences (probability at least `floor`) that give different figures for the asked
    count, newest report first; empty unless at least two figures differ."""
    if question.kind != "quantity":
        return []
    count = count_asked(question)
    if not count.nouns and not count.of_people:
        return []
    found: list[_Found] = []
    for candidate, probability in ranked:
        # Another report of the same count need not read like the best answer to the scorer ("the toll
        # rose to 27" does not say "people died"), but it must come from a passage retrieved for the
        # question whose article names everything the question names, or come close to the best.
        if probability < floor and candidate.missing_names:
            continue
        figure = figure_in(candidate.text, count)
        if figure is None or any(f.value == figure[1] for f in found):
            continue
        found.append(_Found(candidate, figure[0], figure[1], sentence_date(candidate.text, candidate.hit.published)))
    if len(found) < 2:
        return []
    # Newest first; reports of one date keep the scorer's order (sorted is stable). Only reports older
    # than the lead follow it: figures of the same day may count different things, so none is "earlier".
    found.sort(key=lambda f: f.when.sort_key(), reverse=True)
    lead = found[0]
    earlier = [f for f in found[1:] if f.when.sort_key() < lead.when.sort_key()]
    return [lead, *earlier][:limit] if earlier else []
