"""The engine's front door: load an index once, then ask, search and look up sources."""

from __future__ import annotations

import datetime as dt
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
from index.answers.claims import (
    DEFAULT_THRESHOLDS,
    ClaimCandidate,
    ClaimCheck,
    ClaimThresholds,
    claim_candidates,
    judge,
)
from index.answers.compose import Answer, AnswerPolicy, compose_answer, score_candidates
from index.answers.features import CorpusFacts
from index.answers.scorer import AnswerScorer
from index.answers.timeline import TimelineEvent, build_timeline
from index.errors import IndexMismatchError, InvalidQuestionError, ReindexInProgressError, VerbatimError
from index.retrieval.question import ParsedQuestion, parse_question
from index.retrieval.search import Hit, Retrieval, Searcher
from index.retrieval.statement import read_statement
from index.settings import Settings
from index.store.build import BuildReport, Encoders, ProgressCallback, build_index
from index.store.interface import IndexVersion
from index.store.segments import DocumentInfo
from index.store.stores import open_index

if TYPE_CHECKING:  # ingesting needs the web client (httpx), which answering questions does not
    from index.answers.llm import AnswerWriter, OnWritten
    from index.sources.feed_poll import PollReport
    from index.sources.feeds import AlsoReported
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
    version: str  # of Verbatim
    index_dir: str  # where the index lives: a folder, or a database (without its password)
    index_version: str  # the version served: the same in every process that serves it


# Raw text longer than this many times the limit cannot clean down to it in any realistic case, so it
# is refused before the (linear, but slow in Python) cleaning.
_RAW_LENGTH_FACTOR = 4
TIMELINE_PASSAGES = 20


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


def _answer_writer(settings: Settings) -> AnswerWriter | None:
    """The language model's writer when ANSWER_MODE=llm (imported only then: extractive needs no web client)."""
    if settings.answer_mode != "llm":
        return None
    from index.answers.llm import AnswerWriter

    return AnswerWriter.from_settings(settings)


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


def checked_as_of(as_of: object) -> dt.date | None:
    if as_of is None or (isinstance(as_of, dt.date) and not isinstance(as_of, dt.datetime)):
        return as_of
    if isinstance(as_of, dt.datetime):
        return as_of.date()
    raise InvalidQuestionError("The asking date must be a date (YYYY-MM-DD).")


def check_doc_id(doc_id: object) -> None:
    if doc_id is not None and not isinstance(doc_id, str):
        raise InvalidQuestionError("The source id must be text, one of the ids `verbatim sources` lists.")


class Engine:
    """One loaded index version with its models. Read-only, so worker threads can share it."""

    def __init__(self, settings: Settings, stored: IndexVersion, encoders: Encoders,
                 policy: AnswerPolicy | None = None) -> None:
        self.settings = settings
        self.stored = stored
        self.encoders = encoders
        self.searcher = Searcher(stored, encoders, settings)
        self.facts = CorpusFacts(self.searcher, stored.article_text)
        self.policy = policy or answer_policy(settings)
        self.writer = _answer_writer(settings)

    @classmethod
    def load(cls, settings: Settings, encoders: Encoders | None = None,
             policy: AnswerPolicy | None = None) -> Engine:
        """`policy` (default: from `settings`) lets training open an engine without the scorer it replaces."""
        # One query at a time is served fastest single-threaded on a small machine.
        faiss.omp_set_num_threads(1)
        stored = open_index(settings)
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
            context: str | None = None, as_of: dt.date | None = None,
            allowed_doc_ids: frozenset[str] | None = None, on_written: OnWritten | None = None) -> Answer:
        """`as_of`: answer as on that day (time words read against it; later sources not known yet).
        `allowed_doc_ids` (None: all) limits the answer to those articles, e.g. a server's chosen sources.
        With ANSWER_MODE=llm, `on_written` (if given) gets the written answer so far whenever another
        sentence of it has passed its check, while the model streams (see index/answers/llm.py)."""
        started = time.perf_counter()
        parsed, retrieval = self.retrieve_for_answer(question, k=k, doc_id=doc_id, context=context, as_of=as_of,
                                                     allowed_doc_ids=allowed_doc_ids)
        retrieved = time.perf_counter()
        scored = score_candidates(parsed, retrieval, self.facts, self.policy)
        answer = compose_answer(parsed, retrieval, self.facts, self.policy, scored=scored)
        done = time.perf_counter()
        timings = {
            "retrieve": round((retrieved - started) * 1000, 2),
            "answer": round((done - retrieved) * 1000, 2),
            "total": round((done - started) * 1000, 2),
        }
        answer = replace(answer, timings_ms=timings)
        # Only an answer is reworded: when the sources don't say, the model is not asked to.
        if self.writer is not None and answer.answered:
            answer = self.writer.write(parsed, scored, answer, on_written)
            answer = replace(answer, timings_ms={**answer.timings_ms,
                                                 "total": round((time.perf_counter() - started) * 1000, 2)})
        return answer

    def retrieve_for_answer(self, question: str, *, k: int | None = None, doc_id: str | None = None,
                            context: str | None = None,
                            as_of: dt.date | None = None,
                            allowed_doc_ids: frozenset[str] | None = None) -> tuple[ParsedQuestion, Retrieval]:
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
        parsed = parse_question(question, context, as_of=checked_as_of(as_of), dated_sources=self.searcher.dated)
        # Answers weigh every sentence of the best few passages, however few the caller asked for.
        k = max(k or self.settings.top_k, self.policy.candidate_passages)
        return parsed, self.searcher.retrieve(parsed, k=k, doc_id=doc_id, allowed_doc_ids=allowed_doc_ids)

    def check(self, claim: str, *, k: int | None = None, doc_id: str | None = None,
              allowed_doc_ids: frozenset[str] | None = None, as_of: dt.date | None = None,
              thresholds: ClaimThresholds = DEFAULT_THRESHOLDS) -> ClaimCheck:
        """The sentences of the sources that support or contradict `claim`, each cited, and a verdict;
        `as_of`: checked as on that day (later sources not known yet)."""
        started = time.perf_counter()
        parsed, found = self.claim_candidates(claim, k=k, doc_id=doc_id, allowed_doc_ids=allowed_doc_ids, as_of=as_of)
        retrieved = time.perf_counter()
        checked = judge(parsed.text, parsed.language, found, thresholds)
        done = time.perf_counter()
        return replace(checked, timings_ms={"retrieve": round((retrieved - started) * 1000, 2),
                                            "judge": round((done - retrieved) * 1000, 2),
                                            "total": round((done - started) * 1000, 2)})

    def claim_candidates(self, claim: str, *, k: int | None = None, doc_id: str | None = None,
                         allowed_doc_ids: frozenset[str] | None = None,
                         as_of: dt.date | None = None) -> tuple[ParsedQuestion, list[ClaimCandidate]]:
        """The parsed claim and every candidate source sentence with its cues: what `check` judges, and
        what claim evaluation (index/claim_evaluation.py) tunes thresholds on."""
        parsed, retrieval = self.retrieve_for_answer(claim, k=k, doc_id=doc_id, as_of=as_of,
                                                     allowed_doc_ids=allowed_doc_ids)
        return parsed, claim_candidates(parsed, read_statement(parsed.text), retrieval, self.facts, self.policy)

    def timeline(self, topic: str, *, as_of: dt.date | None = None, limit: int = 12,
                 allowed_doc_ids: frozenset[str] | None = None) -> list[TimelineEvent]:
        """The dated events about `topic`, oldest first, each a quoted, cited sentence (see
        index/answers/timeline.py); `as_of` leaves out what was published after that day."""
        topic = clean_question(topic, self.settings.max_question_chars)
        parsed = parse_question(topic, as_of=checked_as_of(as_of), dated_sources=self.searcher.dated)
        # A timeline spans many reports: read more passages than one answer does.
        retrieval = self.searcher.retrieve(parsed, k=max(TIMELINE_PASSAGES, self.settings.top_k),
                                           allowed_doc_ids=allowed_doc_ids)
        return build_timeline(retrieval, self.facts, limit)

    def search(self, query: str, *, k: int | None = None, doc_id: str | None = None,
               as_of: dt.date | None = None, allowed_doc_ids: frozenset[str] | None = None) -> list[Hit]:
        query = clean_question(query, self.settings.max_question_chars)
        k = checked_k(k, self.settings.max_k)
        check_doc_id(doc_id)
        self._check_doc(doc_id)
        parsed = parse_question(query, as_of=checked_as_of(as_of), dated_sources=self.searcher.dated)
        return self.searcher.retrieve(parsed, k=k or self.settings.top_k, doc_id=doc_id,
                                      allowed_doc_ids=allowed_doc_ids).hits

    def sources(self) -> list[DocumentInfo]:
        return list(self.stored.documents.values())

    def source(self, doc_id: str) -> DocumentInfo | None:
        return self.stored.lookup(doc_id)

    def article_text(self, doc_id: str) -> str:
        return self.stored.article_text(doc_id)

    def also_reported(self, doc_ids: list[str]) -> dict[str, list[AlsoReported]]:
        """Other outlets' copies of these documents' stories, stored once (feeds): "also reported by"."""
        from index.sources.feeds import also_reported

        return also_reported(self.settings.data_dir, doc_ids)

    def info(self) -> IndexInfo:
        m = self.stored.manifest
        return IndexInfo(m.model, m.dimension, m.multilingual_model, m.documents, m.passages, m.built_at,
                         __version__, self.stored.location, self.stored.version)

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
        self._refused_version: str | None = None  # a newer version this process cannot serve (follow)

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

    def poll_feeds(self, *, due_only: bool = True, progress: ProgressCallback | None = None) -> PollReport:
        """Poll the followed feeds (those due, or all): fetching holds no lock, so answers and re-indexes
        go on; storing the new items runs like a re-index and switches to the new index."""
        from index.sources.feed_poll import fetch_feeds, store_items

        fetches = fetch_feeds(self.settings, due_only=due_only)
        if not any(fetched.items for fetched in fetches):  # statuses only: the index is not touched
            return store_items(self.settings, fetches)
        return self._while_locked(
            lambda encoders: store_items(self.settings, fetches, encoders=encoders, progress=progress),
            index_changed=lambda report: report.build is not None,
        )

    def follow(self) -> bool:
        """Switch to the version another process wrote (a re-index, an addition, a feed poll), if any.

        Several processes can serve one index (shards or replicas on Postgres, or on one folder): each
        calls this every INDEX_FOLLOW_SECONDS. Reading which version is served costs one small read (a
        file, or one row on a connection the engine already has); True when this process switched."""
        served = self._engine.stored.latest_version()
        if served is None or served in (self._engine.stored.version, self._refused_version):
            return False
        if not self._reindex_lock.acquire(blocking=False):
            return False  # this process is writing a version itself and switches when done
        try:
            self._engine = self._load_warm(self._engine.encoders)
            return True
        except IndexMismatchError:
            # Built with other models than this process's settings (IndexFormatError too): said once, not
            # every few seconds. Anything else (a database briefly away) is tried again at the next check.
            self._refused_version = served
            raise
        finally:
            self._reindex_lock.release()

    def _load_warm(self, encoders: Encoders) -> Engine:
        """The new version, with what its first question would otherwise read first (every document's
        date, a full read of the documents) read here, before it is swapped in, off the question path."""
        engine = Engine.load(self.settings, encoders=encoders)
        engine.searcher.warm_up()
        return engine

    def _while_locked(self, work: Callable[[Encoders], T], index_changed: Callable[[T], bool]) -> T:
        """Run one index-changing job at a time, then serve the index it wrote."""
        if not self._reindex_lock.acquire(blocking=False):
            raise ReindexInProgressError()
        try:
            encoders = self._engine.encoders
            result = work(encoders)
            if index_changed(result):
                self._engine = self._load_warm(encoders)
            return result
        finally:
            self._reindex_lock.release()
