"""Reading a statement once: the figures it gives (and what they count), whether it is negated, and
which way it says something moves.

A claim to check is read with `read_statement` next to its `ParsedQuestion` (index/retrieval/question.py),
and every source sentence it is compared with is read by the same function, so a claim and a source
are always read alike. `index/answers/claims.py` compares two readings.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from index.retrieval.numbers import DIGITS, MONTHS, read_numbers
from index.store.lexical import analyse

Direction = Literal["up", "down"]

_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?%?|[^\W\d_]+(?:['’][^\W\d_]+)?|%", re.UNICODE)
# Words that qualify a figure ("more than 50", "at least 830") rather than say what it counts.
_QUALIFIERS = frozenset("more than less fewer over under about around nearly almost at least most some only just "
                        "up to roughly approximately some estimated".split())
QUALIFIER_TERMS = frozenset(analyse(" ".join(_QUALIFIERS)))
_NEGATION_WORDS = r"not|no|never|none|neither|nor|without|cannot|fail(?:ed|s)?\s+to"
# The answer scorer's `negation_mismatch` feature (index/answers/features.py) reads negation with these
# words, as it was fitted: changing them changes its inputs.
SCORER_NEGATION = re.compile(rf"\b(?:{_NEGATION_WORDS})\b|n't\b|\bلا\b|\bلم\b|\bلن\b|\bليس", re.I)
# A statement to check is read with a few more ("lacks", غير: "not").
NEGATION = re.compile(rf"{SCORER_NEGATION.pattern}|\black(?:s|ed|ing)?\b|\bغير\b", re.I)
# "More than 973" and "fewer than 50" qualify a figure; they are no statement of direction.
_UP = re.compile(r"\b(increas\w*|ris(?:e|es|ing)|rose|risen|rais\w*|higher|greater|more(?!\s+than)|elevat\w*|"
                 r"enhanc\w*|promot\w*|activat\w*|improv\w*|gain\w*|upregulat\w*|up-regulat\w*|stronger|"
                 r"larger|accelerat\w*|boost\w*|expand\w*|grew|grow\w*|surg\w*)\b|ارتفاع|ارتفع|زيادة|زاد", re.I)
_DOWN = re.compile(r"\b(decreas\w*|reduc\w*|lower\w*|fewer(?!\s+than)|less(?!\s+than)|declin\w*|fell|fall\w*|"
                   r"drop\w*|diminish\w*|inhibit\w*|suppress\w*|impair\w*|worsen\w*|loss|lost|downregulat\w*|"
                   r"down-regulat\w*|weaker|smaller|slow\w*|shrank|shrink\w*|attenuat\w*|block\w*|prevent\w*)\b"
                   r"|انخفاض|انخفض|تراجع|نقص", re.I)


@dataclass(frozen=True)
class Figure:
    value: float
    written: str  # as the text has it ("1,068", "fifty")
    counts: frozenset[str]  # analysed words next to it: what it counts ("civilian", "kill")
    kind: Literal["count", "percent", "year"]


@dataclass(frozen=True)
class Statement:
    figures: tuple[Figure, ...]
    negated: bool
    directions: frozenset[Direction]  # "up" for increases, "down" for decreases; both or none: no direction


def read_statement(text: str) -> Statement:
    directions: set[Direction] = set()
    if _UP.search(text):
        directions.add("up")
    if _DOWN.search(text):
        directions.add("down")
    return Statement(figures=statement_figures(text), negated=bool(NEGATION.search(text)),
                     directions=frozenset(directions))


def statement_figures(text: str) -> tuple[Figure, ...]:
    """The figures of a text (index/retrieval/numbers.py) with the words around them; days of a month
    are dates, not figures."""
    text = unicodedata.normalize("NFKC", text).translate(DIGITS)
    figures: list[Figure] = []
    for number in read_numbers(text):
        before = [t.lower() for t in _TOKEN.findall(text[:number.start])][-3:]
        after = [t.lower() for t in _TOKEN.findall(text[number.end:])][:3]
        near_month = bool(before and before[-1] in MONTHS) or bool(after and after[0] in MONTHS)
        percent = text[number.end:].startswith("%") or bool(after and after[0] in {"%", "percent", "per"})
        year = len(number.digits) == 4 and number.digits.isdigit() and 1800 <= number.value <= 2100
        if near_month and not year:
            continue  # "March 6": a date
        kind: Literal["count", "percent", "year"] = "percent" if percent else "year" if year else "count"
        after_words = [t for t in after if t not in _QUALIFIERS]
        before_words = [t for t in before if t not in _QUALIFIERS]
        counts = frozenset(analyse(" ".join(after_words[:2] + before_words[-2:])))
        figures.append(Figure(number.value, number.written, counts, kind))
    return tuple(figures)
