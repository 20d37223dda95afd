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

from index.store.lexical import analyse

Direction = Literal["up", "down"]

_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?%?|[^\W\d_]+(?:['’][^\W\d_]+)?|%", re.UNICODE)
_WORD_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000, "dozen": 12,
}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_MONTHS = frozenset(
    "january february march april may june july august september october november december jan feb mar apr "
    "jun jul aug sep sept oct nov dec".split()
)
# Words that qualify a figure ("more than 50", "at least 830") rather than say what it counts.
_QUALIFIERS = frozenset("more than less fewer over under about around nearly almost at least most some only just "
                        "up to roughly approximately some estimated".split())
QUALIFIER_TERMS = frozenset(analyse(" ".join(_QUALIFIERS)))
_NEGATION = re.compile(r"\b(not|no|never|none|neither|nor|without|cannot|fail(?:ed|s)?\s+to|lack(?:s|ed|ing)?)\b"
                       r"|n't\b|\bلا\b|\bلم\b|\bلن\b|\bليس|\bغير\b", re.I)
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
    return Statement(figures=statement_figures(text), negated=bool(_NEGATION.search(text)),
                     directions=frozenset(directions))


def statement_figures(text: str) -> tuple[Figure, ...]:
    """The figures of a text with the words around them; days of a month are dates, not figures."""
    text = unicodedata.normalize("NFKC", text).translate(_DIGITS)
    tokens = [m.group() for m in _TOKEN.finditer(text)]
    lowered = [t.lower() for t in tokens]
    figures: list[Figure] = []
    skip_to = -1
    for i, token in enumerate(lowered):
        if i <= skip_to:
            continue
        value = _number(token)
        if value is None:
            continue
        end = i
        # "2.5 million", "three hundred"
        while end + 1 < len(lowered) and lowered[end + 1] in _SCALES:
            end += 1
            value *= _SCALES[lowered[end]]
        skip_to = end
        near_month = (i > 0 and lowered[i - 1] in _MONTHS) or (end + 1 < len(lowered) and lowered[end + 1] in _MONTHS)
        percent = token.endswith("%") or (end + 1 < len(lowered) and lowered[end + 1] in {"%", "percent", "per"})
        bare = token.replace(",", "")
        year = bare.isdigit() and len(bare) == 4 and 1800 <= value <= 2100
        if near_month and not year:
            continue  # "March 6": a date
        kind: Literal["count", "percent", "year"] = "percent" if percent else "year" if year else "count"
        after = [t for t in lowered[end + 1:end + 4] if t not in _QUALIFIERS]
        before = [t for t in lowered[max(0, i - 3):i] if t not in _QUALIFIERS]
        counts = frozenset(analyse(" ".join(after[:2] + before[-2:])))
        figures.append(Figure(value, " ".join(tokens[i:end + 1]), counts, kind))
    return tuple(figures)


def _number(token: str) -> float | None:
    if token in _WORD_NUMBERS:
        return float(_WORD_NUMBERS[token])
    if not token[0].isdigit():
        return None
    bare = token.rstrip("%").replace(",", "")
    try:
        return float(bare)
    except ValueError:
        return None
