"""The on-disk index: one folder per built version, and a CURRENT file naming the one in use.

A version holds `store.sqlite` (manifest, documents, passages, sentences), `dense.faiss`,
optionally `multilingual.faiss`, `bm25/`, the raw vectors of passages and of sentences (`*.npy`,
memory-mapped: answers score sentences with them without embedding anything at question time), and
`readers.lock`. Versions are written under a temporary name, fsynced, renamed into place (and the
rename fsynced), then CURRENT is replaced atomically, so a reader never sees a half-written index,
even after a power cut.

A reader holds a shared lock on its version's `readers.lock` from open to close; a build removes an
old version only when it can take that lock exclusively, so no version disappears under a reader.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import shutil
import sqlite3
import threading
import types
import typing
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path

import bm25s
import numpy as np

from index.errors import (
    IndexCorruptError,
    IndexFormatError,
    IndexMissingError,
    ReindexInProgressError,
)
from index.sources.corpus import Article
from index.sources.passages import Passage, Span
from index.store.vectors import (
    VectorIndex,
    VectorIndexPolicy,
    build_vector_index,
    describe_vector_index,
    load_vector_index,
    save_vector_index,
)

INDEX_FORMAT = 2  # 2: sentences and their vectors are stored
CURRENT_FILE = "CURRENT"
VERSIONS_DIR = "versions"
READERS_LOCK = "readers.lock"
# Besides versions still held by readers, the one before the current is kept: a reader that has read
# CURRENT but not yet locked its version usually finds it there, and it is a fallback to go back to.
KEEP_PREVIOUS_VERSIONS = 1
# What write_version names a version: UTC time to the microsecond, then 6 random hex digits.
VERSION_NAME = re.compile(r"\d{8}T\d{12}-[0-9a-f]{6}")
STAGING_PREFIX = ".tmp-"  # versions being written, or being removed; none survive a finished build

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
    # The backend that embedded the passages (onnx-int8 vectors differ from fp32 ones); "unknown" in
    # versions written before it was recorded, which an update therefore re-embeds.
    embedding_backend: str = "unknown"
    format: int = INDEX_FORMAT

    @classmethod
    def from_stored(cls, values: dict[str, object]) -> Manifest:
        """Check what a version's manifest table holds, then make a Manifest of it.

        A format this code does not read, or fields it does not know (written by a newer version),
        raise IndexFormatError; missing fields or values of the wrong type raise IndexCorruptError.
        """
        stored_format = values.get("format")
        if stored_format is not None and type(stored_format) is not int:
            raise IndexCorruptError(f"The index manifest's format is {stored_format!r}, not a number.")
        if stored_format != INDEX_FORMAT:
            raise IndexFormatError(stored_format, INDEX_FORMAT)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise IndexFormatError(stored_format, INDEX_FORMAT, unknown_fields=unknown)
        hints = typing.get_type_hints(cls)
        for field in fields(cls):
            if field.name not in values:
                if field.default is not MISSING:  # added with a default, so older versions may lack it
                    continue
                raise IndexCorruptError(f"The index manifest has no {field.name!r}.")
            if not _has_type(values[field.name], hints[field.name]):
                raise IndexCorruptError(
                    f"The index manifest's {field.name!r} is {values[field.name]!r}, not a {hints[field.name]}."
                )
        return cls(**values)  # type: ignore[arg-type]


def _has_type(value: object, hint: object) -> bool:
    """Whether a JSON value fits a field's type (int | None, str, float...); a bool is no number."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return True
        if isinstance(value, bool):
            continue
        if option is float and isinstance(value, (int, float)):
            return True
        if isinstance(option, type) and option is not type(None) and isinstance(value, option):
            return True
    return False


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
    if not versions.is_dir():
        versions.mkdir(parents=True, exist_ok=True)
        _fsync(root)  # the versions folder itself must survive a crash before CURRENT can name into it
    # Microseconds first, so that names sort in the order versions were made (old ones are removed
    # by that order), even for builds within one second.
    version_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:6]
    staging = versions / f"{STAGING_PREFIX}{version_id}"
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
        (staging / READERS_LOCK).touch()
        _fsync_tree(staging)
        final = versions / version_id
        os.replace(staging, final)
        # The rename lives in the versions folder: made durable before CURRENT names the new version,
        # or a power cut could leave CURRENT pointing at a folder that is still called .tmp-….
        _fsync(versions)
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


def current_name(root: Path) -> str:
    """The version CURRENT names, checked to be a version name and nothing else (no path, no `..`)."""
    pointer = root / CURRENT_FILE
    if not pointer.is_file():
        raise IndexMissingError(root)
    with pointer.open("rb") as handle:
        raw = handle.read(256)  # a version name is 28 characters; never read a huge file whole
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        name = None
    if name is None or not VERSION_NAME.fullmatch(name):
        raise IndexCorruptError(
            f"{pointer} does not name an index version (it holds {raw[:60]!r}). "
            "Rebuild with `verbatim index build`."
        )
    return name


def current_version(root: Path) -> Path:
    pointer = root / CURRENT_FILE
    folder = root / VERSIONS_DIR / current_name(root)
    if not (folder / "store.sqlite").is_file():
        raise IndexCorruptError(
            f"{pointer} names {folder.name}, which is missing or incomplete. "
            "Rebuild with `verbatim index build`."
        )
    return folder


def remove_old_versions(root: Path) -> None:
    """Remove what builds no longer need: leftovers of killed builds, and old versions no reader holds.

    Runs under the build lock (when it is taken, and after a build switched CURRENT), so nothing it
    removes is being written. The current version and the one before it are kept; an older version
    that a reader still holds is left for a later build.
    """
    versions = root / VERSIONS_DIR
    # CURRENT files a killed build wrote but did not switch to; staging folders of killed builds, and
    # versions a killed build was removing.
    leftovers = [*root.glob(f".{CURRENT_FILE}.*"), *(versions.glob(f"{STAGING_PREFIX}*") if versions.is_dir() else [])]
    for leftover in leftovers:
        _remove(leftover)
    if not versions.is_dir():
        return
    try:
        keep = current_name(root)
    except (IndexMissingError, IndexCorruptError):
        return  # without a valid CURRENT, which version is good is unknown: remove none
    finished = sorted((p for p in versions.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True)
    older = [p for p in finished if p.name < keep]
    # Newer than the current one: a build that was killed after renaming its version into place but
    # before switching CURRENT. No reader ever opened it.
    unused = [p for p in finished if p.name > keep]
    for folder in unused + older[KEEP_PREVIOUS_VERSIONS:]:
        _remove_unless_read(folder)


def _remove_unless_read(folder: Path) -> None:
    """Remove a version folder unless a reader holds it (it is removed by a later build then)."""
    try:
        handle = os.open(folder / READERS_LOCK, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        return  # gone already, or not ours to remove
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        # Renamed away first, under the lock: a reader that was waiting for it then finds the folder
        # gone and opens the current version instead of half a deleted one.
        doomed = folder.with_name(f"{STAGING_PREFIX}removing-{folder.name}")
        try:
            os.replace(folder, doomed)
        except OSError:
            return  # cleaning up must never fail a build; a later one tries again
    finally:
        os.close(handle)
    _remove(doomed)


def _remove(path: Path) -> None:
    """Remove a file or folder as far as possible; what cannot be removed now is tried again later."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


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
            # What a killed build left behind never gets in the way of this one.
            remove_old_versions(root)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class StoredIndex:
    """A loaded version: vectors and BM25 in memory (or memory-mapped), texts read from SQLite on demand.

    `searchable=False` opens only SQLite and the raw vectors: what builds, status and eval read,
    without loading a search index that may be gigabytes.
    """

    dense: VectorIndex | None = None
    multilingual: VectorIndex | None = None
    bm25: bm25s.BM25 | None = None
    dense_sentences: np.ndarray | None = None  # memory-mapped; row i is sentence row i
    multilingual_sentences: np.ndarray | None = None

    def __init__(self, folder: Path, *, searchable: bool = True, policy: VectorIndexPolicy | None = None) -> None:
        """Open the version in `folder`; `policy` sets how deep approximate indexes search (else as built)."""
        self.folder = folder
        handle = _hold_version(folder)
        # Also runs when the object is garbage collected: an engine that is replaced and dropped lets
        # its version go without anyone calling close().
        self._release_version = weakref.finalize(self, os.close, handle) if handle is not None else _nothing
        try:
            if not (folder / "store.sqlite").is_file():
                raise IndexCorruptError(f"{folder} is missing or has no store.sqlite.")
            # One connection shared by worker threads; the lock keeps each query whole.
            self._db = sqlite3.connect(f"file:{folder / 'store.sqlite'}?mode=ro", uri=True, check_same_thread=False)
            self._lock = threading.Lock()
            raw = dict(self._db.execute("SELECT key, value FROM manifest").fetchall())
            self.manifest = Manifest.from_stored({key: json.loads(value) for key, value in raw.items()})
            self.documents = self._load_documents()
            if searchable:
                self.dense = self._load_vectors("dense", self.manifest.dimension, policy)
                if self.manifest.multilingual_model is not None:
                    self.multilingual = self._load_vectors("multilingual", self.manifest.multilingual_dimension,
                                                           policy)
                self.bm25 = bm25s.BM25.load(str(folder / "bm25"), mmap=True, show_progress=False)
                self.dense_sentences = self.stored_vectors("dense.sentences")
                if self.dense_sentences is None:
                    raise OSError("dense.sentences.npy is missing or does not match the manifest")
                if self.manifest.multilingual_model is not None:
                    self.multilingual_sentences = self.stored_vectors("multilingual.sentences")
                    if self.multilingual_sentences is None:
                        raise OSError("multilingual.sentences.npy is missing or does not match the manifest")
        except IndexFormatError:
            self.close()
            raise
        except (IndexCorruptError, sqlite3.Error, RuntimeError, OSError, TypeError, ValueError, KeyError) as error:
            self.close()
            raise IndexCorruptError(
                f"The index in {folder} could not be read ({error}). Rebuild with `verbatim index build`."
            ) from error
        self.passage_count = self.manifest.passages

    @classmethod
    def open_current(cls, root: Path, *, searchable: bool = True,
                     policy: VectorIndexPolicy | None = None) -> StoredIndex:
        for _attempt in range(3):
            name = current_name(root)
            try:
                return cls(root / VERSIONS_DIR / name, searchable=searchable, policy=policy)
            except IndexCorruptError:
                # A build may have switched CURRENT and removed this version between reading CURRENT
                # and locking the version: then the new current version is opened instead.
                if current_name(root) == name:
                    raise
        return cls(current_version(root), searchable=searchable, policy=policy)

    def _load_vectors(self, name: str, dimension: int | None, policy: VectorIndexPolicy | None) -> VectorIndex:
        index = load_vector_index(self.folder / f"{name}.faiss", policy=policy)
        if index.ntotal != self.manifest.passages or index.d != dimension:
            raise IndexCorruptError(
                f"{name}.faiss holds {index.ntotal} vectors of dimension {index.d}, but the manifest says "
                f"{self.manifest.passages} of dimension {dimension}"
            )
        return index

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
            found = self._db.execute(  # only "?" marks are formatted in: the rows are bound parameters
                f'SELECT row, passage_id, doc_id, position, start, "end", text, sentences, first_sentence_row '  # noqa: S608
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
        `dense.sentences` / `multilingual.sentences` (row i is sentence row i).

        None when the file is missing, unreadable or does not match the manifest: a build then
        embeds the sentences again instead of copying vectors it cannot trust.
        """
        dimension = self.manifest.multilingual_dimension if name.startswith("multilingual") else self.manifest.dimension
        rows = self.manifest.sentences if name.endswith(".sentences") else self.manifest.passages
        try:
            vectors = np.load(self.folder / f"{name}.npy", mmap_mode="r")
        except (OSError, ValueError):
            return None
        if vectors.dtype != np.float32 or vectors.shape != (rows, dimension):
            return None
        return vectors

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
        """Close SQLite and let builds remove this version (also done when the object is collected)."""
        if hasattr(self, "_db"):  # not yet there when opening failed early
            self._db.close()
        self._release_version()


def _hold_version(folder: Path) -> int | None:
    """Take a shared lock on a version's readers.lock, so no build removes it; returns the handle."""
    path = folder / READERS_LOCK
    try:
        # Created when missing: versions written before readers took locks have none.
        handle = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    except FileNotFoundError:
        raise IndexCorruptError(
            f"The index version {folder} is missing. Rebuild with `verbatim index build`."
        ) from None
    except OSError:
        try:
            handle = os.open(path, os.O_RDONLY)
        except OSError:
            return None  # a read-only index folder without a lock file: no build can remove it either
    # Waits only while a build is renaming this version away, which takes a moment.
    fcntl.flock(handle, fcntl.LOCK_SH)
    return handle


def _nothing() -> None:
    pass
