"""Finding the passages that match a question: dense, multilingual and BM25 retrieval, fused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from index.build import Encoders
from index.embedders import Encoder
from index.language import detect_language, is_english
from index.lexical import analyse
from index.settings import Settings
from index.store import DocumentInfo, PassageRecord, StoredIndex

Ranking = list[tuple[int, float]]  # (passage row, score), best first


@dataclass(frozen=True)
class Hit:
    passage: PassageRecord
    document: DocumentInfo
    score: float  # fused ranking score: only its order is meaningful
    similarity: float | None  # cosine similarity to the question, from the semantic retriever

    passage_id = property(lambda self: self.passage.passage_id)
    doc_id = property(lambda self: self.passage.doc_id)
    text = property(lambda self: self.passage.text)
    title = property(lambda self: self.document.title)
    source = property(lambda self: self.document.source)
    url = property(lambda self: self.document.url)
    published = property(lambda self: self.document.published)

    def to_json(self) -> dict:
        return {
            "passage_id": self.passage_id, "doc_id": self.doc_id, "title": self.title, "source": self.source,
            "url": self.url, "published": self.published, "score": round(self.score, 6),
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "start": self.passage.start, "end": self.passage.end, "text": self.text,
        }


@dataclass(frozen=True)
class Retrieval:
    """What a search found, and what answer composition needs to score sentences the same way."""

    query: str
    language: str
    hits: list[Hit]
    semantic_encoder: Encoder | None  # the encoder whose space `query_vector` lives in
    query_vector: np.ndarray | None


def reciprocal_rank_fusion(rankings: Sequence[Ranking], k: int) -> Ranking:
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (row, _score) in enumerate(ranking):
            fused[row] = fused.get(row, 0.0) + 1.0 / (k + rank + 1)
    return sorted(fused.items(), key=lambda item: -item[1])


def weighted_fusion(rankings: Sequence[Ranking], weights: Sequence[float]) -> Ranking:
    """Min-max normalise each ranking's scores, then add them with weights."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        if not ranking:
            continue
        scores = [s for _, s in ranking]
        low, high = min(scores), max(scores)
        span = high - low or 1.0
        for row, score in ranking:
            fused[row] = fused.get(row, 0.0) + weight * (score - low) / span
    return sorted(fused.items(), key=lambda item: -item[1])


class Searcher:
    def __init__(self, stored: StoredIndex, encoders: Encoders, settings: Settings) -> None:
        self.stored = stored
        self.encoders = encoders
        self.settings = settings
        self._bm25_idf = _bm25_idf(stored)

    def idf(self, term: str) -> float:
        """Inverse document frequency of an analysed term over passages (unseen terms score highest)."""
        return self._bm25_idf.get(term, self._unseen_idf)

    def known(self, term: str) -> bool:
        return term in self._bm25_idf

    @property
    def _unseen_idf(self) -> float:
        n = max(self.stored.passage_count, 1)
        return float(np.log(1 + (n + 0.5) / 0.5))

    def retrieve(self, query: str, *, k: int, doc_id: str | None = None) -> Retrieval:
        language = detect_language(query)
        rows = self.stored.doc_rows(doc_id) if doc_id else None
        pool = max(self.settings.candidate_pool, k)
        rankings: list[Ranking] = []
        weights: list[float] = []
        semantic_encoder: Encoder | None = None
        query_vector: np.ndarray | None = None
        mode = self.settings.retrieval

        if mode in {"hybrid", "dense"}:
            # The main model reads English; for other languages the multilingual model stands in.
            use_multilingual = not is_english(language) and self.stored.multilingual is not None
            encoder = self.encoders.multilingual if use_multilingual else self.encoders.dense
            index = self.stored.multilingual if use_multilingual else self.stored.dense
            if encoder is not None and index is not None:
                semantic_encoder = encoder
                query_vector = encoder.encode_queries([query])[0]
                rankings.append(_faiss_search(index, query_vector, pool, rows))
                weights.append(0.5)
        if mode in {"hybrid", "bm25"}:
            rankings.append(self._bm25_search(query, pool, rows))
            weights.append(0.5)

        if len(rankings) == 1:
            fused = rankings[0]
        elif self.settings.fusion == "weighted":
            fused = weighted_fusion(rankings, weights)
        else:
            fused = reciprocal_rank_fusion(rankings, self.settings.rrf_k)
        similarity = dict(rankings[0]) if semantic_encoder is not None else {}
        hits = self._hits(fused, k, similarity)
        return Retrieval(query, language, hits, semantic_encoder, query_vector)

    def _bm25_search(self, query: str, pool: int, rows: tuple[int, int] | None) -> Ranking:
        terms = analyse(query)
        bm25 = self.stored.bm25
        ids = bm25.get_tokens_ids(terms)
        if not ids:
            return []
        scores = bm25.get_scores_from_ids(ids)
        if rows is not None:
            low, high = rows
            mask = np.zeros_like(scores)
            mask[low:high] = 1
            scores = scores * mask
        count = min(pool, int(np.count_nonzero(scores > 0)))
        if count == 0:
            return []
        top = np.argpartition(-scores, count - 1)[:count]
        top = top[np.argsort(-scores[top])]
        return [(int(row), float(scores[row])) for row in top]

    def _hits(self, fused: Ranking, k: int, similarity: dict[int, float]) -> list[Hit]:
        # Fetch a few spares: identical passages (the same text filed twice) are collapsed into one.
        ranked = fused[: k * 2 + 5]
        records = self.stored.passages([row for row, _ in ranked])
        hits: list[Hit] = []
        seen_texts: set[str] = set()
        for row, score in ranked:
            record = records.get(row)
            if record is None:
                continue
            key = " ".join(record.text.split()).lower()
            if key in seen_texts:
                continue
            seen_texts.add(key)
            hits.append(Hit(record, self.stored.documents[record.doc_id], score, similarity.get(row)))
            if len(hits) == k:
                break
        return hits


def _faiss_search(index: faiss.Index, vector: np.ndarray, k: int, rows: tuple[int, int] | None) -> Ranking:
    k = min(k, index.ntotal)
    if k <= 0:
        return []
    query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
    if rows is None:
        scores, ids = index.search(query, k)
    else:
        params = faiss.SearchParameters(sel=faiss.IDSelectorRange(rows[0], rows[1]))
        scores, ids = index.search(query, min(k, rows[1] - rows[0]), params=params)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


def _bm25_idf(stored: StoredIndex) -> dict[str, float]:
    bm25 = stored.bm25
    indptr = np.asarray(bm25.scores["indptr"])
    document_frequency = np.diff(indptr)
    n = max(stored.passage_count, 1)
    idf = np.log(1 + (n - document_frequency + 0.5) / (document_frequency + 0.5))
    return {term: float(idf[i]) for term, i in bm25.vocab_dict.items() if i < len(idf)}
