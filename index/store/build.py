"""Building an index: corpus → passages → embeddings → a new stored version.

A full build writes one segment; an update or an addition writes only what is new as one more
segment, hiding the old copies of changed and removed documents (index/store/files.py). With
DATABASE_URL set, the same content goes to Postgres instead (index/store/postgres.py).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from index import __version__
from index.embedders import Encoder, SentenceTransformerEncoder, load_multilingual
from index.errors import CorpusError
from index.settings import Settings
from index.sources.corpus import Article, load_corpus
from index.sources.passages import Passage, split_article_sentences
from index.store.files import (
    MAX_SEGMENTS,
    IndexContent,
    Manifest,
    SegmentRef,
    SentenceRecord,
    StoredIndex,
    commit_version,
    fingerprint,
    refingerprint,
    write_version,
)
from index.store.lexical import analyse
from index.store.merge import merge_plan, merge_segments
from index.store.postgres import PostgresIndex
from index.store.segments import Postings, SegmentContent, write_segment
from index.store.stores import database_url, location, open_previous, write_lock
from index.store.vectors import VectorIndexPolicy, describe_vector_index


@dataclass(frozen=True)
class Progress:
    stage: str  # "reading", "splitting", "embedding", "embedding (multilingual)", "writing", "done"
    done: int
    total: int


ProgressCallback = Callable[[Progress], None]


@dataclass
class BuildReport:
    documents: int
    passages: int
    seconds: float
    passages_per_second: float
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    index_dir: str = ""
    embedded_documents: int = 0  # documents whose passages were embedded (not reused)
    embedded_passages: int = 0  # passages of those documents
    embedded_sentences: int = 0
    segments: int = 0  # in the version written
    merged_segments: int = 0  # segments merged into fewer on the way


@dataclass
class Encoders:
    """The models an index is built and queried with; loaded once and shared."""

    dense: SentenceTransformerEncoder
    multilingual: Encoder | None

    @classmethod
    def load(cls, settings: Settings) -> Encoders:
        return cls(
            dense=SentenceTransformerEncoder(settings.embedding_model, batch_size=settings.embedding_batch_size,
                                             backend=settings.embedding_backend,
                                             cache_dir=settings.resolved_model_cache_dir),
            multilingual=load_multilingual(settings.multilingual_model, batch_size=settings.embedding_batch_size),
        )


def build_index(
    settings: Settings,
    corpus_paths: Sequence[Path] | None = None,
    *,
    encoders: Encoders | None = None,
    progress: ProgressCallback | None = None,
    incremental: bool = False,
) -> BuildReport:
    """Index every article under `corpus_paths` (default: the corpus folder) as a new current version.

    With `incremental`, documents whose content is unchanged since the current version keep their
    passages and vectors, so only new and changed documents are embedded. Either way the current
    version is never modified: a new one is written and switched to atomically.
    """
    with write_lock(settings):
        return build_index_locked(settings, corpus_paths, encoders=encoders, progress=progress, incremental=incremental)


def build_index_locked(
    settings: Settings,
    corpus_paths: Sequence[Path] | None = None,
    *,
    encoders: Encoders | None = None,
    progress: ProgressCallback | None = None,
    incremental: bool = False,
) -> BuildReport:
    """`build_index` for a caller that already holds `build_lock`: `add` saves its article and builds
    under one lock, so a failed or refused build never leaves an unindexed file in the corpus."""
    return _build(settings, corpus_paths, encoders, progress or (lambda _event: None), incremental)


def add_articles(settings: Settings, articles: Sequence[Article], *, encoders: Encoders | None = None,
                 progress: ProgressCallback | None = None) -> BuildReport:
    """Index `articles` (new ones, or new texts of indexed ones) without reading the rest of the corpus."""
    with write_lock(settings):
        return add_articles_locked(settings, articles, encoders=encoders, progress=progress)


def add_articles_locked(settings: Settings, articles: Sequence[Article], *, encoders: Encoders | None = None,
                        progress: ProgressCallback | None = None) -> BuildReport:
    """`add_articles` for a caller that holds `build_lock`. The articles become one new segment (an
    indexed document with the same id is hidden where it was), so the cost is theirs alone. With no
    usable index yet, the whole corpus folder is indexed instead: it must hold the articles."""
    started = time.perf_counter()
    report_progress = progress or (lambda _event: None)
    encoders = encoders or Encoders.load(settings)
    max_tokens = min(settings.passage_max_tokens, encoders.dense.max_tokens)
    previous = _open_previous(settings)
    if previous is None or not _compatible(previous, settings, encoders, max_tokens):
        if previous is not None:
            previous.close()
        return _build(settings, None, encoders, report_progress, incremental=True)
    try:
        latest = list({a.doc_id: a for a in articles}.values())  # one text per id: the last given
        # Looked up by key: the index's other documents are never read.
        known = {a.doc_id: info for a in latest if (info := previous.lookup(a.doc_id)) is not None}
        fresh = [a for a in latest if a.doc_id not in known or known[a.doc_id].content_hash != a.content_hash]
        replaced = {a.doc_id for a in fresh if a.doc_id in known}
        return _grow(settings, previous, fresh, replaced, encoders, max_tokens, report_progress, started, [])
    finally:
        previous.close()


def _build(
    settings: Settings,
    corpus_paths: Sequence[Path] | None,
    encoders: Encoders | None,
    report_progress: ProgressCallback,
    incremental: bool,
) -> BuildReport:
    started = time.perf_counter()
    paths = [Path(p) for p in (corpus_paths or [settings.corpus_dir])]

    report_progress(Progress("reading", 0, len(paths)))
    corpus = load_corpus(paths, max_article_chars=settings.max_article_chars)
    if not corpus.articles:
        raise CorpusError(
            f"No article could be read from {', '.join(map(str, paths))}. "
            "Add Markdown files with front matter or a .jsonl file, then build again."
            + ("\n" + "\n".join(corpus.warnings) if corpus.warnings else "")
        )
    encoders = encoders or Encoders.load(settings)
    max_tokens = min(settings.passage_max_tokens, encoders.dense.max_tokens)
    previous = _open_previous(settings)
    try:
        if incremental and previous is not None and _compatible(previous, settings, encoders, max_tokens):
            # Only what changed is indexed: new and changed documents become one new segment; changed
            # and removed ones are hidden in the segments that hold them.
            current = {a.doc_id: a.content_hash for a in corpus.articles}
            stored_hashes = previous.content_hashes()
            fresh = [a for a in corpus.articles if stored_hashes.get(a.doc_id) != a.content_hash]
            gone = {d for d, content_hash in stored_hashes.items() if current.get(d) != content_hash}
            return _grow(settings, previous, fresh, gone, encoders, max_tokens, report_progress, started,
                         corpus.warnings)
        previous_hashes = previous.content_hashes() if previous else {}
        if database_url(settings) is not None:
            assert not isinstance(previous, StoredIndex)  # noqa: S101 (DATABASE_URL opened Postgres)
            # Every document again, in one new version beside the old one (readers keep it until the switch).
            return _write_postgres(settings, previous, corpus.articles, set(previous_hashes), encoders, max_tokens,
                                   report_progress, started, corpus.warnings)
    finally:
        if previous is not None:
            previous.close()

    indexed = index_articles(corpus.articles, settings, encoders, max_tokens, report_progress)
    report_progress(Progress("writing", 0, 1))
    write_version(
        settings.index_dir,
        IndexContent(
            manifest=_manifest(settings, encoders, max_tokens, corpus.articles, len(indexed.passages),
                               len(indexed.sentences), started),
            segment=SegmentContent(
                articles=corpus.articles, passages=indexed.passages, sentences=indexed.sentences,
                dense=indexed.dense, multilingual=indexed.multilingual, dense_sentences=indexed.dense_sentences,
                multilingual_sentences=indexed.multilingual_sentences,
                postings=Postings.from_terms([analyse(p.text) for p in indexed.passages]),
            ),
        ),
        VectorIndexPolicy.from_settings(settings),
    )
    seconds = time.perf_counter() - started
    report_progress(Progress("done", 1, 1))
    current = {a.doc_id: a.content_hash for a in corpus.articles}
    return BuildReport(
        documents=len(corpus.articles),
        passages=len(indexed.passages),
        seconds=round(seconds, 2),
        passages_per_second=round(len(indexed.passages) / seconds, 1) if seconds > 0 else 0.0,
        added=sorted(set(current) - set(previous_hashes)),
        changed=sorted(d for d in current if d in previous_hashes and previous_hashes[d] != current[d]),
        removed=sorted(set(previous_hashes) - set(current)),
        warnings=corpus.warnings,
        index_dir=str(settings.index_dir),
        embedded_documents=len(corpus.articles),
        embedded_passages=len(indexed.passages),
        embedded_sentences=len(indexed.sentences),
        segments=1,
    )


@dataclass(frozen=True)
class IndexedArticles:
    """Articles split and embedded: a segment's content but for its BM25 postings."""

    passages: list[Passage]
    sentences: list[SentenceRecord]
    dense: np.ndarray
    multilingual: np.ndarray | None
    dense_sentences: np.ndarray
    multilingual_sentences: np.ndarray | None


def index_articles(articles: Sequence[Article], settings: Settings, encoders: Encoders, max_tokens: int,
                   report_progress: ProgressCallback) -> IndexedArticles:
    """Split `articles` into sentences and passages and embed them: all the model work of indexing."""
    passages: list[Passage] = []
    sentences: list[SentenceRecord] = []
    for number, article in enumerate(articles, start=1):
        split = split_article_sentences(article, encoders.dense.count_tokens, max_tokens,
                                        settings.passage_overlap_sentences)
        passages.extend(split.passages)
        sentences.extend(SentenceRecord(article.doc_id, span.start, span.end, tokens)
                         for span, tokens in zip(split.sentences, split.sentence_tokens, strict=True))
        if number % 200 == 0 or number == len(articles):
            report_progress(Progress("splitting", number, len(articles)))
    texts_by_doc = {a.doc_id: a.text for a in articles}
    texts = [texts_by_doc[s.doc_id][s.start:s.end] for s in sentences]
    dense_sentences = _embed(encoders.dense, texts,
                             lambda done, total: report_progress(Progress("embedding", done, total)))
    multilingual_sentences = None
    if encoders.multilingual is not None:
        multilingual_sentences = _embed(encoders.multilingual, texts, lambda done, total: report_progress(
            Progress("embedding (multilingual)", done, total)))
    # Every token is embedded once, as part of its sentence; a passage's vector is the token-weighted
    # mean of its sentences' vectors (docs/quality.md measures retrieval with these against passages
    # embedded whole).
    first_sentence_of = _first_sentence_rows(sentences)
    passage_rows = [range(first_sentence_of[p.doc_id] + p.first_sentence,
                          first_sentence_of[p.doc_id] + p.first_sentence + len(p.sentences)) for p in passages]
    weights = np.asarray([s.tokens for s in sentences], dtype=np.float32)
    return IndexedArticles(
        passages=passages, sentences=sentences,
        dense=pool_passages(dense_sentences, weights, passage_rows),
        multilingual=(pool_passages(multilingual_sentences, weights, passage_rows)
                      if multilingual_sentences is not None else None),
        dense_sentences=dense_sentences, multilingual_sentences=multilingual_sentences,
    )


def _embed(encoder: Encoder, texts: list[str], progress) -> np.ndarray:
    if not texts:
        progress(0, 0)
        return np.zeros((0, encoder.dimension), dtype=np.float32)
    return np.asarray(encoder.encode_passages(texts, progress=progress), dtype=np.float32)


def _grow(settings: Settings, previous: StoredIndex | PostgresIndex, fresh: Sequence[Article], gone: set[str],
          encoders: Encoders, max_tokens: int, report_progress: ProgressCallback, started: float,
          warnings: list[str]) -> BuildReport:
    """A new version of `previous`: `gone` documents hidden where they are, `fresh` ones in one new
    segment, then neighbouring segments merged while there are more than MAX_SEGMENTS.

    Only the documents named are looked up: the cost does not depend on the size of the index."""
    if isinstance(previous, PostgresIndex):
        return _write_postgres(settings, previous, fresh, gone, encoders, max_tokens, report_progress, started,
                               warnings)
    root = settings.index_dir
    policy = VectorIndexPolicy.from_settings(settings)
    leaving = {doc_id: (number, info) for doc_id in gone
               if (found := previous.locate(doc_id)) is not None for number, info in [found]}
    refs = [SegmentRef(ref.name, ref.hidden | {d for d, (n, _) in leaving.items() if n == number})
            for number, ref in enumerate(previous.refs)]
    sizes = [segment.passage_count - len(previous.hidden_rows(number))
             - sum(info.passage_count for n, info in leaving.values() if n == number)
             for number, segment in enumerate(previous.segments)]
    indexed = index_articles(fresh, settings, encoders, max_tokens, report_progress) if fresh else None
    report_progress(Progress("writing", 0, 1))
    description = previous.manifest.vector_index
    if indexed is not None:
        name, _ = write_segment(root, SegmentContent(
            articles=fresh, passages=indexed.passages, sentences=indexed.sentences,
            dense=indexed.dense, multilingual=indexed.multilingual, dense_sentences=indexed.dense_sentences,
            multilingual_sentences=indexed.multilingual_sentences,
            postings=Postings.from_terms([analyse(p.text) for p in indexed.passages]),
        ), policy)
        refs.append(SegmentRef(name))
        sizes.append(len(indexed.passages))
    merged = 0
    while (run := merge_plan(sizes, MAX_SEGMENTS)) is not None:
        name, dense = merge_segments(root, refs[run.start:run.stop], previous.manifest, policy)
        refs[run.start:run.stop] = [SegmentRef(name)]
        sizes[run.start:run.stop] = [sum(sizes[run.start:run.stop])]
        merged += len(run)
        if sizes[run.start] == max(sizes):  # the manifest describes the index of the largest segment
            description = describe_vector_index(dense)

    new_passages = len(indexed.passages) if indexed else 0
    new_sentences = len(indexed.sentences) if indexed else 0
    gone_infos = [info for _, info in leaving.values()]
    manifest = replace(
        previous.manifest,
        corpus_fingerprint=refingerprint(previous.manifest.corpus_fingerprint,
                                         removed={info.doc_id: info.content_hash for info in gone_infos},
                                         added={a.doc_id: a.content_hash for a in fresh}),
        built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        documents=previous.manifest.documents - len(gone_infos) + len(fresh),
        passages=previous.manifest.passages - sum(i.passage_count for i in gone_infos) + new_passages,
        sentences=previous.manifest.sentences - sum(i.sentence_count for i in gone_infos) + new_sentences,
        build_seconds=round(time.perf_counter() - started, 3),
        verbatim_version=__version__,
        vector_index=description,
    )
    commit_version(root, manifest, refs)
    seconds = time.perf_counter() - started
    report_progress(Progress("done", 1, 1))
    return BuildReport(
        documents=manifest.documents,
        passages=manifest.passages,
        seconds=round(seconds, 2),
        passages_per_second=round(new_passages / seconds, 1) if seconds > 0 else 0.0,
        added=sorted(a.doc_id for a in fresh if a.doc_id not in leaving),
        changed=sorted(a.doc_id for a in fresh if a.doc_id in leaving),
        removed=sorted(set(leaving) - {a.doc_id for a in fresh}),
        warnings=warnings,
        index_dir=str(root),
        embedded_documents=len(fresh),
        embedded_passages=new_passages,
        embedded_sentences=new_sentences,
        segments=len(refs),
        merged_segments=merged,
    )


def _write_postgres(settings: Settings, previous: PostgresIndex | None, fresh: Sequence[Article], gone: set[str],
                    encoders: Encoders, max_tokens: int, report_progress: ProgressCallback, started: float,
                    warnings: list[str]) -> BuildReport:
    """The next version in Postgres: `gone` documents dropped, `fresh` ones added, in one transaction."""
    from index.store.postgres import write_version

    url = database_url(settings)
    assert url is not None  # noqa: S101 (only called with DATABASE_URL set)
    indexed = index_articles(fresh, settings, encoders, max_tokens, report_progress) if fresh else None
    report_progress(Progress("writing", 0, 1))
    written = write_version(url, _manifest(settings, encoders, max_tokens, fresh, 0, 0, started), fresh, indexed,
                            gone, previous=previous)
    manifest, before = written.manifest, written.dropped  # what the fresh documents replace, as it was
    seconds = time.perf_counter() - started
    report_progress(Progress("done", 1, 1))
    fresh_ids = {a.doc_id for a in fresh}
    return BuildReport(
        documents=manifest.documents,
        passages=manifest.passages,
        seconds=round(seconds, 2),
        passages_per_second=round(len(indexed.passages) / seconds, 1) if indexed and seconds > 0 else 0.0,
        added=sorted(fresh_ids - set(before)),
        changed=sorted(a.doc_id for a in fresh if a.doc_id in before and before[a.doc_id] != a.content_hash),
        removed=sorted(gone - fresh_ids),
        warnings=warnings,
        index_dir=location(settings),
        embedded_documents=len(fresh),
        embedded_passages=len(indexed.passages) if indexed else 0,
        embedded_sentences=len(indexed.sentences) if indexed else 0,
        segments=1,
    )


def _manifest(settings: Settings, encoders: Encoders, max_tokens: int, articles: Sequence[Article], passages: int,
              sentences: int, started: float) -> Manifest:
    return Manifest(
        model=settings.embedding_model,
        dimension=encoders.dense.dimension,
        multilingual_model=encoders.multilingual.name if encoders.multilingual else None,
        multilingual_dimension=encoders.multilingual.dimension if encoders.multilingual else None,
        passage_max_tokens=max_tokens,
        passage_overlap_sentences=settings.passage_overlap_sentences,
        corpus_fingerprint=fingerprint(articles),
        built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        documents=len(articles),
        passages=passages,
        sentences=sentences,
        build_seconds=round(time.perf_counter() - started, 3),
        verbatim_version=__version__,
        embedding_backend=encoders.dense.backend,
    )


def _first_sentence_rows(sentences: Sequence[SentenceRecord]) -> dict[str, int]:
    first: dict[str, int] = {}
    for row, sentence in enumerate(sentences):
        first.setdefault(sentence.doc_id, row)
    return first


def pool_passages(sentence_vectors: np.ndarray, weights: np.ndarray, passage_rows: Sequence[range]) -> np.ndarray:
    """Each passage's vector: its sentences' vectors averaged by token count, L2-normalised."""
    out = np.zeros((len(passage_rows), sentence_vectors.shape[1]), dtype=np.float32)
    for i, rows in enumerate(passage_rows):
        if len(rows):
            w = weights[rows.start:rows.stop]
            out[i] = (w[:, None] * sentence_vectors[rows.start:rows.stop]).sum(axis=0)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


def _compatible(previous: StoredIndex | PostgresIndex, settings: Settings, encoders: Encoders, max_tokens: int) -> bool:
    """Whether the previous version's segments can stay as they are, new articles added beside them."""
    m = previous.manifest
    return (
        m.model == settings.embedding_model
        and m.embedding_backend == encoders.dense.backend  # onnx-int8 vectors are not fp32 ones
        and m.dimension == encoders.dense.dimension
        and m.multilingual_model == (encoders.multilingual.name if encoders.multilingual else None)
        and m.passage_max_tokens == max_tokens
        and m.passage_overlap_sentences == settings.passage_overlap_sentences
        and previous.vectors_intact()  # else what they hold is embedded again, in one new segment
    )


def _open_previous(settings: Settings) -> StoredIndex | PostgresIndex | None:
    previous = open_previous(settings)
    assert previous is None or isinstance(previous, StoredIndex | PostgresIndex)  # noqa: S101
    return previous
