"""The engine's front door: load an index once, then ask, search and look up sources."""

from __future__ import annotations

import numbers
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import faiss

from index import __version__
from index.answers.compose import Answer, AnswerPolicy, compose_answer
from index.answers.features import CorpusFacts
from index.answers.scorer import AnswerScorer
from index.errors import IndexMismatchError, InvalidQuestionError, ReindexInProgressError, VerbatimError
from index.retrieval.question import ParsedQuestion, parse_question
from index.retrieval.search import Hit, Retrieval, Searcher
from index.settings import Settings
from index.store.build import BuildReport, Encoders, ProgressCallback, build_index
from index.store.files import DocumentInfo, StoredIndex
from index.store.vectors import VectorIndexPolicy

if TYPE_CHECKING:  # ingesting needs the web client (httpx), which answering questions does not
    from index.sources.ingest import IngestReport
from index.sources.text import only_text


@dataclass(frozen=True)
class IndexInfo:
    model: str
    dimension: int
    multilingual_model: str | None
    documents: int
    passages: int
    built_at: str
    version: str
    index_dir: str


# Raw text longer than this many times the limit cannot clean down to it in any realistic case, so it
# is refused before the (linear, but slow in Python) cleaning.
_RAW_LENGTH_FACTOR = 4


def clean_question(text: str, max_chars: int) -> str:
    """Make user text safe to process: only real characters, no control characters, collapsed white
    space, bounded length."""
    if not isinstance(text, str):
        raise InvalidQuestionError("Ask a question in words.")
    if len(text) > _RAW_LENGTH_FACTOR * max_chars:
        raise _too_long(len(text), max_chars)
    text = only_text(text)
    # Keep letters of every script and the marks RTL text needs; drop control and format characters
    # (including stray direction overrides) that would only confuse matching.
    kept = "".join(
        " " if unicodedata.category(ch) in {"Cc", "Zl", "Zp"} else ch
        for ch in text
        if unicodedata.category(ch) != "Cf" or ch in "\u200c\u200d"
    )
    question = " ".join(kept.split())
    if not question:
        raise InvalidQuestionError("The question is empty. Ask something about the indexed articles.")
    if not any(ch.isalnum() for ch in question):
        raise InvalidQuestionError("The question has no words in it. Ask something about the indexed articles.")
    if len(question) > max_chars:
        raise _too_long(len(question), max_chars)
    return question


def answer_policy(settings: Settings) -> AnswerPolicy:
    scorer = AnswerScorer.load(settings.answer_scorer)
    if settings.answer_threshold is not None:
        scorer = replace(scorer, threshold=settings.answer_threshold)
    return AnswerPolicy(scorer=scorer, max_sentences=settings.answer_max_sentences,
                        candidate_passages=settings.answer_candidate_passages)


def _too_long(length: int, max_chars: int) -> InvalidQuestionError:
    return InvalidQuestionError(
        f"The question is {length:,} characters long; the limit is {max_chars:,}. Ask it more briefly."
    )


def checked_k(k: object, max_k: int) -> int | None:
    """`k` as the number of passages to retrieve (None: the default), or a clear error."""
    if k is None:
        return None
    # bool is an int to Python, but `k=True` is a mistake, not "one passage".
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= int(k) <= max_k:
        raise InvalidQuestionError(
            f"k must be a whole number from 1 to {max_k} (passages to retrieve; MAX_K sets the most)."
        )
    return int(k)


def check_doc_id(doc_id: object) -> None:
    if doc_id is not None and not isinstance(doc_id, str):
        raise InvalidQuestionError("The source id must be text, one of the ids `verbatim sources` lists.")


class Engine:
    """One loaded index version with its models. Read-only, so worker threads can share it."""

    def __init__(self, settings: Settings, stored: StoredIndex, encoders: Encoders,
                 policy: AnswerPolicy | None = None) -> None:
        self.settings = settings
        self.stored = stored
        self.encoders = encoders
        self.searcher = Searcher(stored, encoders, settings)
        self.facts = CorpusFacts(self.searcher, stored.article_text)
        self.policy = policy or answer_policy(settings)

    @classmethod
    def load(cls, settings: Settings, encoders: Encoders | None = None,
             policy: AnswerPolicy | None = None) -> Engine:
        """`policy` (default: from `settings`) lets training open an engine without the scorer it replaces."""
        # One query at a time is served fastest single-threaded on a small machine.
        faiss.omp_set_num_threads(1)
        stored = StoredIndex.open_current(settings.index_dir, policy=VectorIndexPolicy.from_settings(settings))
        manifest = stored.manifest
        if manifest.model != settings.embedding_model:
            raise IndexMismatchError("the embedding model", manifest.model, settings.embedding_model)
        encoders = encoders or Encoders.load(settings)
        if manifest.dimension != encoders.dense.dimension:
            raise IndexMismatchError("vectors of dimension", manifest.dimension, encoders.dense.dimension)
        wanted_multilingual = encoders.multilingual.name if encoders.multilingual else None
        if manifest.multilingual_model != wanted_multilingual:
            raise IndexMismatchError("the multilingual model", manifest.multilingual_model, wanted_multilingual)
        return cls(settings, stored, encoders, policy)

    def ask(self, question: str, *, k: int | None = None, doc_id: str | None = None,
            context: str | None = None) -> Answer:
        started = time.perf_counter()
        parsed, retrieval = self.retrieve_for_answer(question, k=k, doc_id=doc_id, context=context)
        retrieved = time.perf_counter()
        answer = compose_answer(parsed, retrieval, self.facts, self.policy)
        done = time.perf_counter()
        timings = {
            "retrieve": round((retrieved - started) * 1000, 2),
            "answer": round((done - retrieved) * 1000, 2),
            "total": round((done - started) * 1000, 2),
        }
        return replace(answer, timings_ms=timings)

    def retrieve_for_answer(self, question: str, *, k: int | None = None, doc_id: str | None = None,
                            context: str | None = None) -> tuple[ParsedQuestion, Retrieval]:
        """The checked, parsed question and the passages an answer to it weighs (what `ask` and
        training both start from)."""
        question = clean_question(question, self.settings.max_question_chars)
        # A blank earlier question is no context (a reply to a message with no text, say).
        if context is not None and not (isinstance(context, str) and not context.strip()):
            context = clean_question(context, self.settings.max_question_chars)
        else:
            context = None
        k = checked_k(k, self.settings.max_k)
        check_doc_id(doc_id)
        self._check_doc(doc_id)
        parsed = parse_question(question, context)
        # Answers weigh every sentence of the best few passages, however few the caller asked for.
        k = max(k or self.settings.top_k, self.policy.candidate_passages)
        return parsed, self.searcher.retrieve(parsed, k=k, doc_id=doc_id)

    def search(self, query: str, *, k: int | None = None, doc_id: str | None = None) -> list[Hit]:
        query = clean_question(query, self.settings.max_question_chars)
        k = checked_k(k, self.settings.max_k)
        check_doc_id(doc_id)
        self._check_doc(doc_id)
        return self.searcher.retrieve(parse_question(query), k=k or self.settings.top_k, doc_id=doc_id).hits

    def sources(self) -> list[DocumentInfo]:
        return list(self.stored.documents.values())

    def source(self, doc_id: str) -> DocumentInfo | None:
        return self.stored.lookup(doc_id)

    def article_text(self, doc_id: str) -> str:
        return self.stored.article_text(doc_id)

    def info(self) -> IndexInfo:
        m = self.stored.manifest
        return IndexInfo(m.model, m.dimension, m.multilingual_model, m.documents, m.passages, m.built_at,
                         __version__, str(self.stored.folder))

    def _check_doc(self, doc_id: str | None) -> None:
        if doc_id is not None and self.stored.lookup(doc_id) is None:
            shown = doc_id if len(doc_id) <= 80 else doc_id[:80] + "…"
            raise VerbatimError(f"No source has the id {shown!r}. `verbatim sources` lists them.")


T = TypeVar("T")


class LiveEngine:
    """The engine a long-running front end serves from; a re-index swaps in a new one when it is ready."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self._engine = engine
        self._reindex_lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings) -> LiveEngine:
        return cls(settings, Engine.load(settings))

    @property
    def current(self) -> Engine:
        return self._engine

    @property
    def reindexing(self) -> bool:
        return self._reindex_lock.locked()

    def reindex(self, full: bool = False, progress: ProgressCallback | None = None,
                corpus_paths: list[Path] | None = None) -> BuildReport:
        """Re-read the corpus (only changed documents are embedded unless `full`) and switch to the
        result; the old engine answers until then."""
        return self._while_locked(
            lambda encoders: build_index(
                self.settings, corpus_paths, encoders=encoders, progress=progress, incremental=not full),
            index_changed=lambda _report: True,
        )

    def ingest(self, url: str, progress: ProgressCallback | None = None) -> IngestReport:
        """Add the article at `url` to the corpus and the index, then switch to the new index."""
        from index.sources.ingest import add_url

        return self._while_locked(
            lambda encoders: add_url(self.settings, url, encoders=encoders, progress=progress),
            index_changed=lambda report: report.status == "added",  # a duplicate leaves the index as it was
        )

    def _while_locked(self, work: Callable[[Encoders], T], index_changed: Callable[[T], bool]) -> T:
        """Run one index-changing job at a time, then serve the index it wrote."""
        if not self._reindex_lock.acquire(blocking=False):
            raise ReindexInProgressError()
        try:
            encoders = self._engine.encoders
            result = work(encoders)
            if index_changed(result):
                self._engine = Engine.load(self.settings, encoders=encoders)
            return result
        finally:
            self._reindex_lock.release()
