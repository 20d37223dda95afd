"""Finding the passages that match a question: dense, multilingual and BM25 retrieval, fused."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from index.embedders import Encoder
from index.retrieval.dated import by_time, rows_in_time
from index.retrieval.question import ParsedQuestion
from index.retrieval.time_words import iso_day
from index.settings import Settings, reranker_name
from index.store.build import Encoders
from index.store.interface import IndexVersion, Ranking, RowFilter, RowVectors, Space
from index.store.lexical import analyse
from index.store.segments import DocumentInfo, PassageRecord


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

    question: ParsedQuestion
    hits: list[Hit]
    query_vector: np.ndarray | None  # of the retrieval text (a follow-up with its earlier question)
    sentence_vectors: RowVectors | np.ndarray | None = None  # the stored sentence vectors of that same space
    own_vector: np.ndarray | None = None  # a follow-up's own words alone, in that space
    context_vector: np.ndarray | None = None  # the earlier question alone, in that space
    note: str | None = None  # what the reader should know about what was found (no source in the time asked)


def reciprocal_rank_fusion(rankings: Sequence[Ranking], k: int, weights: Sequence[float] | None = None) -> Ranking:
    """Each list adds weight / (k + rank) for every row it holds (rank from 1); ties keep first-seen order."""
    weights = weights if weights is not None else [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, (row, _score) in enumerate(ranking, start=1):
            fused[row] = fused.get(row, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda item: -item[1])


def weighted_fusion(rankings: Sequence[Ranking], weights: Sequence[float]) -> Ranking:
    """Min-max normalise each ranking's scores, then add them with weights."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking:
            continue
        scores = [s for _, s in ranking]
        low, high = min(scores), max(scores)
        span = high - low or 1.0
        for row, score in ranking:
            fused[row] = fused.get(row, 0.0) + weight * (score - low) / span
    return sorted(fused.items(), key=lambda item: -item[1])


def aggregate_documents(fused: Ranking, doc_of: Sequence[str] | dict[int, str], mode: str) -> Ranking:
    """Reorder passages by their document's strength, keeping each document's passages in order.

    `max`: a document is as strong as its best passage (the fused order, unchanged).
    `sum`: a document adds up its passages' scores, so one with several matching passages rises.
    """
    if mode != "sum" or not fused:
        return fused
    totals: dict[str, float] = {}
    for row, score in fused:
        totals[doc_of[row]] = totals.get(doc_of[row], 0.0) + score
    order = {doc: position for position, doc in enumerate(sorted(totals, key=lambda d: -totals[d]))}
    return sorted(fused, key=lambda item: order[doc_of[item[0]]])


def near_duplicate(a: frozenset[str], b: frozenset[str], threshold: float) -> bool:
    """Two passages say the same when their word sets overlap by `threshold` (Jaccard) or one holds the other."""
    if not a or not b:
        return a == b
    if threshold >= 1.0:
        return a == b
    shared = len(a & b)
    return shared / len(a | b) >= threshold or shared == min(len(a), len(b)) and min(len(a), len(b)) >= 8


@dataclass(frozen=True)
class EmbeddingSpace:
    """One embedding model with what the index stores in its space."""

    encoder: Encoder
    name: Space  # the store's passage and sentence vectors of this model
    sentence_vectors: RowVectors | None  # row i is sentence row i


class Searcher:
    def __init__(self, stored: IndexVersion, encoders: Encoders, settings: Settings) -> None:
        self.stored = stored
        self.encoders = encoders
        self.settings = settings
        self._dense_space = EmbeddingSpace(encoders.dense, "dense", stored.sentence_vectors("dense"))
        self._multilingual_space = (
            EmbeddingSpace(encoders.multilingual, "multilingual", stored.sentence_vectors("multilingual"))
            if encoders.multilingual is not None and stored.has_space("multilingual") else None
        )
        self._doc_of_row: list[str] | None = None
        self._row_days: np.ndarray | None = None

    def idf(self, term: str) -> float:
        """Inverse document frequency of an analysed term over passages (unseen terms score highest)."""
        return self.stored.idf(self.stored.document_frequency(term))

    def known(self, term: str) -> bool:
        return self.stored.document_frequency(term) > 0

    @property
    def unseen_idf(self) -> float:
        """The idf of a term no passage uses: the highest there is."""
        return self.stored.idf(0)

    @property
    def reranker(self) -> Reranker | None:
        name = reranker_name(self.settings.reranker_model)  # also when set past the validator (model_copy)
        return load_reranker(name) if name else None

    def retrieve(self, question: ParsedQuestion, *, k: int, doc_id: str | None = None,
                 allowed_doc_ids: frozenset[str] | None = None) -> Retrieval:
        """`doc_id` narrows to one article; `allowed_doc_ids` (None: all) to a set of them."""
        settings = self.settings
        query = question.retrieval_text
        english = question.english
        rows: RowFilter = self.stored.doc_rows(doc_id) if doc_id else None
        if allowed_doc_ids is not None:
            rows = self._allowed_rows(allowed_doc_ids & {doc_id} if doc_id else allowed_doc_ids)
        narrowed = rows_in_time(question.time, self._days_of_rows(), rows)
        pool = max(settings.candidate_pool, k)
        if question.time is not None and question.time.narrows and narrowed is rows:
            pool *= 4  # dates drop candidates after fusion: rank enough that some in the range remain
        rows = narrowed
        rankings: list[Ranking] = []
        weights: list[float] = []
        multilingual = self._multilingual_space
        # The main model reads English; for other languages the multilingual model stands in. Answers
        # weigh sentences in the same space, whatever found the passages.
        space = self._dense_space if english or multilingual is None else multilingual
        query_vector = space.encoder.encode_queries([query])[0]

        if settings.retrieval in {"hybrid", "dense"}:
            if space is self._dense_space:
                rankings.append(self.stored.nearest(space.name, query_vector, pool, rows))
                weights.append(settings.dense_weight)
            # The multilingual model may also join in for English questions as a further list.
            if multilingual is not None and (not english or settings.multilingual_for_english):
                vector = query_vector if space is multilingual else multilingual.encoder.encode_queries([query])[0]
                rankings.append(self.stored.nearest(multilingual.name, vector, pool, rows))
                weights.append(settings.multilingual_weight)
        if settings.retrieval in {"hybrid", "bm25"}:
            rankings.append(self.stored.lexical(question.retrieval_terms, pool, rows, settings.title_weight))
            weights.append(settings.bm25_weight)

        if len(rankings) == 1:
            fused = rankings[0]
        elif settings.fusion == "weighted":
            fused = weighted_fusion(rankings, weights)
        else:
            fused = reciprocal_rank_fusion(rankings, settings.rrf_k, weights)
        if settings.doc_aggregation == "sum":
            fused = aggregate_documents(fused, self._doc_rows_map(), "sum")
        fused, note = by_time(fused, question.time, self._days_of_rows(), settings.recency_weight)
        hits = self._hits(fused, k, query, space.name, query_vector)
        own_vector = context_vector = None
        if question.context:
            own_text = question.topic_text or question.text
            own_vector, context_vector = space.encoder.encode_queries([own_text, question.context])
        return Retrieval(question, hits, query_vector, space.sentence_vectors, own_vector, context_vector, note)

    def warm_up(self) -> None:
        """Read what the first search otherwise reads: every served document and its date."""
        self._days_of_rows()

    @property
    def dated(self) -> bool:
        """Whether any indexed article has a publication date (else time words are only words)."""
        return bool(self._days_of_rows().any())

    def _days_of_rows(self) -> np.ndarray:
        """Each passage's article date as a day ordinal (0: undated), for time words."""
        if self._row_days is None:
            days = np.zeros(self.stored.passage_count, dtype=np.int64)
            for info in self.stored.documents.values():
                day = iso_day(info.published)
                if day is not None:
                    days[info.first_row:info.first_row + info.passage_count] = day.toordinal()
            self._row_days = days
        return self._row_days

    def _allowed_rows(self, doc_ids: Iterable[str]) -> np.ndarray:
        """The passage rows of these articles, ascending (rows are grouped by article)."""
        ranges = [(info.first_row, info.first_row + info.passage_count)
                  for doc_id in doc_ids if (info := self.stored.documents.get(doc_id)) is not None]
        if not ranges:
            return np.zeros(0, dtype=np.int64)
        return np.sort(np.concatenate([np.arange(low, high, dtype=np.int64) for low, high in ranges]))

    def _doc_rows_map(self) -> list[str]:
        if self._doc_of_row is None:
            doc_of = [""] * self.stored.passage_count
            for info in self.stored.documents.values():
                for row in range(info.first_row, info.first_row + info.passage_count):
                    doc_of[row] = info.doc_id
            self._doc_of_row = doc_of
        return self._doc_of_row

    def _hits(self, fused: Ranking, k: int, query: str, space: Space, query_vector: np.ndarray) -> list[Hit]:
        reranker = self.reranker
        # Fetch spares: near-identical passages (one story filed twice, or overlapping windows that say
        # the same) are collapsed into the first, and a reranker needs candidates to choose from.
        spare = max(k * 2 + 5, self.settings.reranker_candidates if reranker else 0)
        ranked = fused[:spare]
        records = self.stored.passages([row for row, _ in ranked])
        ranked = [(row, score) for row, score in ranked if row in records]
        if reranker is not None and ranked:
            scores = reranker.score(query, [records[row].text for row, _ in ranked])
            ranked = sorted(((row, float(s)) for (row, _), s in zip(ranked, scores, strict=True)),
                            key=lambda item: -item[1])
        similarity = self._similarities(space, query_vector, [row for row, _ in ranked])
        hits: list[Hit] = []
        kept_terms: list[frozenset[str]] = []
        for row, score in ranked:
            record = records[row]
            terms = frozenset(analyse(record.text)) or frozenset(record.text.lower().split())
            if any(near_duplicate(terms, other, self.settings.duplicate_threshold) for other in kept_terms):
                continue
            kept_terms.append(terms)
            document = self.stored.lookup(record.doc_id)
            if document is None:  # not served by this version: never a hit
                continue
            hits.append(Hit(record, document, score, similarity.get(row)))
            if len(hits) == k:
                break
        return hits

    def _similarities(self, space: Space, vector: np.ndarray, rows: Sequence[int]) -> dict[int, float]:
        """Exact cosine similarity of each row to the question, when the store keeps passage vectors."""
        stored = self.stored.passage_vectors(space, np.asarray(rows, dtype=np.int64)) if rows else None
        if stored is None:
            return {}
        return {row: float(sim) for row, sim in zip(rows, stored @ vector.astype(np.float32), strict=True)}


class Reranker:
    """A sentence-transformers CrossEncoder that scores (question, passage) pairs."""

    def __init__(self, name: str) -> None:
        from sentence_transformers import CrossEncoder

        from index.embedders import resolve_model

        location = resolve_model(name)
        try:
            self.model = CrossEncoder(location, device="cpu")
        except OSError as error:
            raise OSError(
                f"Could not load the reranker {name!r}: {error}. Set RERANKER_MODEL to a local folder, "
                "to a model name this machine can download, or leave it empty."
            ) from error
        self.name = name

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        scores = self.model.predict([(query, text) for text in texts], show_progress_bar=False,
                                    convert_to_numpy=True)
        scores = np.asarray(scores, dtype=np.float32)
        # A model with several labels scores relevance in its last column.
        return scores[:, -1] if scores.ndim == 2 else scores


_RERANKERS: dict[str, Reranker] = {}
_RERANKER_LOCK = threading.Lock()


def load_reranker(name: str) -> Reranker:
    """One loaded reranker per name for the whole process (engines are rebuilt on re-index)."""
    with _RERANKER_LOCK:
        if name not in _RERANKERS:
            _RERANKERS[name] = Reranker(name)
        return _RERANKERS[name]
