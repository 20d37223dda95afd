"""Candidate answer sentences and what is known about each: the inputs of the learned answer scorer.

Every sentence of the retrieved passages is a candidate. Its features say how close it is to the
question in meaning (from the sentence vectors stored at build time: nothing is embedded here but
the question), in words, and in the kind of fact it offers, and whether its article even mentions
what the question names. `index/answers/scorer.py` turns them into P(this sentence answers).
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from index.retrieval.language import detect_language
from index.retrieval.numbers import DIGITS
from index.retrieval.question import ParsedQuestion
from index.retrieval.search import Hit, Retrieval
from index.retrieval.statement import SCORER_NEGATION
from index.retrieval.time_words import day_key, iso_day, named_days, weekday_days, weekday_marks
from index.store.lexical import analyse

FEATURES = (
    "semantic",  # the sentence's cosine similarity to the question
    "semantic_gap",  # how far below the best candidate's similarity
    "passage_similarity",  # its passage's similarity to the question
    "passage_rank",  # 1 / (1 + the passage's rank among the hits)
    "lexical",  # idf-weighted share of the question's words in the sentence
    "lexical_gap",
    "context_lexical",  # the same share in the article title and the passage
    "article_coverage",  # the same share in the whole article
    "corpus_unknown",  # share of the question's words that no passage uses
    "missing_names",  # share of the names and numbers in the question that the article never mentions
    "kind_asked",  # the question asks for a number, date, person or place
    "kind_offered",  # ... and the sentence offers one (+1), or not (-1); 0 when nothing is asked
    "position",  # where the sentence is in its article (0 first, 1 last)
    "lead_sentence",
    "length",  # log of the sentence's tokens
    "crosslingual",  # the question and the sources are in different languages
    "crosslingual_semantic",
    "semantic_x_coverage",
    "follow_up",
    "rarest_missing_in_article",  # the rarest question word the article never uses (idf, scaled 0-1)
    "rarest_missing_in_sentence",  # ... that the sentence does not use
    "novelty",  # share of the sentence's words the question does not use (an answer adds something)
    "semantic_rank",  # 1 / (1 + rank by meaning among the candidates)
    "lexical_rank",
    "names_in_sentence",  # share of the question's names the sentence mentions
    "negation_mismatch",  # one of the question and the sentence is negated, the other not
    "window_lexical",  # the share in this sentence and the one before (an answer often says "it")
)

_NUMBER = re.compile(
    r"\d|[٠-٩]|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozens?|hundreds?|thousands?|"
    r"millions?|billions?)\b|(ألف|آلاف|مئة|مائة|مليون|عشرات|مئات)",
    re.I,
)
_DATE = re.compile(
    r"\b(january|february|march|april|may|june|july|august|september|october|november|december|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|yesterday|today|week|month|year|"
    r"\d{4}|century|decades?)\b|(يناير|فبراير|مارس|أبريل|ابريل|مايو|يونيو|يوليو|أغسطس|سبتمبر|أكتوبر|نوفمبر|"
    r"ديسمبر|كانون|شباط|آذار|نيسان|أيار|حزيران|تموز|آب|أيلول|تشرين|عام|سنة|القرن|[٠-٩]{4}|\d{4})",
    re.I,
)
_NAME = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+(?:[\s-][A-Z][a-z]+)*")
_CAPITALISED = re.compile(r"[A-Z][a-z]+")
_ARABIC = re.compile(r"[\u0600-\u06FF]")
_WORD = re.compile(r"\w+")


class Sources(Protocol):
    """What answering needs to know about the indexed corpus beyond the retrieved passages."""

    def idf(self, term: str) -> float: ...

    def known(self, term: str) -> bool: ...

    def unseen_idf(self) -> float: ...

    def article_terms(self, doc_id: str) -> frozenset[str]: ...

    def article_words(self, doc_id: str) -> frozenset[str]: ...


@dataclass(frozen=True)
class Candidate:
    hit: Hit
    hit_rank: int
    sentence_row: int
    start: int  # article offsets
    end: int
    text: str
    features: np.ndarray  # in the order of FEATURES
    missing_names: tuple[str, ...]  # names in the question that this sentence's article never mentions

    @property
    def key(self) -> tuple[str, int]:
        return self.hit.doc_id, self.start


def fold(text: str) -> str:
    """Lower case without accents, dots or possessives, Arabic-Indic digits as 0-9: so "U.S." meets
    "US", "Türk" meets "Turk" and "٢٠٢٤" meets "2024"."""
    text = unicodedata.normalize("NFKD", text).translate(DIGITS)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.lower().replace("’", "'").replace("'s", "").replace(".", "").replace(",", "")
    return text


def folded_words(text: str) -> frozenset[str]:
    """The folded words of a text, a key for each calendar day it writes out (see `named_days`) and a mark
    for each it names by weekday (see `weekday_days`)."""
    return frozenset(_WORD.findall(fold(text))).union((key for _, key in named_days(text)), weekday_marks(text))


def mentions(article_words: frozenset[str], name: str) -> bool:
    """Whether an article mentions every word of `name` (its folded words; a plural "s" may differ), or,
    for a day ("March 7"), that day however written: "March" and "7" apart do not make it. A range of days
    ("7-8 March") is mentioned by any of its days."""
    days = named_days(name)
    if days:
        return any(key in article_words for _, key in days)
    for word in _WORD.findall(fold(name)):
        if word in article_words or word == "al":
            continue
        if len(word) > 3 and (word.rstrip("s") in article_words or word + "s" in article_words):
            continue
        return False
    return True


def weighted_coverage(terms: dict[str, float], present: frozenset[str] | set[str], idf) -> float:
    if not terms:
        return 0.0
    total = sum(weight * idf(term) for term, weight in terms.items())
    found = sum(weight * idf(term) for term, weight in terms.items() if term in present)
    return found / total if total else 0.0


def source_language(hit: Hit) -> str:
    """The language of what is quoted: the article's declared language, else its passage's script."""
    return hit.document.lang or detect_language(hit.passage.text)


def kind_offered(question: ParsedQuestion, sentence: str) -> float:
    """+1 when the sentence offers the kind of fact asked for, -1 when it cannot, 0 when nothing is asked
    (or, for names in a script without capitals, when it cannot be told)."""
    kind = question.kind
    if kind is None:
        return 0.0
    if kind == "quantity":
        return 1.0 if _NUMBER.search(sentence) else -1.0
    if kind == "time":
        return 1.0 if _DATE.search(sentence) else -1.0
    if _ARABIC.search(sentence):
        return 0.0
    asked = set(_CAPITALISED.findall(question.text))
    names = {word for match in _NAME.findall(sentence) for word in _CAPITALISED.findall(match)}
    return 1.0 if names - asked else -1.0


class CorpusFacts:
    """The `Sources` of one loaded index: word statistics from its searcher, and per-article word sets
    and folded words, computed once and kept for the articles used most recently (bounded; shared by
    worker threads, where a race only computes a value twice)."""

    def __init__(self, vocabulary, article_text, size: int = 512) -> None:
        self.idf = vocabulary.idf
        self.known = vocabulary.known
        self._vocabulary = vocabulary
        self._article_text = article_text
        self._size = size
        self._terms: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._words: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._lock = threading.Lock()

    def unseen_idf(self) -> float:
        return float(self._vocabulary.unseen_idf)

    def article_terms(self, doc_id: str) -> frozenset[str]:
        return self._cached(self._terms, doc_id, lambda text: frozenset(analyse(text)))

    def article_words(self, doc_id: str) -> frozenset[str]:
        return self._cached(self._words, doc_id, folded_words)

    def _cached(self, cache: OrderedDict, doc_id: str, make):
        with self._lock:
            value = cache.get(doc_id)
            if value is not None:
                cache.move_to_end(doc_id)  # least recently used goes first
                return value
        value = make(self._article_text(doc_id))  # outside the lock: other threads need not wait
        with self._lock:
            cache[doc_id] = value
            while len(cache) > self._size:
                cache.popitem(last=False)
        return value


def candidates(question: ParsedQuestion, retrieval: Retrieval, sources: Sources, passages: int) -> list[Candidate]:
    """Every sentence of the best `passages` hits, once, with its features."""
    hits = retrieval.hits[:passages]
    vectors = retrieval.sentence_vectors
    if not hits or vectors is None or retrieval.query_vector is None:
        return []
    terms = question.terms
    unknown = 1.0 - weighted_coverage(terms, {t for t in terms if sources.known(t)}, sources.idf) if terms else 0.0
    rows: list[int] = []
    spans: list[tuple[int, Hit, int, int, int]] = []
    seen: set[int] = set()
    for rank, hit in enumerate(hits):
        for span, row in zip(hit.passage.sentences, hit.passage.sentence_rows, strict=True):
            if row in seen:  # overlapping passages share sentences
                continue
            seen.add(row)
            rows.append(row)
            spans.append((rank, hit, row, span.start, span.end))
    if not rows:
        return []
    order = np.argsort(rows)
    fetched = np.asarray(vectors[np.asarray(rows)[order]], dtype=np.float32)  # stores read rows in order
    matrix = np.empty_like(fetched)
    matrix[order] = fetched
    semantic = matrix @ retrieval.query_vector
    if retrieval.own_vector is not None:
        # A follow-up asks something new: its own words decide the sentence, the earlier question only helps.
        semantic = 0.7 * (matrix @ retrieval.own_vector) + 0.3 * semantic
    texts = [hit.passage.text[start - hit.passage.start:end - hit.passage.start] for _, hit, _, start, end in spans]
    sentence_terms = [set(analyse(text)) for text in texts]
    terms_of_row = {row: present for (_, _, row, _, _), present in zip(spans, sentence_terms, strict=True)}
    lexical = [weighted_coverage(terms, present, sources.idf) for present in sentence_terms]
    best_semantic, best_lexical = float(np.max(semantic)), max(lexical)
    semantic_rank = _ranks(list(semantic))
    lexical_rank = _ranks(lexical)
    own_terms = {t for t, w in terms.items() if w == 1.0}
    top_idf = max(sources.unseen_idf(), 1e-6)
    question_negated = bool(SCORER_NEGATION.search(question.text))
    by_passage: dict[str, float] = {}
    by_article: dict[str, tuple[float, tuple[str, ...], float, float]] = {}
    crosslingual: dict[str, bool] = {}
    out: list[Candidate] = []
    for number, ((rank, hit, row, start, end), text, sim, lex, present) in enumerate(
            zip(spans, texts, semantic, lexical, sentence_terms, strict=True)):
        if hit.passage_id not in crosslingual:
            crosslingual[hit.passage_id] = question.language != source_language(hit)
        cross = crosslingual[hit.passage_id]
        if hit.passage_id not in by_passage:
            # A passage is its sentences: its words are theirs, with the title's.
            in_passage = set(analyse(hit.title)).union(*(terms_of_row[r] for r in hit.passage.sentence_rows))
            by_passage[hit.passage_id] = weighted_coverage(terms, in_passage, sources.idf)
        if hit.doc_id not in by_article:
            words = sources.article_words(hit.doc_id)
            published = iso_day(hit.published)
            if published is not None:  # an article is about the day it was published, named or not
                words = words | {day_key(published)} | weekday_days(words, published)
            article_terms = sources.article_terms(hit.doc_id)
            missing = tuple(n for n in question.names if not mentions(words, n))
            coverage = weighted_coverage(terms, article_terms, sources.idf)
            share = len(missing) / len(question.names) if question.names else 0.0
            rarest = _rarest_missing(own_terms, article_terms, sources.idf) / top_idf
            by_article[hit.doc_id] = (coverage, missing, share, rarest)
        coverage, missing, missing_share, rarest_in_article = by_article[hit.doc_id]
        info = hit.document
        index_in_article = row - info.first_sentence_row
        position = index_in_article / max(info.sentence_count - 1, 1)
        tokens = len(text.split())
        sim = float(sim)
        features = np.asarray([
            sim,
            sim - best_semantic,
            hit.similarity or 0.0,
            1.0 / (1 + rank),
            lex,
            lex - best_lexical,
            by_passage[hit.passage_id],
            coverage,
            0.0 if cross else unknown,
            missing_share,
            1.0 if question.kind else 0.0,
            kind_offered(question, text),
            position,
            1.0 if index_in_article == 0 else 0.0,
            math.log1p(tokens),
            1.0 if cross else 0.0,
            sim if cross else 0.0,
            sim * coverage,
            1.0 if question.context else 0.0,
            rarest_in_article,
            _rarest_missing(own_terms, present, sources.idf) / top_idf,
            len(present - set(terms)) / len(present) if present else 0.0,
            1.0 / (1 + semantic_rank[number]),
            1.0 / (1 + lexical_rank[number]),
            _share_named(question.names, missing, text),
            1.0 if question_negated != bool(SCORER_NEGATION.search(text)) else 0.0,
            # (the sentence before in its own article: row - 1 may end the article before)
            weighted_coverage(terms, present | (terms_of_row.get(row - 1, set()) if index_in_article else set()),
                              sources.idf),
        ], dtype=np.float32)
        out.append(Candidate(hit, rank, row, start, end, text, features, missing))
    return out


def _share_named(names: tuple[str, ...], missing: tuple[str, ...], sentence: str) -> float:
    """Share of the question's names that the sentence itself mentions."""
    if not names:
        return 0.0
    words = folded_words(sentence)
    return sum(1 for n in names if n not in missing and mentions(words, n)) / len(names)


def _ranks(values: list[float]) -> list[int]:
    order = sorted(range(len(values)), key=lambda i: -values[i])
    ranks = [0] * len(values)
    for rank, i in enumerate(order):
        ranks[i] = rank
    return ranks


def _rarest_missing(terms: set[str], present: frozenset[str] | set[str], idf) -> float:
    return max((idf(t) for t in terms if t not in present), default=0.0)
