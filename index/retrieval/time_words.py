"""Time words: what a question's "yesterday", "in March" or "latest" means, and what date a sentence names.

A question's time words are read once (by `index.retrieval.question.parse_question`), against the
time it is asked, into a `TimeFrame`: a range of publication dates to keep and/or a wish for the
newest reports. They are then cut out of the words retrieval searches for: "yesterday" is in no
article that happened yesterday. Sentences are dated here too ("on 9 March", "last Thursday",
"prior reports"), for figures that changed over time and for timelines.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from index.retrieval.numbers import DIGITS, MONTHS

WEEKDAYS: dict[str, int] = {}
for _number, _names in enumerate((
    "monday الاثنين الإثنين", "tuesday الثلاثاء", "wednesday الأربعاء الاربعاء", "thursday الخميس",
    "friday الجمعة", "saturday السبت", "sunday الأحد الاحد",
)):
    for _name in _names.split():
        WEEKDAYS[_name] = _number

# Longest names first, so "كانون الثاني" wins over a shorter prefix.
_MONTH = "(?:" + "|".join(sorted(map(re.escape, MONTHS), key=len, reverse=True)) + r")\.?"
_WEEKDAY = "(?:" + "|".join(sorted(map(re.escape, WEEKDAYS), key=len, reverse=True)) + ")"
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:19|20)\d\d"
# A date as written: 9 March [2025], March 9[, 2025], March [2025], 2025-03-09. Group names: d m y.
_DATE = (
    rf"(?:(?P<iso>{_YEAR}-\d\d-\d\d)"
    rf"|(?P<d1>{_DAY})\s+(?:of\s+)?(?P<m1>{_MONTH})(?:,?\s+(?P<y1>{_YEAR}))?"
    rf"|(?P<m2>{_MONTH})\s+(?P<d2>{_DAY})(?!\d)(?:,?\s+(?P<y2>{_YEAR}))?"
    rf"|(?P<m3>{_MONTH})(?:\s+(?:عام\s+)?(?P<y3>{_YEAR}))?)"
)
_B = r"(?<![\w])"  # word start, also for Arabic (where \b would split on some letters' marks)
_E = r"(?![\w])"


@dataclass(frozen=True)
class TimeFrame:
    """What a question's time words ask for: publication dates from `start` to `end` (inclusive; None is
    open), and/or the newest reports first."""

    start: dt.date | None = None
    end: dt.date | None = None
    newest: bool = False
    words: tuple[str, ...] = ()  # the time words as the question wrote them
    # The asking day of a question asked "as of" a past day: nothing published after it is known yet, so
    # later articles are never used (a hard limit, unlike the range, which falls back when nothing is in it).
    known_until: dt.date | None = None

    @property
    def narrows(self) -> bool:
        return self.start is not None or self.end is not None

    @property
    def ranged(self) -> bool:
        """The time words ask for a narrower range of publication dates than "up to the asking day"."""
        return self.start is not None or (self.end is not None and self.end != self.known_until)

    def contains(self, day: dt.date | None) -> bool:
        if day is None:
            return False
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)

    def describe(self) -> str:
        """The range in words, for notes: "on 2025-03-09", "from 2025-03-01 to 2025-03-31", "before …"."""
        if self.start and self.end:
            return f"on {self.start}" if self.start == self.end else f"from {self.start} to {self.end}"
        if self.start:
            return f"from {self.start} on"
        if self.end:
            return f"up to {self.end}"
        return "at any date"


def iso_day(value: str | None) -> dt.date | None:
    """A stored publication date ("2025-03-09", maybe with a time) as a date; None when it is not one."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _number_of(names: dict[str, int], written: str) -> int:
    """The number of a month or weekday name that a case-insensitive pattern matched."""
    number = names.get(written.lower())
    if number is None:  # re.I also matches letters that lower() does not make ASCII ("Auguſt", "Thurſday")
        number = next(n for name, n in names.items() if re.fullmatch(re.escape(name), written, re.I))
    return number


def _month_number(name: str) -> int:
    return _number_of(MONTHS, name.rstrip("."))


def _weekday_number(name: str) -> int:
    return _number_of(WEEKDAYS, name)


def _latest_month(month: int, asked: dt.date) -> tuple[dt.date, dt.date]:
    """That month, in the latest year it does not lie after the asking date."""
    year = asked.year if month <= asked.month else asked.year - 1
    return _month_range(year, month)


def _month_range(year: int, month: int) -> tuple[dt.date, dt.date]:
    first = dt.date(year, month, 1)
    following = dt.date(year + (month == 12), month % 12 + 1, 1)
    return first, following - dt.timedelta(days=1)


def _day(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _latest_day(month: int, day: int, asked: dt.date) -> dt.date | None:
    """That day of the month, in the latest year it does not lie after `asked`."""
    found = _day(asked.year, month, day)
    if found is None or found > asked:
        found = _day(asked.year - 1, month, day)
    return found


def _latest_weekday(weekday: int, asked: dt.date, *, before: bool = False) -> dt.date:
    """The latest such weekday on or (with `before`) strictly before `asked`."""
    back = (asked.weekday() - weekday) % 7
    if back == 0 and before:
        back = 7
    return asked - dt.timedelta(days=back)


# Month names that are also common words: "What may 5 people do?", "Article 12 may apply", "the march 12
# protesters". Written in lower case they name a month only after a date's preposition, before a year, with an
# ordinal or "of", or at the end of what was typed ("what happened march 7?").
_WORD_MONTHS = frozenset({"may", "march"})
_DATE_LEAD = re.compile(r"\b(?:on|in|since|by|until|till|from|before|after|during|of)\s+(?:the\s+)?$", re.I)
_DATE_END = re.compile(r"\s*(?:[?!.,;:]|$)")  # what typed lower case "what happened march 7?" ends with


def _written_as_date(match: re.Match[str]) -> bool:
    """Whether a `_DATE` match with a day is a date, not "may" or "march" as a word next to a number."""
    for d, m, y in (("d1", "m1", "y1"), ("d2", "m2", "y2")):
        month = match.group(m)
        if month and match.group(d):
            if month.rstrip(".") not in _WORD_MONTHS or match.group(y):
                return True
            # An ordinal ("march 7th"), "of" ("the 5th of may") or the question's end make it a date too.
            if not match.group(d).isdigit() or " of " in match.group(0).lower():
                return True
            if _DATE_END.match(match.string, match.end()):
                return True
            return bool(_DATE_LEAD.search(match.string[:min(match.start(d), match.start(m))]))
    return True


def date_span(match: re.Match[str], asked: dt.date) -> tuple[dt.date, dt.date] | None:
    """The days a `_DATE` match names (a day, or a whole month), read against `asked`."""
    if not _written_as_date(match):
        return None
    groups = match.groupdict()
    if groups.get("iso"):
        day = iso_day(groups["iso"])
        return (day, day) if day else None
    for d, m, y in (("d1", "m1", "y1"), ("d2", "m2", "y2")):
        if groups.get(m) and groups.get(d):
            month, number = _month_number(groups[m]), int(re.sub(r"\D", "", groups[d]))
            found = _day(int(groups[y]), month, number) if groups.get(y) else _latest_day(month, number, asked)
            return (found, found) if found else None
    if groups.get("m3"):
        month = _month_number(groups["m3"])
        return _month_range(int(groups["y3"]), month) if groups.get("y3") else _latest_month(month, asked)
    return None


_WRITTEN_DATE = re.compile(rf"{_B}{_DATE}{_E}", re.I)
_DAYS_BEFORE = re.compile(r"(?<!\w)(\d{1,2})(?:st|nd|rd|th)?\s*(?:[-–]|\s(?:and|to)\s)\s*$", re.I)
_DAYS_AFTER = re.compile(r"\s*[-–]\s*(\d{1,2})(?:st|nd|rd|th)?(?!\w)", re.I)


def named_days(text: str) -> tuple[tuple[str, str], ...]:
    """The calendar days a text writes out ("March 7", "7 March 2025", "٧ آذار", "2025-03-07"), each as
    written and as a key ("3-7") that meets the same day however another text writes it. The year is left
    out of the key: a report says "on March 7" of this year's March 7. Months alone name no day."""
    found: dict[str, str] = {}  # key: the day as first written
    for match in _WRITTEN_DATE.finditer(text.translate(DIGITS)):
        groups = match.groupdict()
        if groups.get("iso"):
            day = iso_day(groups["iso"])
            if day:
                found.setdefault(day_key(day), text[match.start():match.end()])
            continue
        if not _written_as_date(match):
            continue
        for d, m in (("d1", "m1"), ("d2", "m2")):
            if groups.get(m) and groups.get(d):
                month, numbers = _month_number(groups[m]), [int(re.sub(r"\D", "", groups[d]))]
                # A range of days ("7-8 March", "March 7-8", "7 and 8 March") names each of its days.
                other, start, end = _range_partner(match)
                if other is not None:
                    numbers.append(other)
                for number in numbers:
                    day = _day(2024, month, number)  # a leap year: 29 February is a day
                    if day:
                        found.setdefault(day_key(day), text[start:end])
    return tuple((written, key) for key, written in found.items())


def _range_partner(match: re.Match[str]) -> tuple[int | None, int, int]:
    """The other day of a range a `_DATE` match ends or starts ("7-8 March", "March 7-8", "7 and 8 March"),
    if any, and the offsets of the whole range as written."""
    first, last = match.span()
    if match.group("d1") and (before := _DAYS_BEFORE.search(match.string[max(0, first - 16):first])):
        return int(before.group(1)), first - len(before.group(0)), last
    if match.group("d2") and (after := _DAYS_AFTER.match(match.string, last)):
        return int(after.group(1)), first, after.end()
    return None, first, last


def day_key(day: dt.date) -> str:
    return f"{day.month}-{day.day}"


# "on Sunday", "last Thursday": a day named by its weekday, kept as a mark ("weekday 6", "last weekday 3")
# among a text's folded words until its publication date tells which day it is (`weekday_days`).
_WEEKDAY_NAMED = re.compile(rf"\b(?P<last>last|on|by|as\s+of)\s+(?P<wd>{_WEEKDAY})\b", re.I)


def _weekday_mark(weekday: int, last: bool) -> str:
    return f"{'last ' if last else ''}weekday {weekday}"


def weekday_marks(text: str) -> set[str]:
    return {_weekday_mark(_weekday_number(match.group("wd")), match.group("last").lower() == "last")
            for match in _WEEKDAY_NAMED.finditer(text)}


def weekday_days(words: frozenset[str] | set[str], published: dt.date) -> set[str]:
    """The keys (see `named_days`) of the days a text names by weekday, read against its publication date
    as `sentence_date` reads them: "on Sunday" in Monday 2 March's paper is 1 March."""
    keys: set[str] = set()
    for weekday in range(7):  # 14 lookups, not a pass over every word of the article (this runs per question)
        for last in (False, True):
            if _weekday_mark(weekday, last) in words:
                try:
                    keys.add(day_key(_latest_weekday(weekday, published, before=last)))
                except OverflowError:  # a publication date at the edge of the calendar
                    continue
    return keys


# ---------------------------------------------------------------- questions

# آخر means "latest" only before the noun it modifies: a definite one (آخر الأخبار، آخر التطورات، آخر
# الأرقام) or a news word (آخر حصيلة، آخر أرقام). After its noun it means "another" (سبب آخر، شخص آخر
# للمساعدة), and before other bare nouns it is rather "last" (آخر سلالة, the last dynasty).
_LATEST_OF = (r"(?:ال[\u0621-\u064a]|حصيلة|أخبار|اخبار|تطورات|مستجدات|أرقام|ارقام|تحديث|تحديثات|إحصائية|احصائية"
              r"|إحصائيات|احصائيات|عدد|نبأ|أنباء|انباء)")
_NEWEST = re.compile(
    rf"{_B}(?:(?:the\s+)?(?:latest|newest|most\s+recent(?:ly)?|so\s+far|until\s+now|right\s+now|"
    rf"at\s+the\s+moment|currently)|as\s+of\s+now|(?:to\s+date|now)(?=\s*[?.!,;]|\s*$)"
    rf"|حتى\s+الآن|حتى\s+الان|لحد\s+الآن|الآن|الان|حاليا|حالياً|أحدث|احدث|الأخيرة|الاخيرة"
    rf"|(?:آخر|اخر)(?=\s+{_LATEST_OF})){_E}",
    re.I,
)
_RELATIVE = re.compile(
    rf"{_B}(?P<w>today|yesterday|(?:this|last|past)\s+(?:week|month|year)|(?:in\s+)?the\s+(?:past|last)\s+(?:week|month)"
    rf"|اليوم|أمس|امس|البارحة|(?:في\s+)?(?:هذا\s+الأسبوع|هذا\s+الاسبوع|الأسبوع\s+الماضي|الاسبوع\s+الماضي"
    rf"|هذا\s+الشهر|الشهر\s+الماضي|هذا\s+العام|العام\s+الماضي|هذه\s+السنة|السنة\s+الماضية)){_E}",
    re.I,
)
_BOUNDED = re.compile(rf"{_B}(?P<how>before|after|since|until|by|as\s+of|قبل|بعد|منذ|حتى)\s+(?:the\s+)?{_DATE}{_E}",
                      re.I)
_ON_DAY = re.compile(rf"{_B}(?:(?:on|in|during|في|خلال)\s+(?:the\s+)?|(?:يوم\s+))?{_DATE}{_E}", re.I)
_ON_WEEKDAY = re.compile(rf"{_B}(?:on\s+(?:last\s+)?|last\s+|يوم\s+)(?P<wd>{_WEEKDAY}){_E}", re.I)


def _relative_range(word: str, asked: dt.date) -> tuple[dt.date, dt.date]:
    word = " ".join(word.lower().split()).removeprefix("in ").removeprefix("في ")
    monday = asked - dt.timedelta(days=asked.weekday())
    if word in {"today", "اليوم"}:
        return asked, asked
    if word in {"yesterday", "أمس", "امس", "البارحة"}:
        day = asked - dt.timedelta(days=1)
        return day, day
    if word in {"this week", "هذا الأسبوع", "هذا الاسبوع"}:
        return monday, asked
    if word in {"last week", "الأسبوع الماضي", "الاسبوع الماضي"}:
        return monday - dt.timedelta(days=7), monday - dt.timedelta(days=1)
    if word.endswith("week"):  # past week, the last week
        return asked - dt.timedelta(days=7), asked
    if word.endswith("month") and ("past" in word or "the last" in word):
        return asked - dt.timedelta(days=31), asked
    if word in {"this month", "هذا الشهر"}:
        return asked.replace(day=1), asked
    if word in {"last month", "الشهر الماضي"}:
        end = asked.replace(day=1) - dt.timedelta(days=1)
        return end.replace(day=1), end
    if word in {"this year", "past year", "هذا العام", "هذه السنة"}:
        return dt.date(asked.year, 1, 1), asked
    return dt.date(asked.year - 1, 1, 1), dt.date(asked.year - 1, 12, 31)  # last year


def read_time_words(text: str, asked: dt.date) -> tuple[TimeFrame | None, str]:
    """The question's time frame (None when it has no time words) and the question without them."""
    try:
        return _read_time_words(text.translate(DIGITS), asked)
    except (OverflowError, ValueError):  # "yesterday" asked as of 1 January of year 1: no such day
        return None, text


def _read_time_words(text: str, asked: dt.date) -> tuple[TimeFrame | None, str]:
    start: dt.date | None = None
    end: dt.date | None = None
    newest = False
    words: list[str] = []
    spans: list[tuple[int, int]] = []

    def narrow(low: dt.date | None, high: dt.date | None) -> None:
        nonlocal start, end
        if low is not None:
            start = low if start is None else max(start, low)
        if high is not None:
            end = high if end is None else min(end, high)

    def taken(match: re.Match[str]) -> bool:
        return any(match.start() < b and a < match.end() for a, b in spans)

    for match in _BOUNDED.finditer(text):
        span = date_span(match, asked)
        if span is None:
            continue
        how = " ".join(match.group("how").lower().split())
        if how in {"before", "قبل"}:
            narrow(None, span[0] - dt.timedelta(days=1))
        elif how in {"after", "بعد"}:
            narrow(span[1] + dt.timedelta(days=1), None)
        elif how in {"since", "منذ"}:
            narrow(span[0], asked)
        else:  # until, by, as of, حتى
            narrow(None, span[1])
        spans.append(match.span())
        words.append(match.group())
    for pattern in (_RELATIVE, _ON_WEEKDAY, _ON_DAY):
        for match in pattern.finditer(text):
            if taken(match):
                continue
            if pattern is _RELATIVE:
                narrow(*_relative_range(match.group("w"), asked))
            elif pattern is _ON_WEEKDAY:
                day = _latest_weekday(_weekday_number(match.group("wd")), asked,
                                      before=match.group().lower().startswith("last"))
                narrow(day, day)
            else:
                span = date_span(match, asked)
                if span is None or (match.group("m3") and not _month_alone_is_a_date(match, text)):
                    continue
                span, (first, last) = _with_day_range(match, span)
                narrow(*span)
                spans.append((first, last))
                words.append(text[first:last])
                continue
            spans.append(match.span())
            words.append(match.group())
    for match in _NEWEST.finditer(text):
        if taken(match):
            continue
        newest = True
        spans.append(match.span())
        words.append(match.group())
    if not spans:
        return None, text
    if start is not None and end is not None and start > end:  # "since March" asked in February: an empty range
        start, end = end, start
    kept = text
    for a, b in sorted(spans, reverse=True):
        kept = kept[:a] + " " + kept[b:]
    kept = re.sub(r"\s+([?.!,;:؟،])", r"\1", " ".join(kept.split()))
    return TimeFrame(start, end, newest, tuple(words)), kept or text


_RANGE_LEAD = re.compile(r"(?:\b(?:on|in|during)|في|خلال|يوم)\s+(?:the\s+)?$", re.I)


def _with_day_range(match: re.Match[str], span: tuple[dt.date, dt.date]
                    ) -> tuple[tuple[dt.date, dt.date], tuple[int, int]]:
    """A day widened to the range it ends or starts ("7-8 March", "March 7-8", "7 and 8 March": 7 to 8
    March), with the offsets of all that was written, so the whole range leaves what is searched."""
    other, first, last = _range_partner(match)
    if other is not None and first < match.start() and (
            lead := _RANGE_LEAD.search(match.string[max(0, first - 16):first])):  # "on 7-8 March": "on" too
        first -= len(lead.group(0))
    day = span[0]
    paired = _day(day.year, day.month, other) if other is not None and span[0] == span[1] else None
    if paired is None:
        return span, match.span()
    return (min(day, paired), max(day, paired)), (first, last)


def _month_alone_is_a_date(match: re.Match[str], text: str) -> bool:
    """"in March", "March 2025" and "في آذار" name a month; a bare "May" or "march" is likely a word."""
    written = match.group()
    if match.group("y3"):
        return True
    lead = written.split()[0].lower()
    if lead in {"in", "during", "في", "خلال"}:
        return not written.split()[-1].islower() or _arabic(written)
    return False


def _arabic(text: str) -> bool:
    return any("\u0600" <= ch <= "\u06ff" for ch in text)


# ---------------------------------------------------------------- sentences

# Words that say a sentence reports what was said before the article's own date.
_EARLIER = re.compile(
    r"\b(?:prior|earlier|previous(?:ly)?|initial(?:ly)?|first\s+reported|had\s+(?:been\s+)?(?:reported|detailed|"
    r"put|said|counted|estimated|recorded|given|stood))\b|سابقا|سابقاً|في\s+وقت\s+سابق|تقارير\s+سابقة",
    re.I,
)
_SENTENCE_DATE = re.compile(
    rf"(?P<lead>\b(?:since|from|after|before|until|between)\s+(?:the\s+)?)?"
    rf"(?:\b(?:on|by|as\s+of|last)\s+(?P<wd>{_WEEKDAY})\b|{_B}{_DATE}{_E})",
    re.I,
)


@dataclass(frozen=True)
class SentenceDate:
    """When a sentence says something happened or was reported: a date it names, else its article's."""

    day: dt.date | None
    named: bool  # the sentence itself names the day
    earlier: bool  # it reports what was said before its article's date ("prior reports had …")

    def sort_key(self) -> tuple[int, int]:
        """Later reports sort higher; an "earlier" report comes just before its article's date."""
        return (self.day.toordinal() if self.day else 0, 0 if self.earlier else 1)

    def label(self) -> str:
        if self.day is None:
            return "undated"
        return f"before {self.day}" if self.earlier else str(self.day)


def sentence_date(sentence: str, published: str | None) -> SentenceDate:
    """Date a sentence by the day it names ("on 9 March", "by Sunday", "last Thursday"), read against its
    article's date; a span's start ("since March 6") dates nothing. Else the article's date, marked
    earlier when the sentence reports earlier figures."""
    reference = iso_day(published)
    earlier = bool(_EARLIER.search(sentence))
    try:
        named = _named_day(sentence, reference) if reference is not None else None
    except (OverflowError, ValueError):  # an article dated at the edge of the calendar
        named = None
    if named is not None:
        return SentenceDate(named, True, False)
    return SentenceDate(reference, False, earlier and reference is not None)


def _named_day(sentence: str, reference: dt.date) -> dt.date | None:
    """The single day a sentence names, read against its article's date."""
    for match in _SENTENCE_DATE.finditer(sentence.translate(DIGITS)):
        if match.group("lead"):
            continue
        if match.group("wd"):
            return _latest_weekday(_weekday_number(match.group("wd")), reference,
                                   before=match.group().lower().startswith("last"))
        if match.group("m3") and not match.group("y3"):
            continue  # a month alone ("in March") is too loose to date a report
        span = date_span(match, reference)
        if span is not None and span[0] == span[1]:
            return span[0]
    return None
