"""The on-disk index: versions made of immutable segments, and a CURRENT file naming the one in use.

A version (`versions/<name>/`) is small: `store.sqlite` holds its manifest and the list of segments
it is made of, in order, each with the documents of that segment it no longer serves (tombstones: a
document changed or removed since). The articles themselves, their passages, sentences, vectors and
BM25 postings live in segments (`segments/<name>/`, index/store/segments.py), written once and shared
by every version that names them. A full build writes one segment; adding articles writes one more
segment and a new version naming the old segments plus the new one, so it costs what the new
articles cost, whatever the size of the index. Small segments are merged (`merge_plan`).

Segments and versions are written under a temporary name, fsynced, renamed into place (and the
rename fsynced), then CURRENT is replaced atomically, so a reader never sees a half-written index,
even after a power cut.

A reader holds a shared lock on its version's `readers.lock` from open to close; a build removes an
old version only when it can take that lock exclusively, so no version disappears under a reader,
and removes a segment only when no remaining version names it.
"""

from __future__ import annotations

import fcntl
import hashlib
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

import numpy as np

from index.errors import (
    IndexCorruptError,
    IndexFormatError,
    IndexMissingError,
    ReindexInProgressError,
)
from index.sources.corpus import Article
from index.sources.passages import Span
from index.store.interface import IndexVersion, Ranking, RowFilter, Space
from index.store.segments import (
    SEGMENTS_DIR,
    DocumentInfo,
    Lexicon,
    PassageRecord,
    Segment,
    SegmentContent,
    SegmentedVectors,
    SentenceRecord,
    StackedRows,
    fsync_path,
    fsync_tree,
    new_name,
    segment_folders,
    top_rows,
    write_segment,
)
from index.store.vectors import VectorIndexPolicy, describe_vector_index

# DocumentInfo, PassageRecord and SentenceRecord live in segments.py; readers import them from here too.
__all__ = ["DocumentInfo", "PassageRecord", "SentenceRecord"]

INDEX_FORMAT = 3  # 2: sentences and their vectors are stored; 3: a version is a list of segments
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
CREATE TABLE segments (position INTEGER PRIMARY KEY, name TEXT NOT NULL, hidden TEXT NOT NULL);
"""
# More segments than this and the smallest neighbours are merged as part of the next build.
MAX_SEGMENTS = 8


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
    segments: int = 1
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
class IndexContent:
    """A whole new version: its manifest and the one segment that holds everything."""

    manifest: Manifest
    segment: SegmentContent


def fingerprint(articles: Sequence[Article]) -> str:
    return fingerprint_of({a.doc_id: a.content_hash for a in articles})


def fingerprint_of(hashes: dict[str, str]) -> str:
    """`fingerprint` of articles with these ids and content hashes."""
    return refingerprint(f"{0:064x}", removed={}, added=hashes)


def refingerprint(previous: str, *, removed: dict[str, str], added: dict[str, str]) -> str:
    """The fingerprint of a corpus after removing and adding documents (id → content hash), from the
    one before: the sum of each document's digest modulo 2^256, so a change costs what it changes."""
    total = int(previous, 16)
    for sign, documents in ((-1, removed), (1, added)):
        for doc_id, content_hash in documents.items():
            total += sign * int.from_bytes(hashlib.sha256(f"{doc_id}\0{content_hash}".encode()).digest(), "big")
    return f"{total % 2**256:064x}"


@dataclass(frozen=True)
class SegmentRef:
    """A segment as a version uses it: its name, and which of its documents the version hides."""

    name: str
    hidden: frozenset[str] = frozenset()


def write_version(root: Path, content: IndexContent, policy: VectorIndexPolicy | None = None) -> Path:
    """Write `content` as one new segment and a version made of it alone, and make that current."""
    name, dense = write_segment(root, content.segment, policy)
    manifest = replace(content.manifest, vector_index=describe_vector_index(dense), segments=1)
    return commit_version(root, manifest, [SegmentRef(name)])


def commit_version(root: Path, manifest: Manifest, segments: Sequence[SegmentRef]) -> Path:
    """Write a version naming `segments` (already written and durable) and make it current."""
    versions = root / VERSIONS_DIR
    if not versions.is_dir():
        versions.mkdir(parents=True, exist_ok=True)
        _fsync(root)  # the versions folder itself must survive a crash before CURRENT can name into it
    # Microseconds first, so that names sort in the order versions were made (old ones are removed
    # by that order), even for builds within one second.
    version_id = new_name()
    staging = versions / f"{STAGING_PREFIX}{version_id}"
    staging.mkdir()
    try:
        _write_sqlite(staging / "store.sqlite", replace(manifest, segments=len(segments)), segments)
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


def _write_sqlite(path: Path, manifest: Manifest, segments: Sequence[SegmentRef]) -> None:
    connection = sqlite3.connect(path)
    try:
        connection.executescript(_SCHEMA)
        connection.executemany(
            "INSERT INTO manifest VALUES (?, ?)",
            [(key, json.dumps(value)) for key, value in asdict(manifest).items()],
        )
        connection.executemany(
            "INSERT INTO segments VALUES (?, ?, ?)",
            [(position, ref.name, json.dumps(sorted(ref.hidden))) for position, ref in enumerate(segments)],
        )
        connection.commit()
    finally:
        connection.close()


def read_segment_refs(version: Path) -> list[SegmentRef]:
    """The segments a version is made of, in order (sqlite3.Error when its store cannot be read)."""
    connection = sqlite3.connect(f"file:{version / 'store.sqlite'}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT name, hidden FROM segments ORDER BY position").fetchall()
    finally:
        connection.close()
    refs = []
    for name, hidden in rows:
        if not isinstance(name, str) or not VERSION_NAME.fullmatch(name):
            raise IndexCorruptError(f"{version} names {name!r}, which is not a segment name.")
        refs.append(SegmentRef(name, frozenset(json.loads(hidden))))
    return refs


_fsync = fsync_path
_fsync_tree = fsync_tree


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
    segments = root / SEGMENTS_DIR
    leftovers = [*root.glob(f".{CURRENT_FILE}.*"), *(versions.glob(f"{STAGING_PREFIX}*") if versions.is_dir() else []),
                 *(segments.glob(f"{STAGING_PREFIX}*") if segments.is_dir() else [])]
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
    _remove_unnamed_segments(root)


def _remove_unnamed_segments(root: Path) -> None:
    """Remove segments no remaining version names: merged away, or written by a killed build.

    A reader holds its version, and its version names its segments, so no segment a reader uses is
    removed. If any version cannot be read, which segments it names is unknown: none is removed.
    """
    named: set[str] = set()
    versions = root / VERSIONS_DIR
    for version in (versions.iterdir() if versions.is_dir() else []):
        if not version.is_dir() or version.name.startswith("."):
            continue
        try:
            named.update(ref.name for ref in read_segment_refs(version))
        except (sqlite3.Error, IndexCorruptError, ValueError, TypeError):
            return
    for folder in segment_folders(root):
        if folder.name not in named:
            doomed = folder.with_name(f"{STAGING_PREFIX}removing-{folder.name}")
            try:
                os.replace(folder, doomed)
            except OSError:
                continue
            _remove(doomed)


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


class StoredIndex(IndexVersion):
    """A loaded version: its segments searched as one index, rows numbered across them in order.

    Vectors and BM25 postings are memory-mapped; texts are read from the segments' SQLite on demand.
    `documents` holds the documents the version serves (not those its tombstones hide), with rows in
    the version's numbering. `searchable=False` opens only SQLite: what builds, status and eval read,
    without loading search indexes that may be gigabytes.
    """

    dense: SegmentedVectors | None = None
    multilingual: SegmentedVectors | None = None
    lexicon: Lexicon | None = None
    dense_sentences: StackedRows | None = None  # row i is sentence row i
    multilingual_sentences: StackedRows | None = None
    titles: Lexicon | None = None  # BM25 over the titles of documents with passages
    title_of_row: np.ndarray | None = None  # each passage row's title row (hidden ones score nothing)

    def __init__(self, folder: Path, *, searchable: bool = True, policy: VectorIndexPolicy | None = None) -> None:
        """Open the version in `folder`; `policy` sets how deep approximate indexes search (else as built)."""
        self.folder = folder
        self.segments: list[Segment] = []
        handle = _hold_version(folder)
        # Also runs when the object is garbage collected: an engine that is replaced and dropped lets
        # its version go without anyone calling close().
        self._release_version = weakref.finalize(self, os.close, handle) if handle is not None else _nothing
        try:
            if not (folder / "store.sqlite").is_file():
                raise IndexCorruptError(f"{folder} is missing or has no store.sqlite.")
            with sqlite3.connect(f"file:{folder / 'store.sqlite'}?mode=ro", uri=True) as db:
                raw = dict(db.execute("SELECT key, value FROM manifest").fetchall())
            self.manifest = Manifest.from_stored({key: json.loads(value) for key, value in raw.items()})
            self.refs = read_segment_refs(folder)
            root = folder.parent.parent
            # Rows are numbered across segments, one after the other.
            self.passage_offsets: list[int] = []
            self.sentence_offsets: list[int] = []
            passages = sentences = 0
            for ref in self.refs:
                segment = Segment(root / SEGMENTS_DIR / ref.name, dimension=self.manifest.dimension,
                                  multilingual_dimension=self.manifest.multilingual_dimension,
                                  searchable=searchable, policy=policy, passage_offset=passages,
                                  sentence_offset=sentences)
                self.segments.append(segment)
                self.passage_offsets.append(passages)
                self.sentence_offsets.append(sentences)
                passages += segment.passage_count
                sentences += segment.sentence_count
            self.passage_count = passages  # rows, including those tombstones hide
            self.sentence_count = sentences
            self._documents: dict[str, DocumentInfo] | None = None
            self._segment_of: dict[str, int] = {}
            self._documents_lock = threading.Lock()  # worker threads may ask for the list at once
            if searchable:
                self._open_search()
        except IndexFormatError:
            self.close()
            raise
        except (IndexCorruptError, sqlite3.Error, RuntimeError, OSError, TypeError, ValueError, KeyError) as error:
            self.close()
            raise IndexCorruptError(
                f"The index in {folder} could not be read ({error}). Rebuild with `verbatim index build`."
            ) from error

    @property
    def documents(self) -> dict[str, DocumentInfo]:
        """The documents the version serves, in row order (read on first use: an addition does not)."""
        with self._documents_lock:
            if self._documents is None:
                documents: dict[str, DocumentInfo] = {}
                for number, (segment, ref) in enumerate(zip(self.segments, self.refs, strict=True)):
                    for doc_id, info in segment.documents.items():
                        if doc_id not in ref.hidden:
                            documents[doc_id] = info
                            self._segment_of[doc_id] = number
                self._documents = documents
            return self._documents

    def locate(self, doc_id: str) -> tuple[int, DocumentInfo] | None:
        """The segment serving `doc_id` and its document, found by key (newest segment first)."""
        if self._documents is not None:
            info = self._documents.get(doc_id)
            return (self._segment_of[doc_id], info) if info is not None else None
        for number in range(len(self.segments) - 1, -1, -1):
            if doc_id in self.refs[number].hidden:
                continue
            info = self.segments[number].document(doc_id)
            if info is not None:
                return number, info
        return None

    def content_hashes(self) -> dict[str, str]:
        """Each served document's content hash, by id."""
        hashes: dict[str, str] = {}
        for segment, ref in zip(self.segments, self.refs, strict=True):
            hashes.update((d, h) for d, h in segment.content_hashes().items() if d not in ref.hidden)
        return hashes

    def lookup(self, doc_id: str) -> DocumentInfo | None:
        """A served document, without reading every document of the index."""
        found = self.locate(doc_id)
        return found[1] if found is not None else None

    def serving_segment(self, doc_id: str) -> int | None:
        found = self.locate(doc_id)
        return found[0] if found is not None else None

    def hidden_rows(self, number: int) -> np.ndarray:
        """The rows of segment `number` (its own numbering) that the version's tombstones hide."""
        segment = self.segments[number]
        rows = [np.arange(info.first_row - segment.passage_offset,
                          info.first_row - segment.passage_offset + info.passage_count)
                for doc_id in self.refs[number].hidden if (info := segment.document(doc_id)) is not None]
        return np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)

    def _open_search(self) -> None:
        hidden = [self.hidden_rows(number) for number in range(len(self.segments))]
        live = np.ones(self.passage_count, dtype=bool)
        for offset, rows in zip(self.passage_offsets, hidden, strict=True):
            live[rows + offset] = False
        self.live_rows = live
        self.dense = SegmentedVectors([s.dense for s in self.segments], self.passage_offsets, hidden)  # type: ignore[misc]
        if self.manifest.multilingual_model is not None:
            self.multilingual = SegmentedVectors([s.multilingual for s in self.segments],  # type: ignore[misc]
                                                 self.passage_offsets, hidden)
            self.multilingual_sentences = StackedRows(
                [s.multilingual_sentences for s in self.segments], self.sentence_offsets,  # type: ignore[misc]
                self.manifest.multilingual_dimension or 0)
        self.dense_sentences = StackedRows([s.dense_sentences for s in self.segments],  # type: ignore[misc]
                                           self.sentence_offsets, self.manifest.dimension)
        self.lexicon = Lexicon([s.postings for s in self.segments], self.passage_offsets, live)  # type: ignore[misc]
        self._open_titles()

    def _open_titles(self) -> None:
        """Title BM25 over the version's titles, with its own statistics, and each row's title."""
        offsets, total = [], 0
        for segment in self.segments:
            offsets.append(total)
            total += len(segment.title_passage_counts) if segment.title_passage_counts is not None else 0
        live = np.ones(total, dtype=bool)
        title_of_row = np.empty(self.passage_count, dtype=np.int64)
        for number, (segment, offset) in enumerate(zip(self.segments, offsets, strict=True)):
            counts = segment.title_passage_counts
            if counts is None:
                raise IndexCorruptError(f"{segment.folder} was opened without its titles.")
            start = self.passage_offsets[number]
            title_of_row[start:start + segment.passage_count] = np.repeat(np.arange(len(counts)) + offset, counts)
            for doc_id in self.refs[number].hidden:
                info = segment.document(doc_id)
                if info is not None and info.passage_count:
                    live[title_of_row[info.first_row]] = False
        self.titles = Lexicon([s.titles for s in self.segments], offsets, live)  # type: ignore[misc]
        self.title_of_row = title_of_row

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

    def segment_of(self, doc_id: str) -> tuple[Segment, int, int]:
        """The segment holding a served document, with that segment's passage and sentence offsets."""
        number = self.serving_segment(doc_id)
        if number is None:
            raise KeyError(doc_id)
        return self.segments[number], self.passage_offsets[number], self.sentence_offsets[number]

    def passages(self, rows: Sequence[int]) -> dict[int, PassageRecord]:
        if not len(rows):
            return {}
        wanted = np.asarray(rows, dtype=np.int64)
        part_of = np.searchsorted(np.asarray(self.passage_offsets), wanted, side="right") - 1
        found: dict[int, PassageRecord] = {}
        for number in np.unique(part_of):
            if number < 0:
                continue
            offset, sentence_offset = self.passage_offsets[number], self.sentence_offsets[number]
            local = [int(r) - offset for r in wanted[part_of == number]]
            for r in self.segments[number].passages(local):
                found[r[0] + offset] = PassageRecord(
                    row=r[0] + offset, passage_id=r[1], doc_id=r[2], position=r[3], start=r[4], end=r[5], text=r[6],
                    sentences=tuple(Span(s, e) for s, e in json.loads(r[7])),
                    first_sentence_row=r[8] + sentence_offset,
                )
        return found

    def document_sentences(self, doc_id: str) -> list[SentenceRecord]:
        found = self.locate(doc_id)
        if found is None:
            raise KeyError(doc_id)
        number, info = found
        return self.segments[number].sentences(info.first_sentence_row - self.sentence_offsets[number],
                                               info.sentence_count)

    def article_text(self, doc_id: str) -> str:
        return self.segment_of(doc_id)[0].article_text(doc_id)

    # --- Search (the `IndexVersion` interface, index/store/interface.py) ---------------------------

    @property
    def version(self) -> str:
        return self.folder.name

    def latest_version(self) -> str | None:
        try:
            return current_name(self.folder.parent.parent)
        except (IndexMissingError, IndexCorruptError):
            return None

    @property
    def location(self) -> str:
        return str(self.folder)

    def has_space(self, space: Space) -> bool:
        return self._space(space) is not None

    def _space(self, space: Space) -> SegmentedVectors | None:
        if self.dense is None:
            raise ValueError(f"The index in {self.folder} was opened with searchable=False; "
                             "open it searchable to search it.")
        return self.dense if space == "dense" else self.multilingual

    def nearest(self, space: Space, vector: np.ndarray, k: int, rows: RowFilter = None) -> Ranking:
        index = self._space(space)
        if index is None or k <= 0:
            return []
        return index.search(vector, min(k, index.ntotal), rows)

    def passage_vectors(self, space: Space, rows: np.ndarray) -> np.ndarray | None:
        index = self._space(space)
        if index is None:
            return None
        try:
            return index.reconstruct_batch(np.asarray(rows, dtype=np.int64))
        except RuntimeError:  # an index type that does not keep its vectors
            return None

    def sentence_vectors(self, space: Space) -> StackedRows | None:
        return self.dense_sentences if space == "dense" else self.multilingual_sentences

    def document_frequency(self, term: str) -> int:
        return self._searchable_lexicon().document_frequency(term)

    def idf(self, frequency: int) -> float:
        return self._searchable_lexicon().idf(frequency)

    def lexical(self, terms: Sequence[str], k: int, rows: RowFilter = None, title_weight: float = 0.0) -> Ranking:
        scores = self._searchable_lexicon().scores(terms, self.passage_count)
        if title_weight > 0 and self.titles is not None and self.title_of_row is not None:
            # Titles name what a whole article is about; their matches count for every passage of it.
            by_title = self.titles.scores(terms, int(self.title_of_row.max(initial=-1)) + 1)
            if by_title.any():
                scores = scores + title_weight * by_title[self.title_of_row]
        if rows is not None:
            mask = np.zeros_like(scores)
            if isinstance(rows, tuple):
                mask[rows[0]:rows[1]] = 1
            else:
                mask[rows] = 1
            scores = scores * mask
        return top_rows(scores, k)

    def _searchable_lexicon(self) -> Lexicon:
        if self.lexicon is None:
            raise ValueError(f"The index in {self.folder} was opened with searchable=False; "
                             "open it searchable to search it.")
        return self.lexicon

    def vectors_intact(self) -> bool:
        """Whether every segment's raw sentence vectors can be read and fit their segment."""
        names = ["dense.sentences"] + (["multilingual.sentences"] if self.manifest.multilingual_model else [])
        return all(segment.stored_vectors(name) is not None for segment in self.segments for name in names)

    def close(self) -> None:
        """Close SQLite and let builds remove this version (also done when the object is collected)."""
        for segment in self.segments:
            segment.close()
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
