"""Immutable segments: the parts an index version is made of.

A segment is a folder under `segments/` holding some articles with everything search needs for
them: `store.sqlite` (documents, passages, sentences; rows counted from 0 within the segment), the
FAISS indexes and raw vectors of passages and sentences, and `lexicon/` (BM25 postings: each term's
passages and counts, and each passage's length). It is written once, under a temporary name,
fsynced and renamed into place, and never changed after. A version (index/store/files.py) names its
segments in order and, for each, the documents it no longer serves (tombstones), so adding an
article writes one small segment and a small version, whatever the size of the rest.

Across a version's segments, passage and sentence rows are numbered one after the other: a row of
segment i is `offset[i] + its row in the segment`. BM25 is scored with statistics of the whole
version (passage count, document frequencies and mean length over the passages it serves), so its
scores are those of a single index holding the same passages.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.errors import IndexCorruptError
from index.sources.corpus import Article
from index.sources.passages import Passage, Span
from index.store.vectors import (
    VectorIndex,
    VectorIndexPolicy,
    build_vector_index,
    load_vector_index,
    save_vector_index,
    selecting,
)

SEGMENTS_DIR = "segments"
STAGING_PREFIX = ".tmp-"
LEXICON_DIR = "lexicon"
TITLES_DIR = "titles"  # BM25 postings of titles, one row per document with passages, in row order
# BM25 as bm25s's default ("lucene") scores it, which the index used before segments.
BM25_K1 = 1.5
BM25_B = 0.75
# Rows fetched past k: FAISS keeps whichever of the rows tied at the cut-off (equal vectors: one text
# in two articles) its heap ends with; with a few more, the earlier row wins there, as in Postgres.
NEAREST_TIE_ROOM = 8

_SEGMENT_SCHEMA = """
CREATE TABLE segment (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT, url TEXT, published TEXT,
    author TEXT, lang TEXT, origin TEXT, content_hash TEXT NOT NULL, text TEXT NOT NULL,
    first_row INTEGER NOT NULL, passage_count INTEGER NOT NULL,
    first_sentence_row INTEGER NOT NULL, sentence_count INTEGER NOT NULL, opening TEXT NOT NULL
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


def opening_lines(text: str, limit: int = 300) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip() + "…"


# --- BM25 postings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Postings:
    """A segment's BM25 statistics: for term i, passages `rows[indptr[i]:indptr[i+1]]` (ascending)
    hold it `counts[...]` times; `lengths[row]` is a passage's number of terms."""

    terms: list[str]
    indptr: np.ndarray  # int64, len(terms) + 1
    rows: np.ndarray  # int32
    counts: np.ndarray  # float32
    lengths: np.ndarray  # float32, one per passage

    @classmethod
    def from_terms(cls, terms_per_passage: Sequence[list[str]]) -> Postings:
        vocabulary: dict[str, int] = {}
        term_ids: list[int] = []
        rows: list[int] = []
        counts: list[int] = []
        lengths = np.zeros(len(terms_per_passage), dtype=np.float32)
        for row, terms in enumerate(terms_per_passage):
            # An empty token lets a passage with no content words exist, as bm25s indexed it.
            terms = terms or [""]
            lengths[row] = len(terms)
            for term, count in Counter(terms).items():
                term_ids.append(vocabulary.setdefault(term, len(vocabulary)))
                rows.append(row)
                counts.append(count)
        return cls.from_triples(list(vocabulary), np.asarray(term_ids, dtype=np.int64),
                                np.asarray(rows, dtype=np.int32), np.asarray(counts, dtype=np.float32), lengths)

    @classmethod
    def from_triples(cls, terms: list[str], term_ids: np.ndarray, rows: np.ndarray, counts: np.ndarray,
                     lengths: np.ndarray) -> Postings:
        order = np.lexsort((rows, term_ids))
        indptr = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_ids, minlength=len(terms)), out=indptr[1:])
        return cls(terms, indptr, np.ascontiguousarray(rows[order], dtype=np.int32),
                   np.ascontiguousarray(counts[order], dtype=np.float32), lengths.astype(np.float32))

    def save(self, folder: Path) -> None:
        folder.mkdir()
        (folder / "terms.json").write_text(json.dumps(self.terms, ensure_ascii=False), encoding="utf-8")
        for name in ("indptr", "rows", "counts", "lengths"):
            np.save(folder / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> Postings:
        terms = json.loads((folder / "terms.json").read_text(encoding="utf-8"))
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r")
                  for name in ("indptr", "rows", "counts", "lengths")}
        if not isinstance(terms, list) or len(arrays["indptr"]) != len(terms) + 1 \
                or len(arrays["rows"]) != len(arrays["counts"]) or int(arrays["indptr"][-1]) != len(arrays["rows"]):
            raise IndexCorruptError(f"{folder} does not hold consistent BM25 postings")
        return cls(terms, **arrays)

    def term_rows(self) -> np.ndarray:
        """The term id of every posting."""
        return np.repeat(np.arange(len(self.terms), dtype=np.int64), np.diff(self.indptr))


# --- Writing a segment --------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentContent:
    """What a segment holds, ready to be written. Rows are the segment's own."""

    articles: Sequence[Article]
    passages: Sequence[Passage]  # grouped by document, in the order of `articles`
    sentences: Sequence[SentenceRecord]  # grouped by document, in the order of `articles`
    dense: np.ndarray  # one row per passage
    multilingual: np.ndarray | None
    dense_sentences: np.ndarray  # one row per sentence
    multilingual_sentences: np.ndarray | None
    postings: Postings


def new_name() -> str:
    """A version's or segment's name: UTC time to the microsecond (names sort in the order they were
    made), then 6 random hex digits."""
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:6]


def write_segment(root: Path, content: SegmentContent,
                  policy: VectorIndexPolicy | None = None) -> tuple[str, VectorIndex]:
    """Write `content` as a new segment under `root/segments`, durably. Returns its name and its dense
    index. No version names it yet: until one does, the next build's clean-up removes it."""
    segments = root / SEGMENTS_DIR
    if not segments.is_dir():
        segments.mkdir(parents=True, exist_ok=True)
        fsync_path(root)
    name = new_name()
    staging = segments / f"{STAGING_PREFIX}{name}"
    staging.mkdir()
    try:
        _write_segment_sqlite(staging / "store.sqlite", content)
        dense = build_vector_index(content.dense, policy)
        save_vector_index(dense, staging / "dense.faiss")
        # The raw vectors too: a merge copies them instead of embedding again.
        np.save(staging / "dense.npy", np.ascontiguousarray(content.dense, dtype=np.float32))
        np.save(staging / "dense.sentences.npy", np.ascontiguousarray(content.dense_sentences, dtype=np.float32))
        if content.multilingual is not None:
            save_vector_index(build_vector_index(content.multilingual, policy), staging / "multilingual.faiss")
            np.save(staging / "multilingual.npy", np.ascontiguousarray(content.multilingual, dtype=np.float32))
        if content.multilingual_sentences is not None:
            np.save(staging / "multilingual.sentences.npy",
                    np.ascontiguousarray(content.multilingual_sentences, dtype=np.float32))
        content.postings.save(staging / LEXICON_DIR)
        _write_titles(staging / TITLES_DIR, content)
        fsync_tree(staging)
        os.replace(staging, segments / name)
        fsync_path(segments)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return name, dense


def _write_titles(folder: Path, content: SegmentContent) -> None:
    """Titles name what a whole article is about: their BM25 postings, analysed once, here, with each
    titled document's first passage row and passage count (to spread a title's score over them)."""
    from index.store.lexical import analyse

    first_rows: dict[str, int] = {}
    counts: dict[str, int] = {}
    for row, passage in enumerate(content.passages):
        first_rows.setdefault(passage.doc_id, row)
        counts[passage.doc_id] = counts.get(passage.doc_id, 0) + 1
    titled = sorted((a for a in content.articles if a.doc_id in first_rows), key=lambda a: first_rows[a.doc_id])
    Postings.from_terms([analyse(a.title) for a in titled]).save(folder)
    np.save(folder / "first_rows.npy", np.asarray([first_rows[a.doc_id] for a in titled], dtype=np.int64))
    np.save(folder / "passage_counts.npy", np.asarray([counts[a.doc_id] for a in titled], dtype=np.int64))


def _write_segment_sqlite(path: Path, content: SegmentContent) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.executescript(_SEGMENT_SCHEMA)
        connection.executemany("INSERT INTO segment VALUES (?, ?)", [
            ("documents", len(content.articles)), ("passages", len(content.passages)),
            ("sentences", len(content.sentences)),
        ])
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
            "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (a.doc_id, a.title, a.source, a.url, a.published, a.author, a.lang, a.origin,
                 a.content_hash, a.text, first_rows.get(a.doc_id, -1), counts.get(a.doc_id, 0),
                 first_sentence_rows.get(a.doc_id, -1), sentence_counts.get(a.doc_id, 0), opening_lines(a.text))
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
            "INSERT INTO sentences VALUES (?,?,?,?,?)",
            [(row, s.doc_id, s.start, s.end, s.tokens) for row, s in enumerate(content.sentences)],
        )
        connection.commit()
    finally:
        connection.close()


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    for path in [*folder.rglob("*"), folder]:
        fsync_path(path)


# --- Reading a segment --------------------------------------------------------------------------


class Segment:
    """One segment, opened read-only. Rows are its own, plus the offsets it was opened with (a
    version's numbering). Its documents are read when first asked for: an addition looks up only
    the few it replaces, and never reads the whole table."""

    dense: VectorIndex | None = None
    multilingual: VectorIndex | None = None
    dense_sentences: np.ndarray | None = None
    multilingual_sentences: np.ndarray | None = None
    postings: Postings | None = None
    titles: Postings | None = None
    title_first_rows: np.ndarray | None = None  # the segment's own passage rows
    title_passage_counts: np.ndarray | None = None

    def __init__(self, folder: Path, *, dimension: int, multilingual_dimension: int | None, searchable: bool,
                 policy: VectorIndexPolicy | None = None, passage_offset: int = 0, sentence_offset: int = 0) -> None:
        self.folder = folder
        self.name = folder.name
        self.passage_offset = passage_offset
        self.sentence_offset = sentence_offset
        self._documents: dict[str, DocumentInfo] | None = None
        if not (folder / "store.sqlite").is_file():
            raise IndexCorruptError(f"The index segment {folder} is missing or has no store.sqlite.")
        self._db = sqlite3.connect(f"file:{folder / 'store.sqlite'}?mode=ro", uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        try:
            sizes = dict(self._db.execute("SELECT key, value FROM segment").fetchall())
            self.passage_count = int(sizes["passages"])
            self.sentence_count = int(sizes["sentences"])
            self.dimension = dimension
            self.multilingual_dimension = multilingual_dimension
            if searchable:
                self.dense = self._load_index("dense", dimension, policy)
                if multilingual_dimension is not None:
                    self.multilingual = self._load_index("multilingual", multilingual_dimension, policy)
                self.dense_sentences = self.stored_vectors("dense.sentences")
                if self.dense_sentences is None:
                    raise OSError(f"{folder.name}/dense.sentences.npy is missing or does not match its segment")
                if multilingual_dimension is not None:
                    self.multilingual_sentences = self.stored_vectors("multilingual.sentences")
                    if self.multilingual_sentences is None:
                        raise OSError(f"{folder.name}/multilingual.sentences.npy is missing or does not match")
                self.postings = Postings.load(folder / LEXICON_DIR)
                if len(self.postings.lengths) != self.passage_count:
                    raise IndexCorruptError(f"{folder.name}/{LEXICON_DIR} does not match its segment")
                self.titles = Postings.load(folder / TITLES_DIR)
                self.title_first_rows = np.load(folder / TITLES_DIR / "first_rows.npy")
                self.title_passage_counts = np.load(folder / TITLES_DIR / "passage_counts.npy")
                if not (len(self.titles.lengths) == len(self.title_first_rows) == len(self.title_passage_counts)
                        and int(self.title_passage_counts.sum()) == self.passage_count):
                    raise IndexCorruptError(f"{folder.name}/{TITLES_DIR} does not match its segment")
        except BaseException:
            self.close()
            raise

    def _load_index(self, name: str, dimension: int, policy: VectorIndexPolicy | None) -> VectorIndex:
        index = load_vector_index(self.folder / f"{name}.faiss", policy=policy)
        if index.ntotal != self.passage_count or index.d != dimension:
            raise IndexCorruptError(
                f"{name}.faiss holds {index.ntotal} vectors of dimension {index.d}, but the segment has "
                f"{self.passage_count} passages of dimension {dimension}"
            )
        return index

    _DOCUMENT_COLUMNS = ("doc_id, title, source, url, published, author, lang, content_hash, passage_count, "
                         "first_row, opening, first_sentence_row, sentence_count")

    def _info(self, r: tuple) -> DocumentInfo:
        return DocumentInfo(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9] + self.passage_offset,
                            r[10], r[11] + self.sentence_offset, r[12])

    @property
    def documents(self) -> dict[str, DocumentInfo]:
        """Every document of the segment, in row order (read once, on first use)."""
        if self._documents is None:
            with self._lock:
                # In rowid order, which is row order: no sort, so SQLite writes no temporary file.
                rows = self._db.execute(f"SELECT {self._DOCUMENT_COLUMNS} FROM documents ORDER BY rowid").fetchall()  # noqa: S608
            self._documents = {r[0]: self._info(r) for r in rows}
        return self._documents

    def document(self, doc_id: str) -> DocumentInfo | None:
        """One document, by its primary key, without reading the others."""
        if self._documents is not None:
            return self._documents.get(doc_id)
        try:
            doc_id.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate someone typed: no stored id has one, and SQLite refuses it
            return None
        with self._lock:
            row = self._db.execute(f"SELECT {self._DOCUMENT_COLUMNS} FROM documents WHERE doc_id = ?",  # noqa: S608
                                   (doc_id,)).fetchone()
        return self._info(row) if row is not None else None

    def content_hashes(self) -> dict[str, str]:
        """Every document's content hash, by id: what an update compares, without whole documents."""
        if self._documents is not None:
            return {doc_id: info.content_hash for doc_id, info in self._documents.items()}
        with self._lock:
            return dict(self._db.execute("SELECT doc_id, content_hash FROM documents").fetchall())

    def stored_vectors(self, name: str) -> np.ndarray | None:
        """Raw vectors, memory-mapped: `dense` / `multilingual` (one row per passage) or
        `dense.sentences` / `multilingual.sentences` (one per sentence); None when missing, unreadable
        or not of the segment's shape."""
        dimension = self.multilingual_dimension if name.startswith("multilingual") else self.dimension
        rows = self.sentence_count if name.endswith(".sentences") else self.passage_count
        try:
            vectors = np.load(self.folder / f"{name}.npy", mmap_mode="r")
        except (OSError, ValueError):
            return None
        if vectors.dtype != np.float32 or vectors.shape != (rows, dimension):
            return None
        return vectors

    def passages(self, rows: Sequence[int]) -> list[tuple]:
        marks = ",".join("?" * len(rows))
        with self._lock:
            return self._db.execute(  # only "?" marks are formatted in: the rows are bound parameters
                f'SELECT row, passage_id, doc_id, position, start, "end", text, sentences, first_sentence_row '  # noqa: S608
                f"FROM passages WHERE row IN ({marks})",
                [int(r) for r in rows],
            ).fetchall()

    def sentences(self, first: int, count: int) -> list[SentenceRecord]:
        with self._lock:
            found = self._db.execute(
                'SELECT doc_id, start, "end", tokens FROM sentences WHERE row >= ? AND row < ? ORDER BY row',
                (first, first + count),
            ).fetchall()
        return [SentenceRecord(*r) for r in found]

    def article_text(self, doc_id: str) -> str:
        with self._lock:
            row = self._db.execute("SELECT text FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        if row is None:
            raise KeyError(doc_id)
        return row[0]

    def articles(self, doc_ids: Sequence[str]) -> list[Article]:
        """Whole articles, as they were indexed (a merge copies them)."""
        wanted = set(doc_ids)
        with self._lock:
            found = self._db.execute(
                "SELECT doc_id, title, text, source, url, published, author, lang, origin FROM documents "
                "ORDER BY rowid").fetchall()
        return [Article(doc_id=r[0], title=r[1], text=r[2], source=r[3], url=r[4], published=r[5], author=r[6],
                        lang=r[7], origin=r[8] or "") for r in found if r[0] in wanted]

    def close(self) -> None:
        if hasattr(self, "_db"):
            self._db.close()


# --- A version's segments seen as one index ------------------------------------------------------


class SegmentedVectors:
    """One embedding space's passage indexes, searched as one: each segment's best, merged by score.

    Inner products of normalised vectors mean the same in every segment, so merging by score ranks as
    one index would. Rows a tombstone hides are fetched as spares and dropped.
    """

    def __init__(self, parts: Sequence[VectorIndex], offsets: Sequence[int], hidden: Sequence[np.ndarray]) -> None:
        self.parts = list(parts)
        self.offsets = list(offsets)
        self.hidden = [set(map(int, h)) for h in hidden]
        self.ntotal = sum(p.ntotal for p in parts)
        self.d = parts[0].d if parts else 0

    def search(self, vector: np.ndarray, k: int,
               rows: tuple[int, int] | np.ndarray | None = None) -> list[tuple[int, float]]:
        """The `k` rows nearest `vector`, best first; `rows` admits only a range of rows (one document's)
        or only the rows listed (a server's chosen sources)."""
        import faiss

        query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        listed = np.asarray(rows, dtype=np.int64) if isinstance(rows, np.ndarray) else None
        found: list[tuple[int, float]] = []
        for part, offset, hidden in zip(self.parts, self.offsets, self.hidden, strict=True):
            if listed is not None:
                mine = listed[(listed >= offset) & (listed < offset + part.ntotal)] - offset
                if len(mine) == 0:
                    continue
                selector = faiss.IDSelectorBatch(mine)  # held here: the parameters do not keep it alive
                scores, ids = part.search(query, min(k + len(hidden) + NEAREST_TIE_ROOM, len(mine)),
                                          params=selecting(selector))
            elif rows is not None:
                low, high = rows[0] - offset, rows[1] - offset
                if high <= 0 or low >= part.ntotal:
                    continue
                params = selecting(faiss.IDSelectorRange(max(low, 0), min(high, part.ntotal)))
                scores, ids = part.search(query, min(k + NEAREST_TIE_ROOM, high - low), params=params)
            else:
                want = min(k + len(hidden) + NEAREST_TIE_ROOM, part.ntotal)
                if want <= 0:
                    continue
                scores, ids = part.search(query, want)
            found.extend((offset + int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True)
                         if i >= 0 and int(i) not in hidden)
        found.sort(key=lambda item: (-item[1], item[0]))  # ties (equal vectors): the earlier row first
        return found[:k]

    def reconstruct_batch(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.d), dtype=np.float32)
        part_of = np.searchsorted(np.asarray(self.offsets), rows, side="right") - 1
        for number in np.unique(part_of):
            chosen = part_of == number
            out[chosen] = self.parts[number].reconstruct_batch(rows[chosen] - self.offsets[number])
        return out


class StackedRows:
    """Several segments' row matrices (sentence vectors) read as one, rows numbered one after another."""

    def __init__(self, parts: Sequence[np.ndarray], offsets: Sequence[int], width: int) -> None:
        self.parts = list(parts)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.shape = (int(sum(len(p) for p in parts)), width)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, (int, np.integer)):
            return self[np.asarray([rows])][0]
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        part_of = np.searchsorted(self.offsets, rows, side="right") - 1
        for number in np.unique(part_of):
            chosen = part_of == number
            out[chosen] = self.parts[number][rows[chosen] - self.offsets[number]]
        return out


class Lexicon:
    """BM25 over every passage a version serves, from its segments' postings.

    Passage count, document frequencies and mean length are the version's own (tombstoned passages
    left out), so a passage scores as it would in one index built from the same articles.
    """

    def __init__(self, postings: Sequence[Postings], offsets: Sequence[int], live: np.ndarray) -> None:
        self._postings = list(postings)
        self._offsets = list(offsets)
        self._live = live
        self._vocabularies = [{term: i for i, term in enumerate(p.terms)} for p in postings]
        self._lengths = (np.concatenate([np.asarray(p.lengths) for p in postings]) if postings
                         else np.zeros(0, dtype=np.float32))
        self.passages = int(live.sum())
        self._mean_length = float(self._lengths[live].mean()) if self.passages else 1.0
        self._frequencies: dict[str, int] = {}
        self._lock = threading.Lock()

    def _term_postings(self, term: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """Where `term` occurs among the live passages: (rows, counts) per segment that has it."""
        found = []
        for postings, vocabulary, offset in zip(self._postings, self._vocabularies, self._offsets, strict=True):
            term_id = vocabulary.get(term)
            if term_id is None:
                continue
            start, end = int(postings.indptr[term_id]), int(postings.indptr[term_id + 1])
            rows = np.asarray(postings.rows[start:end], dtype=np.int64) + offset
            counts = np.asarray(postings.counts[start:end])
            keep = self._live[rows]
            if not keep.all():
                rows, counts = rows[keep], counts[keep]
            if len(rows):
                found.append((rows, counts))
        return found

    def document_frequency(self, term: str) -> int:
        with self._lock:
            known = self._frequencies.get(term)
        if known is None:
            known = sum(len(rows) for rows, _ in self._term_postings(term))
            with self._lock:
                if len(self._frequencies) > 200_000:  # a bounded memo: questions' and sentences' words
                    self._frequencies.clear()
                self._frequencies[term] = known
        return known

    def idf(self, frequency: int) -> float:
        n = max(self.passages, 1)
        return float(np.log(1 + (n - frequency + 0.5) / (frequency + 0.5)))

    def scores(self, terms: Sequence[str], size: int) -> np.ndarray:
        """Each row's BM25 score for `terms` (a term given twice counts twice, as bm25s counted it)."""
        scores = np.zeros(size, dtype=np.float32)
        k1, b = BM25_K1, BM25_B
        for term in terms:
            found = self._term_postings(term)
            if not found:
                continue
            idf = np.float32(self.idf(sum(len(rows) for rows, _ in found)))
            for rows, counts in found:
                lengths = self._lengths[rows]
                scores[rows] += idf * counts / (k1 * ((1 - b) + b * lengths / np.float32(self._mean_length)) + counts)
        return scores


def top_rows(scores: np.ndarray, count: int) -> list[tuple[int, float]]:
    """The `count` best-scoring rows with a score above zero, best first; ties go to the earlier row."""
    count = min(count, int(np.count_nonzero(scores > 0)))
    if count == 0:
        return []
    # argpartition picks any of the rows tied at the cut-off; every row tied with the last one kept
    # competes instead, so the earlier rows win there too (as Postgres's ORDER BY score, row does).
    last = scores[np.argpartition(-scores, count - 1)[count - 1]]
    top = np.flatnonzero(scores >= last)
    top = top[np.lexsort((top, -scores[top]))][:count]
    return [(int(row), float(scores[row])) for row in top]


def segment_folders(root: Path) -> list[Path]:
    folder = root / SEGMENTS_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
