"""Reading numbers, and the tables every reader of dates and figures shares: digits and month names.

One reader, so that the checks of written answers (index/answers/checks.py), the figures of claims
(index/retrieval/statement.py) and the figures of answers (index/answers/figures.py) agree on what a
number is: "1,200", "1200", "١٢٠٠", "1.2 thousand" and "one thousand two hundred" are one value;
"Fifteen people" gives 15 and "1.2 million people" 1,200,000. A lone "one" is no number (it is mostly
a pronoun: "one of the …"), nor are vague quantities ("dozens", "hundreds").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Arabic-Indic and Persian (Eastern Arabic-Indic) digits as 0-9; one character for one, so offsets stay.
DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")

# Month names, lower case, in English (with the usual abbreviations) and Arabic (the Egyptian/Gulf
# names and the Levantine ones, with and without hamza: كانون الثاني is January, and so on).
MONTHS: dict[str, int] = {}
for _number, _names in enumerate((
    "january jan يناير كانون_الثاني", "february feb فبراير شباط", "march mar مارس آذار اذار",
    "april apr أبريل ابريل نيسان", "may مايو أيار ايار", "june jun يونيو حزيران",
    "july jul يوليو تموز", "august aug أغسطس اغسطس آب", "september sept sep سبتمبر أيلول ايلول",
    "october oct أكتوبر اكتوبر تشرين_الأول تشرين_الاول", "november nov نوفمبر تشرين_الثاني",
    "december dec ديسمبر كانون_الأول كانون_الاول",
), start=1):
    for _name in _names.split():
        MONTHS[_name.replace("_", " ")] = _number

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i >= 2}
SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_NUMBER_WORD = "|".join([*_UNITS, *_TENS, *SCALES, "dozen"])
_WORD_NUMBER = re.compile(rf"\b(?:{_NUMBER_WORD})(?:(?:\s+|-|\s+and\s+)(?:{_NUMBER_WORD}))*\b", re.I)
# Digits with thousands separators and decimals, maybe a scale word ("1.2 million"); never digits inside a
# word ("H5N1"); an ordinal or a unit may follow ("12th", "5mg").
_DIGIT_NUMBER = re.compile(
    rf"(?<![\w.])(?P<n>\d+(?:[,٬]\d{{3}})*(?:[.٫]\d+)?)(?!\d)(?:\s+(?P<scale>{'|'.join(SCALES)})\b)?", re.I)


@dataclass(frozen=True)
class Number:
    value: float  # with its scale: "1.2 million" is 1200000
    figure: float  # as its digits say, before a scale word: 1.2 for "1.2 million" (else the value)
    written: str  # as the text has it: "1.2 million", "Fifteen", "1,068"
    start: int
    end: int
    spelled: bool  # in words ("fifteen"), not digits

    @property
    def digits(self) -> str:
        """The digits as written, without separators ("1068"); empty when spelled."""
        return "" if self.spelled else re.split(r"\s", self.written)[0].replace(",", "").replace("٬", "")


def read_numbers(text: str) -> list[Number]:
    """Every number in `text`, in order."""
    text = text.translate(DIGITS)
    found: list[Number] = []
    masked = list(text)  # words already read with a figure ("million" in "1.2 million") are not read again
    for match in _DIGIT_NUMBER.finditer(text):
        figure = float(match.group("n").replace(",", "").replace("٬", "").replace("٫", "."))
        scale = match.group("scale")
        value = figure * SCALES[scale.lower()] if scale else figure
        found.append(Number(value, figure, match.group(), match.start(), match.end(), spelled=False))
        if scale:
            masked[match.start("scale"):match.end("scale")] = "·" * len(scale)
    for match in _WORD_NUMBER.finditer("".join(masked)):
        spelled = _words_value(match.group())
        if spelled is not None:
            found.append(Number(spelled, spelled, match.group(), match.start(), match.end(), spelled=True))
    return sorted(found, key=lambda n: n.start)


def canonical(value: float) -> str:
    """A value as one string whatever its format: "1200", "2.5"."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _words_value(phrase: str) -> float | None:
    """"one thousand two hundred" → 1200, "two dozen" → 24; None for a lone "one"."""
    words = [w for w in re.split(r"[\s-]+", phrase.lower()) if w and w != "and"]
    if words == ["one"]:
        return None
    total, current = 0, 0
    for word in words:
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word == "dozen":
            current = max(current, 1) * 12
        else:
            total += max(current, 1) * SCALES[word]
            current = 0
    return float(total + current)
