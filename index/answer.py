"""Composing an answer: the best whole sentences of the retrieved passages, each cited.

The answer is a quotation, never a paraphrase, so it cannot say what the sources do not.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from typing import Protocol

import numpy as np

from index.language import detect_language, is_english
from index.lexical import analyse
from index.search import Hit, Retrieval

_QUANTITY_QUESTION = re.compile(r"\b(how\s+many|how\s+much|number\s+of|toll|count|figure)\b|كم|عدد", re.I)
_PERSON_QUESTION = re.compile(r"^\s*(who|whom|whose)\b|\bwho\b|من\s+هو|من\s+هي|من\s+هم|^\s*من\s", re.I)
_TIME_QUESTION = re.compile(r"\bwhen\b|\bwhat\s+(day|date|year|month)\b|متى", re.I)
_PLACE_QUESTION = re.compile(r"\bwhere\b|\bwhich\s+(town|city|village|country|province|region)\b|أين|اين", re.I)
_NUMBER = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|dozens?|hundreds?|thousands?|millions?)\b", re.I)
_NAME = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+(?:[\s-][A-Z][a-z]+)*")
_DATE = re.compile(
    r"\b(january|february|march|april|may|june|july|august|september|october|november|december|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|yesterday|today|\d{4})\b", re.I
)
CANDIDATE_PASSAGES = 3
# Sentences re-scored with the embedder: it costs ~7 ms a sentence on two cores, the largest part of
# answering, so a cheap first pass (words, answer kind, passage similarity) picks the few worth it.
SEMANTIC_CANDIDATES = 4  # 3 to 6 pick the same sentences on seed-dev + held-out (docs/quality.md)


class Vocabulary(Protocol):
    def idf(self, term: str) -> float: ...

    def known(self, term: str) -> bool: ...


@dataclass(frozen=True)
class Citation:
    n: int
    doc_id: str
    title: str
    source: str | None
    url: str | None
    published: str | None
    quote: str  # verbatim: article_text[start:end] == quote
    passage_id: str
    start: int
    end: int

    def to_json(self) -> dict:
        return {key: value for key, value in asdict(self).items() if key not in {"start", "end"}}


@dataclass(frozen=True)
class Answer:
    question: str
    answered: bool
    text: str
    citations: list[Citation]
    language: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    note: str | None = None

    def to_json(self) -> dict:
        return {
            "question": self.question,
            "answered": self.answered,
            "answer": self.text,
            "citations": [c.to_json() for c in self.citations],
            "timings_ms": self.timings_ms,
            "language": self.language,
            "note": self.note,
        }


@dataclass(frozen=True)
class ScoredSentence:
    hit: Hit
    hit_rank: int
    start: int  # article offsets
    end: int
    text: str
    semantic: float  # the sentence's similarity to the question
    lexical: float  # share of the question's words in the sentence
    kind: float
    score: float
    passage_similarity: float = 0.0  # the passage's similarity to the question
    context_lexical: float = 0.0  # share of the question's words in the article title and passage


@dataclass(frozen=True)
class AnswerPolicy:
    max_sentences: int
    min_score: float
    min_crosslingual_score: float = 0.31
    # Calibrated with `verbatim eval` on seed-dev, our held-out seed questions and off-topic claims
    # (docs/quality.md): the sentence decides, its passage and title vouch that the topic is right
    # (an answer sentence often names its subject only by a pronoun).
    semantic_weight: float = 0.7
    passage_weight: float = 0.3
    lexical_weight: float = 0.45
    context_lexical_weight: float = 0.15
    kind_weight: float = 0.12
    crosslingual_kind_weight: float = 0.05
    unknown_terms_weight: float = 0.3  # question words the corpus never uses hint it cannot answer
    keep_margin: float = 0.1  # further sentences must score within this of the best (0.06 before the
    # passage and title terms were added, on a scale ~1.6 times smaller)


def answer_kind_bonus(question: str, sentence: str) -> float:
    """How well a sentence offers the kind of fact the question asks for (a number, a name, ...)."""
    if _QUANTITY_QUESTION.search(question):
        return 1.0 if _NUMBER.search(sentence) else -0.5
    if _TIME_QUESTION.search(question):
        return 1.0 if _DATE.search(sentence) else 0.0
    if _PERSON_QUESTION.search(question) or _PLACE_QUESTION.search(question):
        asked = set(re.findall(r"[A-Z][a-z]+", question))
        names = {word for match in _NAME.findall(sentence) for word in re.findall(r"[A-Z][a-z]+", match)}
        return 1.0 if names - asked else 0.0
    return 0.0


def lexical_coverage(question_terms: dict[str, float], sentence: str, idf) -> float:
    """Share of the question's weighted content words that the sentence contains."""
    if not question_terms:
        return 0.0
    present = set(analyse(sentence))
    total = sum(weight * idf(term) for term, weight in question_terms.items())
    found = sum(weight * idf(term) for term, weight in question_terms.items() if term in present)
    return found / total if total else 0.0


# Words that frame a question rather than name what it is about ("what is the *name* of ...").
_FRAMING_WORDS = frozenset(analyse(
    "name named most main mainly kind type exactly tell know mention mentioned according say said describe "
    "described happen happened call called"
))


def question_terms(question: str, context: str | None) -> dict[str, float]:
    """The question's content words with weights: the follow-up's own words count more than its context's."""
    terms = {term: 0.2 for term in analyse(context or "") if term not in _FRAMING_WORDS}
    terms.update({term: 1.0 for term in analyse(question) if term not in _FRAMING_WORDS})
    return terms


def unknown_share(question_terms: dict[str, float], known, idf) -> float:
    """Weighted share of the question's words that appear nowhere in the corpus."""
    total = sum(weight * idf(term) for term, weight in question_terms.items())
    missing = sum(weight * idf(term) for term, weight in question_terms.items() if not known(term))
    return missing / total if total else 0.0


class SentenceVectorCache:
    """Recently embedded sentences, so sentences asked about again are not embedded again.

    Embedding the shortlisted sentences is most of an answer's time; questions about the same news
    keep landing on the same sentences. Bounded (LRU) and shared by worker threads. Vectors are the
    encoder's own for the text, so the cache never changes a score.
    """

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self._vectors: OrderedDict[tuple[tuple[int, str], str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, encoder, texts: list[str]) -> np.ndarray:
        key = (id(encoder), getattr(encoder, "name", ""))
        with self._lock:
            found = {t: self._vectors[(key, t)] for t in texts if (key, t) in self._vectors}
            for t in found:
                self._vectors.move_to_end((key, t))
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            for text, vector in zip(missing, encoder.encode_queries(missing)):
                found[text] = vector
            with self._lock:
                for text in missing:
                    self._vectors[(key, text)] = found[text]
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return np.stack([found[t] for t in texts])

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()


SENTENCE_VECTORS = SentenceVectorCache()


def score_sentences(
    question: str, context: str | None, retrieval: Retrieval, vocabulary: "Vocabulary", policy: AnswerPolicy
) -> tuple[list[ScoredSentence], bool]:
    """Candidate sentences, best first, and whether the question shares no words with the corpus
    (then only meaning can be compared, as with an Arabic question over English sources)."""
    terms = question_terms(question, context)
    crosslingual = bool(terms) is False or not any(vocabulary.known(t) for t in terms)
    crosslingual = crosslingual and not is_english(retrieval.language)
    unknown = 0.0 if crosslingual else unknown_share(terms, vocabulary.known, vocabulary.idf)
    similarity = {h.passage_id: (h.similarity or 0.0) for h in retrieval.hits}
    first_pass: list[ScoredSentence] = []
    seen: set[tuple[str, int]] = set()
    for rank, hit in enumerate(retrieval.hits[:CANDIDATE_PASSAGES]):
        passage_similarity = similarity[hit.passage_id]
        context_lexical = lexical_coverage(terms, f"{hit.title}\n{hit.passage.text}", vocabulary.idf)
        for span in hit.passage.sentences:
            key = (hit.doc_id, span.start)
            if key in seen:  # overlapping passages share sentences
                continue
            seen.add(key)
            text = hit.passage.text[span.start - hit.passage.start : span.end - hit.passage.start]
            lexical = lexical_coverage(terms, text, vocabulary.idf)
            kind = answer_kind_bonus(question, text)
            # Before the sentence is embedded, its passage's similarity stands in for its own.
            rough = _combine(policy, passage_similarity, passage_similarity, lexical, context_lexical, kind,
                             unknown, crosslingual)
            first_pass.append(ScoredSentence(hit, rank, span.start, span.end, text, 0.0, lexical, kind, rough,
                                             passage_similarity, context_lexical))
    first_pass.sort(key=lambda s: -s.score)
    shortlist = first_pass[:SEMANTIC_CANDIDATES]
    if not shortlist or retrieval.semantic_encoder is None or retrieval.query_vector is None:
        return shortlist, crosslingual
    vectors = SENTENCE_VECTORS.encode(retrieval.semantic_encoder, [c.text for c in shortlist])
    similarities = vectors @ retrieval.query_vector
    if context:
        # A follow-up asks something new: its own words decide the sentence, the context only helps.
        own = retrieval.semantic_encoder.encode_queries([question])[0]
        similarities = 0.7 * (vectors @ own) + 0.3 * similarities
    scored = [
        replace(c, semantic=float(sim), score=_combine(policy, float(sim), c.passage_similarity, c.lexical,
                                                      c.context_lexical, c.kind, unknown, crosslingual))
        for c, sim in zip(shortlist, similarities)
    ]
    scored.sort(key=lambda s: -s.score)
    return scored, crosslingual


def _combine(policy: AnswerPolicy, semantic: float, passage_similarity: float, lexical: float,
             context_lexical: float, kind: float, unknown: float, crosslingual: bool) -> float:
    if crosslingual:
        return semantic + policy.crosslingual_kind_weight * kind
    return (policy.semantic_weight * semantic + policy.passage_weight * passage_similarity
            + policy.lexical_weight * lexical + policy.context_lexical_weight * context_lexical
            + policy.kind_weight * kind - policy.unknown_terms_weight * unknown)


def compose_answer(
    question: str, context: str | None, retrieval: Retrieval, vocabulary: "Vocabulary", policy: AnswerPolicy
) -> Answer:
    scored, crosslingual = score_sentences(question, context, retrieval, vocabulary, policy)
    if context and scored:
        # A follow-up wants what the earlier answer did not say: its best sentence goes last.
        earlier, _ = score_sentences(context, None, retrieval, vocabulary, policy)
        if earlier:
            said = (earlier[0].hit.doc_id, earlier[0].start)
            scored = [s for s in scored if (s.hit.doc_id, s.start) != said] + [
                s for s in scored if (s.hit.doc_id, s.start) == said
            ]
    threshold = policy.min_crosslingual_score if crosslingual else policy.min_score
    note = None
    if not is_english(retrieval.language) and scored and is_english(source_language(scored[0].hit)):
        note = "Your question is not in English; these are quotations from English sources."
    if not scored or scored[0].score < threshold:
        return _decline(question, retrieval, scored, note)
    best = scored[0]
    chosen = [best]
    for sentence in scored[1:]:
        if len(chosen) >= policy.max_sentences:
            break
        if sentence.score < max(threshold, best.score - policy.keep_margin):
            break
        if sentence.text.strip().lower() in {c.text.strip().lower() for c in chosen}:
            continue
        chosen.append(sentence)
    # Read in the order the sources tell it: by the source's rank, then by position in the article.
    first_rank = {}
    for sentence in chosen:
        first_rank.setdefault(sentence.hit.doc_id, sentence.hit_rank)
    chosen.sort(key=lambda s: (first_rank[s.hit.doc_id], s.start))
    citations = [_citation(n, s.hit, s.start, s.end, s.text) for n, s in enumerate(chosen, start=1)]
    text = " ".join(f"{s.text} [{c.n}]" for s, c in zip(chosen, citations))
    return Answer(question, True, text, citations, retrieval.language, note=note)


def source_language(hit: Hit) -> str:
    """The language of what is quoted: the article's declared language, else its passage's script."""
    return hit.document.lang or detect_language(hit.passage.text)


def _citation(n: int, hit: Hit, start: int, end: int, quote: str) -> Citation:
    return Citation(
        n=n, doc_id=hit.doc_id, title=hit.title, source=hit.source, url=hit.url, published=hit.published,
        quote=quote, passage_id=hit.passage_id, start=start, end=end,
    )


def _decline(question: str, retrieval: Retrieval, scored: list[ScoredSentence], note: str | None) -> Answer:
    # Offer the closest sentence of each of the closest articles, so the reader can look further.
    citations: list[Citation] = []
    for sentence in scored:
        if any(c.doc_id == sentence.hit.doc_id for c in citations):
            continue
        citations.append(_citation(len(citations) + 1, sentence.hit, sentence.start, sentence.end, sentence.text))
        if len(citations) == 3:
            break
    if citations:
        markers = "".join(f"[{c.n}]" for c in citations)
        text = f"The sources I have don't say. The closest passages I found are cited below {markers}."
    else:
        text = "The sources I have don't say, and nothing in them comes close."
    return Answer(question, False, text, citations, retrieval.language, note=note)
