"""Checking a model's sentence against the quotes it cites, before anyone sees it.

A written sentence is kept only when it cites at least one of the sentences the model was given, and
every number, date and name in it appears in what it cites (the cited sentences, with their outlets
and dates, which the model was shown too). Formats may differ: "1,200", "1200", "one thousand two
hundred" and "١٢٠٠" are one number; "12 April", "April 12" and "2025-04-12" one date. What this cannot
see (a claim made of common words only, a name in a script without capitals) is listed in docs/llm.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from index.answers.features import fold, folded_words, mentions
from index.retrieval.numbers import DIGITS, MONTHS, canonical, read_numbers
from index.retrieval.question import question_names
from index.store.lexical import ENGLISH_STOPWORDS


@dataclass(frozen=True)
class Evidence:
    """One numbered sentence the model was given: its text, outlet and date."""

    text: str
    source: str | None = None
    published: str | None = None

    @property
    def full_text(self) -> str:
        return " ".join(part for part in (self.text, self.source, self.published) if part)


@dataclass(frozen=True)
class WrittenSentence:
    text: str  # without its citation markers
    cites: tuple[int, ...]  # the numbers it cites, as the model wrote them (1-based)

    def marked(self, numbers: Iterable[int]) -> str:
        """The sentence with `numbers` as its markers, the way extractive answers end theirs."""
        return f"{self.text} " + "".join(f"[{n}]" for n in numbers)


# ---------------------------------------------------------------- reading the model's text

_MARKER = re.compile(r"\[\s*([\d٠-٩۰-۹]+(?:\s*[,،;]\s*[\d٠-٩۰-۹]+)*)\s*\]")
_MARKERS = r"(?:\s*\[\s*[\d٠-٩۰-۹]+(?:\s*[,،;]\s*[\d٠-٩۰-۹]+)*\s*\])+"
_END = r"[.!?؟。…]"
# A sentence ends where its citation markers meet its final punctuation (in either order), or where the
# text ends; a full stop without markers ("U.S.", "3 p.m.") does not end one, since every sentence must cite.
_BOUNDARY = re.compile(rf"(?:{_MARKERS}\s*{_END}|{_END}{_MARKERS}|{_MARKERS}(?=[ \t]*\n))(?=\s|$)")


def split_written(text: str, *, final: bool = True) -> tuple[list[WrittenSentence], str]:
    """The complete sentences at the start of `text`, and what is left over.

    While a reply streams in (`final=False`) a sentence that ends with a marker counts as complete only
    once the text after it has begun, so a marker still arriving ("[1] [2]") stays with its sentence;
    at the end (`final`) the rest is one last sentence."""
    sentences: list[WrittenSentence] = []
    rest = text
    while True:
        match = _BOUNDARY.search(rest)
        if match is None:
            break
        after = rest[match.end():].lstrip()
        # "moved [1]." is over; "moved. [1]" may yet go on "[2]", so it waits for the next words.
        if not final and match.group().endswith("]") and (not after or after[0] in "[.!?؟。…,،;:"):
            break
        sentences.append(written_sentence(rest[:match.end()]))
        rest = rest[match.end():]
    if final and rest.strip():
        sentences.append(written_sentence(rest))
        rest = ""
    return [s for s in sentences if s.text], rest


def written_sentence(raw: str) -> WrittenSentence:
    cites: list[int] = []
    for match in _MARKER.finditer(raw):
        for number in re.split(r"[,،;]", match.group(1)):
            value = int(number.strip().translate(DIGITS))
            if value not in cites:
                cites.append(value)
    text = _MARKER.sub("", raw)
    text = re.sub(r"\s+([.!?؟。…,،;:])", r"\1", " ".join(text.split()))  # "moved [1]." → "moved."
    text = text.lstrip("-*•# ").strip()  # list bullets and headings are the model's layout, not its words
    return WrittenSentence(text, tuple(cites))


# ---------------------------------------------------------------- numbers

def numbers_in(text: str) -> set[str]:
    """Every number in `text` as a canonical value (index/retrieval/numbers.py): "1,200", "1200", "١٢٠٠",
    "one thousand two hundred" and "1.2 thousand" are all "1200"; a figure with a scale word is also kept
    as written ("1.2")."""
    return {canonical(v) for number in read_numbers(text) for v in {number.value, number.figure}}


# ---------------------------------------------------------------- dates

# English names capitalised ("May", "Sept"), Arabic ones as they are.
_MONTH_NAMES: dict[str, int] = {name.capitalize() if name.isascii() else name: n for name, n in MONTHS.items()}
_MONTH = "|".join(sorted(map(re.escape, _MONTH_NAMES), key=len, reverse=True))
# English month names are matched capitalised only: "may" and "march" are verbs as well.
_MONTH_WORD = re.compile(rf"(?<!\w)({_MONTH})\.?(?!\w)")
_DAY_MONTH = re.compile(rf"(?<![\w.])(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\.?(?!\w)")
_MONTH_DAY = re.compile(rf"(?<!\w)({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?(?![\d])")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")


def dates_in(text: str) -> tuple[set[int], set[tuple[int, int]]]:
    """The months `text` names and the (month, day) dates it gives, in any of the usual formats."""
    text = text.translate(DIGITS)
    months = {_MONTH_NAMES[m.group(1)] for m in _MONTH_WORD.finditer(text)}
    days = {(_MONTH_NAMES[m.group(2)], int(m.group(1))) for m in _DAY_MONTH.finditer(text)}
    days |= {(_MONTH_NAMES[m.group(1)], int(m.group(2))) for m in _MONTH_DAY.finditer(text)}
    for match in _ISO_DATE.finditer(text):
        month, day = int(match.group(2)), int(match.group(3))
        months.add(month)
        days.add((month, day))
    return months, days


# ---------------------------------------------------------------- names

_FIRST_WORD = re.compile(r"^\W*([A-Z][\w'’\-]*)")
# Words that often open an English sentence and are no names (besides the stop words).
_OPENERS = frozenset(
    "according however meanwhile also additionally furthermore moreover overall instead still yet thus so "
    "about around nearly almost roughly some many several most few both each every all another other such "
    "despite although though while since after before during following later earlier then now today".split()
)


def names_in(text: str) -> list[str]:
    """The names in a written sentence: those a question would be read for (question_names), and its
    first word when that is capitalised and no function word, since a sentence may well start with one."""
    names = [n for n in question_names(text) if not any(ch.isdigit() for ch in n)]
    first = _FIRST_WORD.match(text)
    if first:
        word = re.sub(r"['’]s$", "", first.group(1))
        if fold(word) not in ENGLISH_STOPWORDS | _OPENERS and not any(word in n.split() for n in names):
            after = text[first.end():]
            if names and after.startswith(" ") and after.lstrip().startswith(names[0]):
                names[0] = f"{word} {names[0]}"  # "Petra" + "Lund": one name, as written
            else:
                names.insert(0, word)
    return names


# ---------------------------------------------------------------- the check


def problem_with(sentence: WrittenSentence, given: Mapping[int, Evidence]) -> str | None:
    """Why `sentence` may not be shown (it cites nothing it was given, or says a number, date or name
    that the sentences it cites do not), or None when it may."""
    if not sentence.cites:
        return "cites no sentence"
    unknown = [n for n in sentence.cites if n not in given]
    if unknown:
        return f"cites [{unknown[0]}], which it was not given"
    evidence = " ".join(given[n].full_text for n in sentence.cites)
    extra_numbers = numbers_in(sentence.text) - numbers_in(evidence)
    if extra_numbers:
        return f"the number {sorted(extra_numbers)[0]} is not in the sentences it cites"
    months, days = dates_in(sentence.text)
    cited_months, cited_days = dates_in(evidence)
    if months - cited_months or days - cited_days:
        return "a date is not in the sentences it cites"
    words = folded_words(evidence)
    for name in names_in(sentence.text):
        if not mentions(words, name):
            return f"the name {name!r} is not in the sentences it cites"
    return None
