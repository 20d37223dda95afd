"""The on-disk index: one folder per built version, and a CURRENT file naming the one in use.

A version holds `store.sqlite` (manifest, documents, passages, sentences), `dense.faiss`, optionally
`multilingual.faiss`, `bm25/`, and the raw vectors of passages and of sentences (`*.npy`, memory-mapped:
answers score sentences with them without embedding anything at question time). Versions are written under a temporary name and renamed
into place, then CURRENT is replaced atomically, so a reader never sees a half-written index.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import bm25s
import faiss
import numpy as np

from index.corpus import Article
from index.errors import IndexCorruptError, IndexMissingError, ReindexInProgressError
from index.passages import Passage, Span
from index.vectors import (
    VectorIndexPolicy,
    build_vector_index,
    describe_vector_index,
    load_vector_index,
    save_vector_index,
)

INDEX_FORMAT = 2  # 2: sentences and their vectors are stored
CURRENT_FILE = "CURRENT"
VERSIONS_DIR = "versions"
KEEP_PREVIOUS_VERSIONS = 1  # a reader that loaded the previous index can still finish its work

_SCHEMA = """
CREATE TABLE manifest (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT, url TEXT, published TEXT,
    author TEXT, lang TEXT, origin TEXT, content_hash TEXT NOT NULL, text TEXT NOT NULL,
    first_row INTEGER NOT NULL, passage_count INTEGER NOT NULL,
    first_sentence_row INTEGER NOT NULL, sentence_count INTEGER NOT NULL
);
CREATE TABLE passages (
    row INTEGER PRIMARY KEY, passage_id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL,
    position INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    text TEXT NOT NULL, sentences TEXT NOT NULL, first_sentence_row INTEGER NOT NULL
);
CREATE TABLE sentences (
    row INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    tokens INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Manifest:
    model: str
    dimension: int
    multilingual_model: str | None
    multilingual_dimension: int | None
    passage_max_tokens: int
    passage_overlap_sentences: int
    corpus_fingerprint: str
    built_at: str
    documents: int
    passages: int
    build_seconds: float
    verbatim_version: str
    sentences: int = 0
    vector_index: str = "flat"
    format: int = INDEX_FORMAT


@dataclass(frozen=True)
class DocumentInfo:
    doc_id: str
    title: str
    source: str | None
    url: str | None
    published: str | None
    author: str | None
    lang: str | None
    content_hash: str
    passage_count: int
    first_row: int
    opening: str
    first_sentence_row: int = 0
    sentence_count: int = 0


@dataclass(frozen=True)
class PassageRecord:
    row: int
    passage_id: str
    doc_id: str
    position: int
    start: int
    end: int
    text: str
    sentences: tuple[Span, ...]
    first_sentence_row: int = 0  # sentence row of `sentences[0]`; the rest follow in order

    @property
    def sentence_rows(self) -> range:
        return range(self.first_sentence_row, self.first_sentence_row + len(self.sentences))


@dataclass(frozen=True)
class SentenceRecord:
    doc_id: str
    start: int
    end: int
    tokens: int


@dataclass(frozen=True)
class IndexContent:
    """Everything a version holds, ready to be written."""

    manifest: Manifest
    articles: Sequence[Article]
    passages: Sequence[Passage]  # grouped by document, in the order of `articles`
    sentences: Sequence[SentenceRecord]  # grouped by document, in the order of `articles`
    dense: np.ndarray  # one row per passage
    multilingual: np.ndarray | None
    dense_sentences: np.ndarray  # one row per sentence
    multilingual_sentences: np.ndarray | None
    bm25_terms: Sequence[list[str]]


def fingerprint(articles: Sequence[Article]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for doc_id, content_hash in sorted((a.doc_id, a.content_hash) for a in articles):
        digest.update(f"{doc_id}\0{content_hash}\n".encode())
    return digest.hexdigest()


def opening_lines(text: str, limit: int = 300) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip() + "…"


def write_version(root: Path, content: IndexContent, policy: VectorIndexPolicy | None = None) -> Path:
    """Write a complete new version under `root` and make it current. Returns its folder."""
    versions = root / VERSIONS_DIR
    versions.mkdir(parents=True, exist_ok=True)
    # Microseconds first, so that names sort in the order versions were made (old ones are removed
    # by that order), even for builds within one second.
    version_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:6]
    staging = versions / f".tmp-{version_id}"
    staging.mkdir()
    try:
        dense = build_vector_index(content.dense, policy)
        manifest = replace(content.manifest, vector_index=describe_vector_index(dense))
        _write_sqlite(staging / "store.sqlite", replace(content, manifest=manifest))
        save_vector_index(dense, staging / "dense.faiss")
        # The raw vectors too: an update copies unchanged documents' vectors instead of re-embedding,
        # whatever kind of FAISS index serves them.
        np.save(staging / "dense.npy", np.ascontiguousarray(content.dense, dtype=np.float32))
        np.save(staging / "dense.sentences.npy", np.ascontiguousarray(content.dense_sentences, dtype=np.float32))
        if content.multilingual is not None:
            save_vector_index(build_vector_index(content.multilingual, policy), staging / "multilingual.faiss")
            np.save(staging / "multilingual.npy", np.ascontiguousarray(content.multilingual, dtype=np.float32))
        if content.multilingual_sentences is not None:
            np.save(staging / "multilingual.sentences.npy",
                    np.ascontiguousarray(content.multilingual_sentences, dtype=np.float32))
        _write_bm25(staging / "bm25", content.bm25_terms)
        _fsync_tree(staging)
        final = versions / version_id
        os.replace(staging, final)
        _set_current(root, version_id)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    remove_old_versions(root)
    return final


def _write_sqlite(path: Path, content: IndexContent) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.executescript(_SCHEMA)
        connection.executemany(
            "INSERT INTO manifest VALUES (?, ?)",
            [(key, json.dumps(value)) for key, value in asdict(content.manifest).items()],
        )
        counts: dict[str, int] = {}
        first_rows: dict[str, int] = {}
        for row, passage in enumerate(content.passages):
            counts[passage.doc_id] = counts.get(passage.doc_id, 0) + 1
            first_rows.setdefault(passage.doc_id, row)
        sentence_counts: dict[str, int] = {}
        first_sentence_rows: dict[str, int] = {}
        for row, sentence in enumerate(content.sentences):
            sentence_counts[sentence.doc_id] = sentence_counts.get(sentence.doc_id, 0) + 1
            first_sentence_rows.setdefault(sentence.doc_id, row)
        connection.executemany(
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (a.doc_id, a.title, a.source, a.url, a.published, a.author, a.lang, a.origin,
                 a.content_hash, a.text, first_rows.get(a.doc_id, -1), counts.get(a.doc_id, 0),
                 first_sentence_rows.get(a.doc_id, -1), sentence_counts.get(a.doc_id, 0))
                for a in content.articles
            ],
        )
        connection.executemany(
            "INSERT INTO passages VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (row, p.passage_id, p.doc_id, p.position, p.start, p.end, p.text,
                 json.dumps([[s.start, s.end] for s in p.sentences]),
                 first_sentence_rows.get(p.doc_id, 0) + p.first_sentence)
                for row, p in enumerate(content.passages)
            ],
        )
        connection.executemany(
            'INSERT INTO sentences VALUES (?,?,?,?,?)',
            [(row, s.doc_id, s.start, s.end, s.tokens) for row, s in enumerate(content.sentences)],
        )
        connection.commit()
    finally:
        connection.close()


def _write_bm25(folder: Path, terms: Sequence[list[str]]) -> None:
    retriever = bm25s.BM25()
    # An empty token lets a passage with no content words exist without breaking the matrix.
    retriever.index([t or [""] for t in terms], show_progress=False)
    retriever.save(str(folder), show_progress=False)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for path in [*folder.rglob("*"), folder]:
        _fsync(path)


def _set_current(root: Path, version_id: str) -> None:
    staging = root / f".{CURRENT_FILE}.{uuid.uuid4().hex[:6]}"
    staging.write_text(version_id + "\n", encoding="utf-8")
    with staging.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(staging, root / CURRENT_FILE)
    _fsync(root)


def current_version(root: Path) -> Path:
    pointer = root / CURRENT_FILE
    if not pointer.is_file():
        raise IndexMissingError(root)
    folder = root / VERSIONS_DIR / pointer.read_text(encoding="utf-8").strip()
    if not (folder / "store.sqlite").is_file():
        raise IndexCorruptError(
            f"{pointer} names {folder.name}, which is missing or incomplete. "
            "Rebuild with `verbatim index build`."
        )
    return folder


def remove_old_versions(root: Path) -> None:
    versions = root / VERSIONS_DIR
    try:
        keep = current_version(root).name
    except (IndexMissingError, IndexCorruptError):
        return
    finished = sorted((p for p in versions.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True)
    older = [p for p in finished if p.name < keep]
    for folder in older[KEEP_PREVIOUS_VERSIONS:]:
        shutil.rmtree(folder, ignore_errors=True)
    for leftover in versions.glob(".tmp-*"):
        # Staging folders of builds that were killed. Builds hold the build lock, and this runs
        # under it after the staging folder was renamed, so none of these is being written.
        shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def build_lock(root: Path) -> Iterator[None]:
    """Only one build or update at a time per index folder, across processes."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".build.lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ReindexInProgressError() from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class StoredIndex:
    """A loaded version: vectors and BM25 in memory (or memory-mapped), texts read from SQLite on demand.

    `searchable=False` opens only SQLite and the raw vectors: what builds, status and eval read,
    without loading a search index that may be gigabytes.
    """

    dense: faiss.Index | None = None
    multilingual: faiss.Index | None = None
    bm25: bm25s.BM25 | None = None
    dense_sentences: np.ndarray | None = None  # memory-mapped; row i is sentence row i
    multilingual_sentences: np.ndarray | None = None

    def __init__(self, folder: Path, *, searchable: bool = True) -> None:
        self.folder = folder
        try:
            # One connection shared by worker threads; the lock keeps each query whole.
            self._db = sqlite3.connect(f"file:{folder / 'store.sqlite'}?mode=ro", uri=True, check_same_thread=False)
            self._lock = threading.Lock()
            raw = dict(self._db.execute("SELECT key, value FROM manifest").fetchall())
            self.manifest = Manifest(**{key: json.loads(value) for key, value in raw.items()})
            self.documents = self._load_documents()
            if searchable:
                self.dense = load_vector_index(folder / "dense.faiss")
                multilingual = folder / "multilingual.faiss"
                self.multilingual = load_vector_index(multilingual) if multilingual.is_file() else None
                self.bm25 = bm25s.BM25.load(str(folder / "bm25"), mmap=True, show_progress=False)
                self.dense_sentences = self.stored_vectors("dense.sentences")
                if self.dense_sentences is None:
                    raise OSError("dense.sentences.npy is missing")
                self.multilingual_sentences = self.stored_vectors("multilingual.sentences")
        except (sqlite3.Error, RuntimeError, OSError, TypeError, KeyError, json.JSONDecodeError) as error:
            raise IndexCorruptError(
                f"The index in {folder} could not be read ({error}). Rebuild with `verbatim index build`."
            ) from error
        self.passage_count = self.manifest.passages

    @classmethod
    def open_current(cls, root: Path, *, searchable: bool = True) -> "StoredIndex":
        return cls(current_version(root), searchable=searchable)

    def _load_documents(self) -> dict[str, DocumentInfo]:
        rows = self._db.execute(
            "SELECT doc_id, title, source, url, published, author, lang, content_hash, passage_count, "
            "first_row, substr(text, 1, 400), first_sentence_row, sentence_count FROM documents ORDER BY first_row"
        ).fetchall()
        return {
            r[0]: DocumentInfo(
                doc_id=r[0], title=r[1], source=r[2], url=r[3], published=r[4], author=r[5], lang=r[6],
                content_hash=r[7], passage_count=r[8], first_row=r[9], opening=opening_lines(r[10]),
                first_sentence_row=r[11], sentence_count=r[12],
            )
            for r in rows
        }

    def passages(self, rows: Sequence[int]) -> dict[int, PassageRecord]:
        if not rows:
            return {}
        marks = ",".join("?" * len(rows))
        with self._lock:
            found = self._db.execute(
                f'SELECT row, passage_id, doc_id, position, start, "end", text, sentences, first_sentence_row '
                f"FROM passages WHERE row IN ({marks})",
                [int(r) for r in rows],
            ).fetchall()
        return {
            r[0]: PassageRecord(
                row=r[0], passage_id=r[1], doc_id=r[2], position=r[3], start=r[4], end=r[5], text=r[6],
                sentences=tuple(Span(s, e) for s, e in json.loads(r[7])), first_sentence_row=r[8],
            )
            for r in found
        }

    def document_passages(self, doc_id: str) -> list[PassageRecord]:
        first, last = self.doc_rows(doc_id)
        found = self.passages(list(range(first, last)))
        return [found[row] for row in range(first, last)]

    def document_sentences(self, doc_id: str) -> list[SentenceRecord]:
        info = self.documents[doc_id]
        with self._lock:
            found = self._db.execute(
                'SELECT doc_id, start, "end", tokens FROM sentences WHERE row >= ? AND row < ? ORDER BY row',
                (info.first_sentence_row, info.first_sentence_row + info.sentence_count),
            ).fetchall()
        return [SentenceRecord(*r) for r in found]

    def stored_vectors(self, name: str) -> np.ndarray | None:
        """Raw vectors, memory-mapped: `dense` / `multilingual` (row i is passage row i) or
        `dense.sentences` / `multilingual.sentences` (row i is sentence row i)."""
        path = self.folder / f"{name}.npy"
        return np.load(path, mmap_mode="r") if path.is_file() else None

    def article_text(self, doc_id: str) -> str:
        with self._lock:
            row = self._db.execute("SELECT text FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        if row is None:
            raise KeyError(doc_id)
        return row[0]

    def doc_rows(self, doc_id: str) -> tuple[int, int]:
        """The [first, last) passage rows of a document: a document's passages are contiguous."""
        info = self.documents[doc_id]
        return info.first_row, info.first_row + info.passage_count

    def close(self) -> None:
        self._db.close()
