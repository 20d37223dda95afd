"""Building an index: corpus → passages → embeddings → a new stored version."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index import __version__
from index.embedders import Encoder, SentenceTransformerEncoder, load_multilingual
from index.errors import CorpusError, IndexCorruptError, IndexFormatError, IndexMissingError
from index.settings import Settings
from index.sources.corpus import load_corpus
from index.sources.passages import Passage, split_article_sentences
from index.store.files import (
    IndexContent,
    Manifest,
    SentenceRecord,
    StoredIndex,
    build_lock,
    fingerprint,
    write_version,
)
from index.store.lexical import analyse
from index.store.vectors import VectorIndexPolicy


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
    with build_lock(settings.index_dir):
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
    previous = _open_previous(settings.index_dir)
    previous_hashes = {d: info.content_hash for d, info in previous.documents.items()} if previous else {}
    reusable = previous if incremental and previous and _compatible(previous, settings, encoders, max_tokens) else None

    try:
        passages: list[Passage] = []
        sentences: list[SentenceRecord] = []
        # Sentence rows whose vectors come from the previous version: (new row, previous row).
        reused_rows: list[tuple[int, int]] = []
        for number, article in enumerate(corpus.articles, start=1):
            if reusable is not None and previous_hashes.get(article.doc_id) == article.content_hash:
                info = reusable.documents[article.doc_id]
                reused_rows.extend((len(sentences) + i, info.first_sentence_row + i)
                                   for i in range(info.sentence_count))
                sentences.extend(reusable.document_sentences(article.doc_id))
                for record in reusable.document_passages(article.doc_id):
                    passages.append(Passage(record.passage_id, record.doc_id, record.position, record.start,
                                            record.end, record.text, record.sentences,
                                            record.first_sentence_row - info.first_sentence_row))
            else:
                split = split_article_sentences(article, encoders.dense.count_tokens, max_tokens,
                                                settings.passage_overlap_sentences)
                passages.extend(split.passages)
                sentences.extend(SentenceRecord(article.doc_id, span.start, span.end, tokens)
                                 for span, tokens in zip(split.sentences, split.sentence_tokens, strict=True))
            if number % 200 == 0 or number == len(corpus.articles):
                report_progress(Progress("splitting", number, len(corpus.articles)))

        reused = {new for new, _ in reused_rows}
        to_embed = [row for row in range(len(sentences)) if row not in reused]
        texts_by_doc = {a.doc_id: a.text for a in corpus.articles}
        texts = [texts_by_doc[sentences[row].doc_id][sentences[row].start:sentences[row].end] for row in to_embed]
        dense_sentences = _assemble(
            encoders.dense, texts, to_embed, reused_rows, reusable, "dense.sentences", len(sentences),
            lambda done, total: report_progress(Progress("embedding", done, total)),
        )
        multilingual_sentences = None
        if encoders.multilingual is not None:
            multilingual_sentences = _assemble(
                encoders.multilingual, texts, to_embed, reused_rows, reusable, "multilingual.sentences",
                len(sentences), lambda done, total: report_progress(Progress("embedding (multilingual)", done, total)),
            )
    finally:
        if previous is not None:
            previous.close()

    # Every token is embedded once, as part of its sentence; a passage's vector is the token-weighted
    # mean of its sentences' vectors (docs/quality.md measures retrieval with these against passages
    # embedded whole).
    first_sentence_of = _first_sentence_rows(sentences)
    passage_rows = [range(first_sentence_of[p.doc_id] + p.first_sentence,
                          first_sentence_of[p.doc_id] + p.first_sentence + len(p.sentences)) for p in passages]
    weights = np.asarray([s.tokens for s in sentences], dtype=np.float32)
    dense = pool_passages(dense_sentences, weights, passage_rows)
    multilingual = (pool_passages(multilingual_sentences, weights, passage_rows)
                    if multilingual_sentences is not None else None)

    report_progress(Progress("writing", 0, 1))
    manifest = Manifest(
        model=settings.embedding_model,
        dimension=encoders.dense.dimension,
        multilingual_model=encoders.multilingual.name if encoders.multilingual else None,
        multilingual_dimension=encoders.multilingual.dimension if encoders.multilingual else None,
        passage_max_tokens=max_tokens,
        passage_overlap_sentences=settings.passage_overlap_sentences,
        corpus_fingerprint=fingerprint(corpus.articles),
        built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        documents=len(corpus.articles),
        passages=len(passages),
        sentences=len(sentences),
        build_seconds=round(time.perf_counter() - started, 3),
        verbatim_version=__version__,
        embedding_backend=encoders.dense.backend,
    )
    write_version(
        settings.index_dir,
        IndexContent(
            manifest=manifest,
            articles=corpus.articles,
            passages=passages,
            sentences=sentences,
            dense=dense,
            multilingual=multilingual,
            dense_sentences=dense_sentences,
            multilingual_sentences=multilingual_sentences,
            bm25_terms=[analyse(p.text) for p in passages],
        ),
        VectorIndexPolicy.from_settings(settings),
    )
    seconds = time.perf_counter() - started
    report_progress(Progress("done", 1, 1))
    current = {a.doc_id: a.content_hash for a in corpus.articles}
    embedded_docs = {sentences[row].doc_id for row in to_embed}
    return BuildReport(
        documents=len(corpus.articles),
        passages=len(passages),
        seconds=round(seconds, 2),
        passages_per_second=round(len(passages) / seconds, 1) if seconds > 0 else 0.0,
        added=sorted(set(current) - set(previous_hashes)),
        changed=sorted(d for d in current if d in previous_hashes and previous_hashes[d] != current[d]),
        removed=sorted(set(previous_hashes) - set(current)),
        warnings=corpus.warnings,
        index_dir=str(settings.index_dir),
        embedded_documents=len(embedded_docs),
        embedded_passages=sum(1 for p in passages if p.doc_id in embedded_docs),
        embedded_sentences=len(to_embed),
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


def _assemble(encoder: Encoder, texts: list[str], to_embed: list[int], reused_rows: list[tuple[int, int]],
              previous: StoredIndex | None, name: str, total: int, progress) -> np.ndarray:
    """Vectors for every sentence row: fresh ones for `to_embed`, copies from `previous` for the rest."""
    vectors = np.empty((total, encoder.dimension), dtype=np.float32)
    if to_embed:
        vectors[to_embed] = encoder.encode_passages(texts, progress=progress)
    else:
        progress(0, 0)
    if reused_rows:
        stored = previous.stored_vectors(name) if previous is not None else None
        if stored is None:  # `_compatible` found them before reuse was chosen
            raise IndexCorruptError(f"{name}.npy of the previous index version can no longer be read. "
                                    "Rebuild with `verbatim index build`.")
        new_rows, old_rows = zip(*reused_rows, strict=True)
        vectors[list(new_rows)] = stored[list(old_rows)]
    return vectors


def _compatible(previous: StoredIndex, settings: Settings, encoders: Encoders, max_tokens: int) -> bool:
    """Whether the previous version's passages and vectors can be reused as they are."""
    m = previous.manifest
    return (
        m.model == settings.embedding_model
        and m.embedding_backend == encoders.dense.backend  # onnx-int8 vectors are not fp32 ones
        and m.dimension == encoders.dense.dimension
        and m.multilingual_model == (encoders.multilingual.name if encoders.multilingual else None)
        and m.passage_max_tokens == max_tokens
        and m.passage_overlap_sentences == settings.passage_overlap_sentences
        and previous.stored_vectors("dense.sentences") is not None
        and (encoders.multilingual is None or previous.stored_vectors("multilingual.sentences") is not None)
    )


def _open_previous(root: Path) -> StoredIndex | None:
    try:
        return StoredIndex.open_current(root, searchable=False)
    except (IndexMissingError, IndexCorruptError, IndexFormatError):
        return None
