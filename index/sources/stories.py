"""Telling a new story from another copy of one the corpus holds: the same address once tracking
parameters are dropped, the same text, or near-identical text from another outlet. `verbatim add` and
feed polls both ask it, so a story is stored once however it arrives."""

from __future__ import annotations

import hashlib
import heapq
import re
from collections import defaultdict
from collections.abc import Sequence

from index.sources.corpus import Article
from index.sources.feeds import canonical_url
from index.sources.fetch import FetchError

SHINGLE_WORDS = 3
SKETCH_SIZE = 8


def text_key(text: str) -> str:
    """Two copies of an article count as the same text whatever their spacing and case."""
    return hashlib.sha256(" ".join(text.split()).lower().encode("utf-8")).hexdigest()


def shingles(text: str) -> frozenset[str]:
    """The text's overlapping runs of words, the unit near-identical copies share."""
    words = re.findall(r"\w+", text.lower())
    if len(words) < SHINGLE_WORDS:
        return frozenset(words)
    return frozenset(" ".join(words[i:i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def sketch(words: frozenset[str]) -> list[int]:
    """The SKETCH_SIZE smallest hashes of a text's word runs. Two texts sharing a fraction J of their
    runs share the smallest hash of their union with probability J, so near-identical texts almost
    surely share a sketch entry, while unrelated ones almost never do: only texts that share one are
    compared in full. (Python's hash is salted per process; sketches are never stored.)"""
    return heapq.nsmallest(SKETCH_SIZE, map(hash, words))


class KnownStories:
    """What the corpus already holds, to tell a new story from another copy of a known one. Only
    sketches are kept, not every text's word runs, which for a large corpus would not fit in memory."""

    def __init__(self, articles: Sequence[Article], threshold: float) -> None:
        self.threshold = threshold
        self.by_url: dict[str, Article] = {}
        self.by_text: dict[str, Article] = {}
        self.by_id: dict[str, Article] = {}
        self.by_sketch: dict[int, list[Article]] = defaultdict(list)
        for article in articles:
            self.keep(article)

    def keep(self, article: Article) -> None:
        if article.url:
            try:
                self.by_url.setdefault(canonical_url(article.url), article)
            except FetchError:
                pass
        self.by_text.setdefault(text_key(article.text), article)
        self.by_id.setdefault(article.doc_id, article)
        for value in sketch(shingles(article.text)):
            self.by_sketch[value].append(article)

    def at_address(self, key: str) -> Article | None:
        """The stored article at this canonical address (`canonical_url`), if any."""
        return self.by_url.get(key)

    def copy_of(self, article: Article, key: str) -> tuple[Article, str] | None:
        """The stored article `article` (found at canonical address `key`) copies, and why; None if it
        is a new story."""
        if key in self.by_url:
            return self.by_url[key], "the same address is already in the corpus"
        if text_key(article.text) in self.by_text:
            return self.by_text[text_key(article.text)], "the same text is already in the corpus"
        mine = shingles(article.text)
        candidates = {id(kept): kept for value in sketch(mine) for kept in self.by_sketch.get(value, ())}
        best = max(((similarity(mine, shingles(kept.text)), kept) for kept in candidates.values()),
                   key=lambda pair: pair[0], default=(0.0, None))
        if best[1] is not None and best[0] >= self.threshold:
            return best[1], f"near-identical ({best[0]:.0%} of word runs shared) to a story already stored"
        return None
