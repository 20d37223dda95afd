"""Understanding a question once: its language, its words, the kind of answer it wants, what it names.

Retrieval and answering both read one `ParsedQuestion`, so a question is language-detected and
word-analysed in one place, and new readings of a question (time words, say) are added here.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

from index.retrieval.language import detect_language, is_english
from index.retrieval.time_words import TimeFrame, named_days, read_time_words
from index.store.lexical import analyse

AnswerKind = Literal["quantity", "time", "person", "place"]

_QUANTITY = re.compile(
    r"\b(how\s+many|how\s+much|how\s+old|how\s+long|number\s+of|toll|count|figure|tally|age)\b|كم|عدد|حصيلة|عمر", re.I
)
_PERSON = re.compile(r"^\s*(who|whom|whose)\b|\bwho\b|من\s+هو|من\s+هي|من\s+هم|^\s*من\s|^\s*ومن\s", re.I)
_TIME = re.compile(r"\bwhen\b|\bwhat\s+(day|date|year|month|time)\b|\bsince\s+when\b|متى|متي|في\s+اي\s+يوم|تاريخ", re.I)
_PLACE = re.compile(
    r"\bwhere\b|\bwhich\s+(town|city|village|country|province|region|area|countries|towns|cities)\b|أين|اين|اي\s+مدينة",
    re.I,
)
# Capitalised words that start a question or are question words are not names.
_NAME_WORD = re.compile(r"\b[A-Z][\w'’\-]*[a-z][\w'’\-]*\b|\b[A-Z]{2,}\b")
_NUMBER = re.compile(r"\b\d[\d,.]*\b")
_NOT_NAMES = frozenset(
    "what which who whom whose when where why how is are was were did does do has have had can could would "
    "should will the a an in on at of for to by from and or according since after before during tell give "
    "name list i".split()
)

# Words that frame a question rather than name what it is about ("what is the *name* of ...").
_FRAMING_WORDS = frozenset(analyse(
    "name named most main mainly kind type exactly tell know mention mentioned according say said describe "
    "described happen happened call called"
))
_ADJECTIVE_ENDINGS = ("ean", "ian", "ese", "ish", "ern", "can")
CONTEXT_WEIGHT = 0.2  # a follow-up's own words count more than the earlier question's


@dataclass(frozen=True)
class ParsedQuestion:
    text: str  # the cleaned question
    context: str | None  # the earlier question a follow-up continues
    language: str  # ISO 639-1, by script
    terms: dict[str, float]  # analysed content words and their weights (framing words left out)
    kind: AnswerKind | None  # the kind of fact the question asks for
    names: tuple[str, ...]  # names and numbers the question mentions, as written
    # When it is asked, and what its time words ("yesterday", "in March", "latest") or an explicit
    # asking date (`as_of`: nothing published later is known yet) make of the sources' dates.
    asked_on: dt.date | None = None
    time: TimeFrame | None = None
    topic_text: str | None = None  # the question without its time words (None: it has none)

    @property
    def retrieval_text(self) -> str:
        """What retrieval searches for: a follow-up is read together with the question it follows; time
        words are left out, since no article says "yesterday" about what happened yesterday."""
        own = self.topic_text or self.text
        return f"{self.context} {own}" if self.context else own

    @property
    def retrieval_terms(self) -> list[str]:
        return analyse(self.retrieval_text)

    @property
    def english(self) -> bool:
        return is_english(self.language)


def parse_question(text: str, context: str | None = None, *, asked_on: dt.date | None = None,
                   as_of: dt.date | None = None, dated_sources: bool = True) -> ParsedQuestion:
    """Read a cleaned question (see `index.engine.clean_question`) and the earlier one, if any.

    Time words are read against `as_of` (an asking date in the past: sources published after it are
    not known yet), else `asked_on` (default: today, UTC). Over sources without dates
    (`dated_sources=False`: encyclopaedia paragraphs, say) they are ordinary words: "the last dynasty"."""
    asked = as_of or asked_on or dt.datetime.now(dt.UTC).date()
    time, topic = read_time_words(text, asked) if dated_sources else (None, text)
    if as_of is not None:  # the range ends by the asking day at the latest, and nothing later is known
        time = TimeFrame(time.start if time else None, min(time.end or as_of, as_of) if time else as_of,
                         time.newest if time else False, time.words if time else (), known_until=as_of)
    own = topic if time is not None and time.words else text
    terms = {term: CONTEXT_WEIGHT for term in analyse(context or "") if term not in _FRAMING_WORDS}
    terms.update({term: 1.0 for term in analyse(own) if term not in _FRAMING_WORDS})
    # A day that only bounds a range ("since March 1", "by March 5") is no day the sources must mention.
    bounding = time is not None and time.ranged and time.start != time.end
    days = () if bounding else tuple(written for written, _ in named_days(text))
    return ParsedQuestion(
        text=text,
        context=context,
        language=detect_language(text),
        terms=terms,
        kind=answer_kind(text),
        # Days are named in the whole question: its time words are cut from `own`.
        names=tuple(dict.fromkeys((*question_names(own), *days))),
        asked_on=asked,
        time=time,
        topic_text=own if own != text else None,
    )


def answer_kind(question: str) -> AnswerKind | None:
    if _QUANTITY.search(question):
        return "quantity"
    if _TIME.search(question):
        return "time"
    if _PERSON.search(question):
        return "person"
    if _PLACE.search(question):
        return "place"
    return None


def question_names(question: str) -> tuple[str, ...]:
    """The proper names and numbers a question mentions ("Homs", "Volker Turk", "2024"), in order.

    A source that never mentions one of them cannot be what the question is about; the answer says so.
    """
    found: list[str] = []
    words = list(_NAME_WORD.finditer(question))
    run: list[str] = []
    previous_end = -2
    for match in words:
        word = match.group()
        bare = re.sub(r"['’]s$", "", word)  # "What's", "Who's" are question words too
        # A word that starts the question (or a sentence of it) is capitalised for that alone:
        # "Summarise", "Roughly", "Besides" are no names. Acronyms ("UN") still are.
        before = question[:match.start()].rstrip().rstrip("\"'“‘(")
        initial = not before or before[-1] in ".!?:;"
        if bare.lower() in _NOT_NAMES or (initial and not bare.isupper()):
            if run:
                found.append(" ".join(run))
                run = []
            continue
        gap = question[previous_end:match.start()] if previous_end >= 0 else None
        if run and gap is not None and gap.strip() == "":
            run.append(word)
        else:
            if run:
                found.append(" ".join(run))
            run = [word]
        previous_end = match.end()
    if run:
        found.append(" ".join(run))
    found = [re.sub(r"['’]s$", "", n) for n in found]
    # "European", "Mediterranean", "Kurdish": adjectives that describe rather than name.
    found = [n for n in found if " " in n or not n.lower().endswith(_ADJECTIVE_ENDINGS)]
    found += [n for n in _NUMBER.findall(question) if len(n.strip(",.")) >= 2]
    return tuple(dict.fromkeys(found))
