"""Building an index: corpus → passages → embeddings → a new stored version."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from index import __version__
from index.corpus import load_corpus
from index.embedders import Encoder, SentenceTransformerEncoder, load_multilingual
from index.errors import CorpusError, IndexCorruptError, IndexMissingError
from index.lexical import analyse
from index.passages import Passage, split_article
from index.settings import Settings
from index.store import IndexContent, Manifest, StoredIndex, fingerprint, write_version


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


@dataclass
class Encoders:
    """The models an index is built and queried with; loaded once and shared."""

    dense: SentenceTransformerEncoder
    multilingual: Encoder | None

    @classmethod
    def load(cls, settings: Settings) -> "Encoders":
        return cls(
            dense=SentenceTransformerEncoder(settings.embedding_model, batch_size=settings.embedding_batch_size),
            multilingual=load_multilingual(settings.multilingual_model, batch_size=settings.embedding_batch_size),
        )


def build_index(
    settings: Settings,
    corpus_paths: Sequence[Path] | None = None,
    *,
    encoders: Encoders | None = None,
    progress: ProgressCallback | None = None,
) -> BuildReport:
    """Index every article under `corpus_paths` (default: the corpus folder) as a new current version."""
    started = time.perf_counter()
    report_progress = progress or (lambda _event: None)
    paths = [Path(p) for p in (corpus_paths or [settings.corpus_dir])]

    report_progress(Progress("reading", 0, len(paths)))
    corpus = load_corpus(paths)
    if not corpus.articles:
        raise CorpusError(
            f"No article could be read from {', '.join(map(str, paths))}. "
            "Add Markdown files with front matter or a .jsonl file, then build again."
            + ("\n" + "\n".join(corpus.warnings) if corpus.warnings else "")
        )
    encoders = encoders or Encoders.load(settings)
    max_tokens = min(settings.passage_max_tokens, encoders.dense.max_tokens)

    passages: list[Passage] = []
    for number, article in enumerate(corpus.articles, start=1):
        passages.extend(split_article(article, encoders.dense.count_tokens, max_tokens, settings.passage_overlap_sentences))
        if number % 200 == 0 or number == len(corpus.articles):
            report_progress(Progress("splitting", number, len(corpus.articles)))

    texts = [p.text for p in passages]
    dense = encoders.dense.encode_passages(
        texts, progress=lambda done, total: report_progress(Progress("embedding", done, total))
    )
    multilingual = None
    if encoders.multilingual is not None:
        multilingual = encoders.multilingual.encode_passages(
            texts, progress=lambda done, total: report_progress(Progress("embedding (multilingual)", done, total))
        )
    report_progress(Progress("writing", 0, 1))
    previous = _previous_hashes(settings.index_dir)
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
        build_seconds=round(time.perf_counter() - started, 3),
        verbatim_version=__version__,
    )
    write_version(
        settings.index_dir,
        IndexContent(
            manifest=manifest,
            articles=corpus.articles,
            passages=passages,
            dense=dense,
            multilingual=multilingual,
            bm25_terms=[analyse(t) for t in texts],
        ),
    )
    seconds = time.perf_counter() - started
    report_progress(Progress("done", 1, 1))
    current = {a.doc_id: a.content_hash for a in corpus.articles}
    return BuildReport(
        documents=len(corpus.articles),
        passages=len(passages),
        seconds=round(seconds, 2),
        passages_per_second=round(len(passages) / seconds, 1) if seconds > 0 else 0.0,
        added=sorted(set(current) - set(previous)),
        changed=sorted(d for d in current if d in previous and previous[d] != current[d]),
        removed=sorted(set(previous) - set(current)),
        warnings=corpus.warnings,
        index_dir=str(settings.index_dir),
    )


def _previous_hashes(root: Path) -> dict[str, str]:
    try:
        stored = StoredIndex.open_current(root)
    except (IndexMissingError, IndexCorruptError):
        return {}
    try:
        return {doc_id: info.content_hash for doc_id, info in stored.documents.items()}
    finally:
        stored.close()
