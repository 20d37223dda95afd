"""Word-level text analysis shared by BM25 retrieval and sentence scoring, so both see the same terms."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN

_WORD = re.compile(r"\w+", re.UNICODE)
_ARABIC_DIACRITICS = re.compile(r"[\u0610-\u061A\u064B-\u065F\u0670\u06D6-\u06ED\u0640]")
_ARABIC_LETTER = re.compile(r"[\u0600-\u06FF]")

# Function words that carry no topic. English comes from bm25s; the Arabic list is short on purpose:
# prepositions, pronouns and question words only, so content words are never dropped.
ARABIC_STOPWORDS = frozenset(
    """في من على الى إلى عن مع هو هي هم هن انا أنا نحن انت أنت هذا هذه ذلك تلك الذي التي الذين
    ما ماذا لماذا متى اين أين كيف كم هل او أو ثم قد لقد كان كانت يكون كل بعض غير بين عند حتى لا لم لن
    ان أن إن و ف ب ل ك يا اي أي""".split()
) | {"متي", "الي"}  # متى and إلى as analyse sees them (ى → ي); not على: علي is also a name
ENGLISH_STOPWORDS = frozenset(STOPWORDS_EN) | {
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "did", "does", "do",
    "many", "much", "s", "has", "have", "had", "been", "were", "was", "am", "its", "from", "about",
}


def normalise_arabic(text: str) -> str:
    text = _ARABIC_DIACRITICS.sub("", text)
    return text.replace("أ", "ا").replace("إ", "ا").replace("آ", "ا").replace("ى", "ي").replace("ة", "ه")


_ARABIC_PREFIXES = ("وال", "بال", "كال", "فال", "لل", "ال")
_ARABIC_SUFFIXES = ("ها", "ان", "ات", "ون", "ين", "يه", "ية", "ه", "ة", "ي")


def light_arabic_stem(word: str) -> str:
    """Strip one article/preposition prefix, a leading و (and), and one common suffix, keeping ≥2 letters."""
    for prefix in _ARABIC_PREFIXES:
        if word.startswith(prefix) and len(word) - len(prefix) >= 2:
            word = word[len(prefix):]
            break
    if word.startswith("و") and len(word) > 3:
        word = word[1:]
    for suffix in _ARABIC_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            word = word[: -len(suffix)]
            break
    return word


@lru_cache(maxsize=4)
def _stemmer(language: str) -> Stemmer.Stemmer:
    return Stemmer.Stemmer(language)


def analyse(text: str) -> list[str]:
    """Lower-cased, stemmed content words of `text`, in order (repeats kept, for term frequency)."""
    text = unicodedata.normalize("NFKC", text).lower()
    if _ARABIC_LETTER.search(text):
        text = normalise_arabic(text)
    terms: list[str] = []
    english, arabic = _stemmer("english"), _stemmer("arabic")
    for word in _WORD.findall(text):
        if word in ENGLISH_STOPWORDS or word in ARABIC_STOPWORDS or word == "_":
            continue
        if _ARABIC_LETTER.match(word):
            stem = arabic.stemWord(word)
            # Arabic stems can collapse to one letter; keep the word then, it is more specific.
            terms.append(stem if len(stem) >= 2 else word)
            # Snowball's Arabic stems are aggressive; a light stem (only the article, conjunctions and
            # common endings removed) keeps apart words it merges. Both are indexed: ARCD hit@5 on whole
            # paragraphs 0.936 → 0.950 (docs/quality.md). Marked so the two vocabularies never mix.
            terms.append("~" + light_arabic_stem(word))
        elif len(word) >= 2 or word.isdigit():
            terms.append(english.stemWord(word))
    return terms
