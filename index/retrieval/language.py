"""Telling which language a text is in, cheaply enough to run on every question."""

from __future__ import annotations

import unicodedata

# Scripts that identify a language (or a family that shares one sentence segmenter) on their own.
_SCRIPT_LANGUAGES = {
    "ARABIC": "ar",
    "HEBREW": "he",
    "CYRILLIC": "ru",
    "GREEK": "el",
    "DEVANAGARI": "hi",
    "HANGUL": "ko",
    "HIRAGANA": "ja",
    "KATAKANA": "ja",
    "CJK": "zh",
    "THAI": "th",
}


def detect_language(text: str) -> str:
    """ISO 639-1 code of the dominant script's language; Latin script is taken as English.

    Script is what decides which embedder can read a question, and it cannot be fooled by a
    short question the way word statistics can.
    """
    counts: dict[str, int] = {}
    for char in text:
        if not char.isalpha():
            continue
        name = unicodedata.name(char, "")
        script = name.split(" ", 1)[0]
        counts[script] = counts.get(script, 0) + 1
    if not counts:
        return "en"
    script = max(counts, key=counts.__getitem__)
    return _SCRIPT_LANGUAGES.get(script, "en")


def is_english(language: str) -> bool:
    return language == "en"
