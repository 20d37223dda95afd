"""The index in Postgres with pgvector: one store that many bot processes share (DATABASE_URL).

The same content as the files store (index/store/files.py), in tables:

- `verbatim_documents`, `verbatim_passages`, `verbatim_sentences`: every row carries the version
  that added it (`added_in`) and, once replaced or removed, the version that dropped it
  (`removed_in`). A version serves the rows with `added_in <= version < removed_in`, so a reader keeps
  answering from the version it opened while a writer adds the next one beside it.
- passage vectors in pgvector columns with HNSW indexes (inner product: the vectors are unit length),
  sentence vectors in plain pgvector columns read by row;
- BM25 in the database: `verbatim_postings` (term, passage row, count) and `verbatim_title_postings`,
  scored in SQL with the files store's formula and the version's own statistics, so a passage scores
  as it does there (docs/quality.md compares both stores, and Postgres full-text search);
- `verbatim_versions` (each version's manifest and BM25 statistics) and `verbatim_current` (one row:
  the version served). A writer adds a version's rows and switches `verbatim_current` in one
  transaction; every serving process reads that one row every few seconds (`latest_version`, polled
  by LiveEngine.follow) and loads a newer version when there is one.

Only one process writes at a time: a writer holds a Postgres advisory lock. Rows a version dropped
are deleted by a later write once that version has been replaced for a minute, so a process still
answering from it (it re-checks every few seconds) is not cut off mid-question.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import uuid
import weakref
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from index.errors import (
    IndexCorruptError,
    IndexFormatError,
    IndexMissingError,
    IndexUnavailableError,
    ReindexInProgressError,
)
from index.sources.corpus import Article
from index.sources.passages import Span
from index.store.files import INDEX_FORMAT, Manifest, fingerprint_of, refingerprint
from index.store.interface import IndexVersion, Ranking, RowFilter, Space
from index.store.lexical import analyse
from index.store.segments import (
    BM25_B,
    BM25_K1,
    NEAREST_TIE_ROOM,
    DocumentInfo,
    PassageRecord,
    SentenceRecord,
    opening_lines,
)

if TYPE_CHECKING:
    import psycopg

    from index.store.build import IndexedArticles

T = TypeVar("T")
WRITE_LOCK_KEY = 0x76657262  # "verb": the advisory lock a writer holds
# A dropped row outlives the version that dropped it by this long: readers re-check every few seconds.
KEEP_REPLACED_SECONDS = 60
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
HNSW_MAX_EF_SEARCH = 1000  # pgvector's limit

_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE verbatim_store (key TEXT PRIMARY KEY, value JSONB NOT NULL);
CREATE TABLE verbatim_versions (
    id BIGINT PRIMARY KEY, manifest JSONB NOT NULL, replaced_at TIMESTAMPTZ,
    passages BIGINT NOT NULL, total_length DOUBLE PRECISION NOT NULL,
    titles BIGINT NOT NULL, total_title_length DOUBLE PRECISION NOT NULL
);
CREATE TABLE verbatim_current (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton), version BIGINT NOT NULL
);
CREATE TABLE verbatim_documents (
    doc_id TEXT NOT NULL, added_in BIGINT NOT NULL, removed_in BIGINT,
    title TEXT NOT NULL, source TEXT, url TEXT, published TEXT, author TEXT, lang TEXT, origin TEXT,
    content_hash TEXT NOT NULL, text TEXT NOT NULL, opening TEXT NOT NULL,
    first_row BIGINT NOT NULL, passage_count INTEGER NOT NULL,
    first_sentence_row BIGINT NOT NULL, sentence_count INTEGER NOT NULL, title_length INTEGER NOT NULL,
    PRIMARY KEY (doc_id, added_in)
);
CREATE INDEX verbatim_documents_served ON verbatim_documents (doc_id) WHERE removed_in IS NULL;
CREATE TABLE verbatim_passages (
    row BIGINT PRIMARY KEY, passage_id TEXT NOT NULL, doc_id TEXT NOT NULL, added_in BIGINT NOT NULL,
    position INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL,
    sentences INTEGER[] NOT NULL, first_sentence_row BIGINT NOT NULL, length INTEGER NOT NULL,
    dense vector({dense}) NOT NULL, multilingual {multilingual_type}
);
CREATE TABLE verbatim_removed (row BIGINT PRIMARY KEY, removed_in BIGINT NOT NULL);
CREATE TABLE verbatim_sentences (
    row BIGINT PRIMARY KEY, doc_id TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    tokens INTEGER NOT NULL, dense vector({dense}) NOT NULL, multilingual {multilingual_type}
);
CREATE TABLE verbatim_postings (
    term TEXT NOT NULL, row BIGINT NOT NULL, count REAL NOT NULL, length REAL NOT NULL, added_in BIGINT NOT NULL,
    PRIMARY KEY (term, row) INCLUDE (count, length, added_in)  -- BM25 reads the index alone
);
CREATE INDEX verbatim_postings_row ON verbatim_postings (row);
CREATE TABLE verbatim_title_postings (term TEXT NOT NULL, doc_id TEXT NOT NULL, added_in BIGINT NOT NULL,
                                      count REAL NOT NULL, PRIMARY KEY (term, doc_id, added_in));
"""
_TABLES = ("verbatim_title_postings", "verbatim_postings", "verbatim_sentences", "verbatim_removed",
           "verbatim_passages", "verbatim_documents", "verbatim_current", "verbatim_versions", "verbatim_store")
# Rows never change once written (an UPDATE would copy a passage's vectors and add it to HNSW again):
# a document's row says when it was dropped; a passage's, postings' and sentences' drops are listed in
# verbatim_removed, a narrow table.
def _served_documents(alias: str = "") -> str:
    """The condition for rows of verbatim_documents (as `alias`, if given) that the version serves."""
    d = f"{alias}." if alias else ""
    return f"{d}added_in <= %(version)s AND ({d}removed_in IS NULL OR {d}removed_in > %(version)s)"


_SERVED = _served_documents()


def _served_rows(alias: str) -> str:
    """The condition for rows of `alias` (a table with `row` and `added_in`) that the version serves."""
    # NOT IN: Postgres hashes the (small) list of dropped rows once, where NOT EXISTS probed it once per
    # posting (BM25 at 1M passages: 737 ms a question against 1,051; docs/speed.md).
    return (f"{alias}.added_in <= %(version)s AND {alias}.row NOT IN "  # noqa: S608
            "(SELECT row FROM verbatim_removed WHERE removed_in <= %(version)s)")


def connect(url: str) -> psycopg.Connection:
    """A connection with pgvector's types registered (the extension must exist: `ensure_schema`)."""
    try:
        import psycopg
        from pgvector.psycopg import register_vector
    except ImportError as error:
        raise IndexUnavailableError(
            "DATABASE_URL is set, but the Postgres store's packages are not installed: "
            "`pip install -r requirements-postgres.lock`, or unset DATABASE_URL to keep the index in files."
        ) from error
    try:
        connection = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as error:
        raise IndexUnavailableError(
            f"Could not reach the index database at {redacted(url)} ({_scrubbed(error, url)}). "
            "Check DATABASE_URL and that Postgres is running.") from error
    try:
        register_vector(connection)
    except psycopg.ProgrammingError:
        pass  # no vector type yet: only `ensure_schema`'s connection, which creates it, gets here
    return connection


def redacted(url: str) -> str:
    """Where the database is, without its password, for messages, `index status` and `/healthz`."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 (unparsable, or psycopg missing: show nothing of it rather than a secret)
        return "the database in DATABASE_URL"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host, port, name = str(parts.get("host") or ""), parts.get("port"), parts.get("dbname") or ""
    if host.startswith("/"):  # a Unix socket folder
        return f"postgresql://{user}/{name}?host={host}"
    return f"postgresql://{user}{host}" + (f":{port}" if port else "") + f"/{name}"


def _scrubbed(error: Exception, url: str) -> str:
    """An error's text with the URL's password taken out (psycopg may quote the URL back)."""
    text = str(error).strip()
    secrets = {match.group(1) for match in re.finditer(r"://[^:/@]*:([^@]+)@", url)}
    secrets |= {match.group(1) for match in re.finditer(r"password=([^&\s]+)", url)}
    try:
        from psycopg.conninfo import conninfo_to_dict

        password = conninfo_to_dict(url).get("password")
        if password:
            secrets.add(str(password))
    except Exception:  # noqa: BLE001, S110 (an unparsable URL: the raw forms above are what it holds)
        pass
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class ConnectionPool:
    """A few connections shared by the threads answering questions (psycopg serialises each one)."""

    def __init__(self, url: str, size: int = 4) -> None:
        self.url = url
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False

    def run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """`work` on a pooled connection. A connection the server dropped (a restart, an idle timeout) is
        replaced and the work tried once more; a database still away raises IndexUnavailableError."""
        import psycopg

        for attempt in range(2):
            try:
                with self.connection() as connection:
                    return work(connection)
            except psycopg.errors.UndefinedTable as error:
                raise IndexUnavailableError(_replaced_message(self.url)) from error
            except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as error:
                # Waited past the reader timeouts: the tables are being rebuilt (other models), or the
                # server is overloaded.
                raise IndexUnavailableError(
                    f"The index database at {redacted(self.url)} is busy (being rebuilt?); ask again in a "
                    "moment.") from error
            except psycopg.OperationalError as error:
                # The idle connections died with the one that failed (a restart): all are replaced.
                self._drop_idle()
                if attempt == 1:
                    raise IndexUnavailableError(
                        f"The index database at {redacted(self.url)} stopped answering "
                        f"({_scrubbed(error, self.url)}); try again in a moment.") from error
        raise AssertionError("unreachable")

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        self._slots.acquire()
        try:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                connection = connect(self.url)
                # A question never waits long on a lock (a rebuild with other models holds them) or a
                # runaway query: it gets IndexUnavailableError instead, and the bot stays responsive.
                connection.execute("SELECT set_config('lock_timeout', '3s', false), "
                                   "set_config('statement_timeout', '60s', false)")
            healthy = False
            try:
                yield connection
                healthy = not connection.closed and connection.info.transaction_status == 0  # idle
            finally:
                if healthy and not self._closed:
                    self._idle.put(connection)
                else:
                    connection.close()
        finally:
            self._slots.release()

    def _drop_idle(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    def close(self) -> None:
        self._closed = True
        self._drop_idle()


def _replaced_message(url: str) -> str:
    return (f"The index version this process serves is gone from {redacted(url)} (replaced by a build with "
            "other models, or long ago). Restart this process with the settings the index was built with "
            "(`verbatim index status` shows them).")


# --- Reading ------------------------------------------------------------------------------------------


def _has_tables(connection: psycopg.Connection) -> bool:
    """Whether the database holds Verbatim's tables (asked, not tried: an error would end a transaction)."""
    row = connection.execute("SELECT to_regclass('verbatim_current') IS NOT NULL "
                             "AND to_regclass('verbatim_store') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _current(connection: psycopg.Connection) -> tuple[int, str] | None:
    """The version served and the id of the tables holding it (new tables, new id), or None."""
    if not _has_tables(connection):
        return None
    row = connection.execute("SELECT c.version, s.value #>> '{}' FROM verbatim_current c "
                             "JOIN verbatim_store s ON s.key = 'tables'").fetchone()
    return (int(row[0]), str(row[1])) if row else None


@dataclass(frozen=True)
class VersionStatistics:
    """What BM25 needs of a whole version: its passages and their total length, and the same of titles."""

    passages: int
    total_length: float
    titles: int
    total_title_length: float

    @property
    def mean_length(self) -> float:
        return self.total_length / self.passages if self.passages else 1.0

    @property
    def mean_title_length(self) -> float:
        return self.total_title_length / self.titles if self.titles else 1.0


class PostgresIndex(IndexVersion):
    """One version of the index in Postgres (`IndexVersion`, index/store/interface.py)."""

    def __init__(self, url: str, *, ef_search: int = 100, pool_size: int = 4) -> None:
        """Open the version served now. `ef_search`: how many candidates HNSW weighs (more: better recall)."""
        self.url = url
        self._ef_search = ef_search
        self._pool = ConnectionPool(url, pool_size)
        # Also when the object is dropped unclosed: an engine replaced by a newer version lets its connections go.
        self._release = weakref.finalize(self, self._pool.close)
        self._replaced = False  # set when the tables this version lives in are dropped (a rebuild with other models)

        def read(connection: psycopg.Connection) -> tuple[int, str, tuple, int]:
            # One snapshot: a write committing meanwhile cannot pair one version's number with another's rows.
            with connection.transaction():
                connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                _check_format(connection)
                current = _current(connection)
                if current is None:
                    raise IndexMissingError(f"the Postgres database at {redacted(url)}")
                version, tables = current
                row = connection.execute(
                    "SELECT manifest, passages, total_length, titles, total_title_length FROM verbatim_versions "
                    "WHERE id = %s", (version,)).fetchone()
                if row is None:
                    raise IndexCorruptError(f"The database at {redacted(url)} serves version {version}, which it "
                                            "does not hold. Rebuild with `verbatim index build`.")
                top = connection.execute("SELECT COALESCE(max(first_row + passage_count), 0) FROM "  # noqa: S608
                                         f"verbatim_documents WHERE {_SERVED}", {"version": version}).fetchone()
                return version, tables, row, int(top[0]) if top else 0

        self._version, self._tables, row, self.passage_count = self._pool.run(read)
        self.manifest = Manifest.from_stored(row[0])
        self.statistics = VersionStatistics(int(row[1]), float(row[2]), int(row[3]), float(row[4]))
        self._documents: dict[str, DocumentInfo] | None = None
        self._frequencies: dict[str, int] = {}
        self._title_frequencies_memo: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        return str(self._version)

    def latest_version(self) -> str | None:
        def read(connection: psycopg.Connection) -> tuple[tuple[int, str] | None, bool]:
            current = _current(connection)
            kept = connection.execute("SELECT EXISTS (SELECT 1 FROM verbatim_versions WHERE id = %s)",
                                      (self._version,)).fetchone() if current else None
            return current, bool(kept and kept[0])

        current, kept = self._pool.run(read)
        if current is None or current[1] != self._tables or not kept:
            # Other tables under the same names (a rebuild with other models), or this version's rows
            # deleted (a process that could not switch for minutes): say so rather than answer from nothing.
            self._replaced = True
        return None if current is None else str(current[0])

    @property
    def location(self) -> str:
        return redacted(self.url)

    def _query(self, sql: str, params: dict[str, Any] | Sequence[Any] | None = None) -> list[tuple]:
        return self._run(lambda connection: connection.execute(sql, params).fetchall())

    def _run(self, work: Callable[[psycopg.Connection], T]) -> T:
        if self._replaced:
            raise IndexUnavailableError(_replaced_message(self.url))
        return self._pool.run(work)

    def _params(self, **values: Any) -> dict[str, Any]:
        return {"version": self._version, **values}

    # --- documents, passages, sentences

    _DOCUMENT_COLUMNS = ("doc_id, title, source, url, published, author, lang, content_hash, passage_count, "
                         "first_row, opening, first_sentence_row, sentence_count")

    @property
    def documents(self) -> dict[str, DocumentInfo]:
        with self._lock:
            if self._documents is None:
                rows = self._query(f"SELECT {self._DOCUMENT_COLUMNS} FROM verbatim_documents "  # noqa: S608
                                   f"WHERE {_SERVED} ORDER BY first_row, doc_id", self._params())
                self._documents = {r[0]: DocumentInfo(*r) for r in rows}
            return self._documents

    def lookup(self, doc_id: str) -> DocumentInfo | None:
        if self._documents is not None:
            return self._documents.get(doc_id)
        rows = self._query(f"SELECT {self._DOCUMENT_COLUMNS} FROM verbatim_documents "  # noqa: S608
                           f"WHERE doc_id = %(doc_id)s AND {_SERVED}", self._params(doc_id=doc_id))
        return DocumentInfo(*rows[0]) if rows else None

    def content_hashes(self) -> dict[str, str]:
        return dict(self._query(f"SELECT doc_id, content_hash FROM verbatim_documents WHERE {_SERVED}",  # noqa: S608
                                self._params()))

    def passages(self, rows: Sequence[int]) -> dict[int, PassageRecord]:
        if not len(rows):
            return {}
        found = self._query(
            'SELECT row, passage_id, doc_id, position, start, "end", text, sentences, first_sentence_row '  # noqa: S608
            f"FROM verbatim_passages p WHERE row = ANY(%(rows)s) AND {_served_rows('p')}",
            self._params(rows=[int(r) for r in rows]))
        return {int(r[0]): PassageRecord(
            row=int(r[0]), passage_id=r[1], doc_id=r[2], position=r[3], start=r[4], end=r[5], text=r[6],
            sentences=tuple(Span(r[7][i], r[7][i + 1]) for i in range(0, len(r[7]), 2)),
            first_sentence_row=int(r[8])) for r in found}

    def document_sentences(self, doc_id: str) -> list[SentenceRecord]:
        info = self.lookup(doc_id)
        if info is None:
            raise KeyError(doc_id)
        rows = self._query('SELECT doc_id, start, "end", tokens FROM verbatim_sentences '
                           "WHERE row >= %s AND row < %s ORDER BY row",
                           (info.first_sentence_row, info.first_sentence_row + info.sentence_count))
        return [SentenceRecord(*r) for r in rows]

    def article_text(self, doc_id: str) -> str:
        rows = self._query(f"SELECT text FROM verbatim_documents WHERE doc_id = %(doc_id)s AND {_SERVED}",  # noqa: S608
                           self._params(doc_id=doc_id))
        if not rows:
            raise KeyError(doc_id)
        return str(rows[0][0])

    # --- vectors

    def has_space(self, space: Space) -> bool:
        return space == "dense" or self.manifest.multilingual_model is not None

    def nearest(self, space: Space, vector: np.ndarray, k: int, rows: RowFilter = None) -> Ranking:
        if k <= 0 or not self.has_space(space):
            return []
        column = _column(space)
        values = self._params(vector=np.asarray(vector, dtype=np.float32), k=int(k))
        if rows is None:
            # HNSW, scanning on past rows this version does not serve until `k` are found.
            # HNSW returns passages of equal vectors (the same text in two articles) in the graph's order:
            # a few more are fetched and ties go to the earlier row, as in FAISS.
            values["k"] = int(k) + NEAREST_TIE_ROOM
            sql = (f"SELECT row, -({column} <#> %(vector)s) FROM verbatim_passages p "  # noqa: S608
                   f"WHERE {_served_rows('p')} ORDER BY {column} <#> %(vector)s LIMIT %(k)s")
            ef_search = str(min(max(self._ef_search, values["k"]), HNSW_MAX_EF_SEARCH))

            def search(connection: psycopg.Connection) -> list[tuple]:
                with connection.transaction():
                    # The iterative scan goes past ef_search (capped by pgvector) until k rows qualify.
                    connection.execute("SELECT set_config('hnsw.ef_search', %s, true), "
                                       "set_config('hnsw.iterative_scan', 'strict_order', true)", (ef_search,))
                    return connection.execute(sql, values).fetchall()

            found = sorted(self._run(search), key=lambda r: (-r[1], r[0]))[:k]
        else:
            # A few documents' rows: every one of them weighed, exactly (the CTE keeps HNSW out).
            where, extra = _row_filter(rows)
            sql = (f"WITH chosen AS MATERIALIZED (SELECT row, {column} AS v FROM verbatim_passages p "  # noqa: S608
                   f"WHERE {_served_rows('p')} AND {where}) "
                   "SELECT row, -(v <#> %(vector)s) FROM chosen ORDER BY v <#> %(vector)s, row LIMIT %(k)s")
            found = self._query(sql, {**values, **extra})
        return [(int(row), float(score)) for row, score in found]

    def exact_nearest(self, space: Space, vector: np.ndarray, k: int) -> Ranking:
        """`nearest` without HNSW: every served passage weighed (what benchmarks measure recall against)."""
        column = _column(space)
        sql = (f"SELECT row, -({column} <#> %(vector)s) FROM verbatim_passages p "  # noqa: S608
               f"WHERE {_served_rows('p')} ORDER BY {column} <#> %(vector)s, row LIMIT %(k)s")
        values = self._params(vector=np.asarray(vector, dtype=np.float32), k=int(k))

        def search(connection: psycopg.Connection) -> list[tuple]:
            with connection.transaction():
                connection.execute("SET LOCAL enable_indexscan = off")
                return connection.execute(sql, values).fetchall()

        found = self._run(search)
        return [(int(row), float(score)) for row, score in found]

    def passage_vectors(self, space: Space, rows: np.ndarray) -> np.ndarray | None:
        if not self.has_space(space):
            return None
        return _vectors_by_row(self, "verbatim_passages", _column(space), rows, self._width(space))

    def sentence_vectors(self, space: Space) -> SentenceVectors | None:
        return SentenceVectors(self, space) if self.has_space(space) else None

    def _width(self, space: Space) -> int:
        return self.manifest.dimension if space == "dense" else self.manifest.multilingual_dimension or 0

    # --- BM25

    def document_frequency(self, term: str) -> int:
        return self.document_frequencies([term])[term]

    def document_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """How many served passages use each term, counted in one query and remembered."""
        return self._counted(self._frequencies, terms,
                             "SELECT po.term, count(*) FROM verbatim_postings po "  # noqa: S608
                             f"WHERE po.term = ANY(%(terms)s) AND {_served_rows('po')} GROUP BY po.term")

    def _title_frequencies(self, terms: Sequence[str]) -> dict[str, int]:
        """How many served titles (of documents with passages) use each term, remembered the same way."""
        return self._counted(self._title_frequencies_memo, terms,
                             "SELECT tp.term, count(*) FROM verbatim_title_postings tp JOIN verbatim_documents d "  # noqa: S608
                             "ON d.doc_id = tp.doc_id AND d.added_in = tp.added_in WHERE tp.term = ANY(%(terms)s) "
                             f"AND d.passage_count > 0 AND {_served_documents('d')} GROUP BY tp.term")

    def _counted(self, memo: dict[str, int], terms: Sequence[str], sql: str) -> dict[str, int]:
        """Each term's count: from `memo`, else by `sql` (term, count rows for %(terms)s) in one query, then
        remembered there. A version never changes, so neither do its counts."""
        with self._lock:
            known = {t: memo[t] for t in terms if t in memo}
        missing = sorted(set(terms) - set(known))
        if missing:
            counted = dict(self._query(sql, self._params(terms=missing)))
            fresh = {t: int(counted.get(t, 0)) for t in missing}
            with self._lock:
                if len(memo) > 200_000:  # a bounded memo: questions' and sentences' words
                    memo.clear()
                memo.update(fresh)
            known.update(fresh)
        return known

    def idf(self, frequency: int) -> float:
        return _idf(self.statistics.passages, frequency)

    def lexical(self, terms: Sequence[str], k: int, rows: RowFilter = None, title_weight: float = 0.0) -> Ranking:
        terms = [t for t in terms if t]
        if not terms or k <= 0:
            return []
        frequencies = self.document_frequencies(terms)
        idfs = [float(np.float32(self.idf(frequencies[t]))) for t in terms]
        where, extra = _row_filter(rows, column="po.row")
        where_titled, _ = _row_filter(rows, column="row")
        values = self._params(terms=terms, idfs=idfs, k1=BM25_K1, b=BM25_B, mean=self.statistics.mean_length, k=int(k),
                              title_weight=float(title_weight), mean_title=self.statistics.mean_title_length, **extra)
        titled = ""
        if title_weight > 0:
            title_frequencies = self._title_frequencies(terms)
            values["title_idfs"] = [float(np.float32(_idf(self.statistics.titles, title_frequencies[t])))
                                    for t in terms]
            # A title's score counts for every passage of its article (what it is about).
            titled = f"""
                UNION ALL
                SELECT row, %(title_weight)s * t.score FROM (
                    SELECT d.first_row, d.passage_count, sum(q.idf * tp.count / (%(k1)s * ((1 - %(b)s)
                           + %(b)s * d.title_length / %(mean_title)s) + tp.count)) AS score
                    FROM unnest(%(terms)s::text[], %(title_idfs)s::float8[]) AS q(term, idf)
                    JOIN verbatim_title_postings tp ON tp.term = q.term
                    JOIN verbatim_documents d ON d.doc_id = tp.doc_id AND d.added_in = tp.added_in
                    WHERE d.passage_count > 0 AND {_served_documents('d')}
                    GROUP BY d.doc_id, d.added_in, d.first_row, d.passage_count
                ) t CROSS JOIN generate_series(t.first_row, t.first_row + t.passage_count - 1) AS row
                WHERE {where_titled}"""  # noqa: S608
        # ::real, as the files store scores in float32: a float8 sum's last bit depends on the order
        # Postgres adds a passage's terms in, which split the tie of two passages of equal text (ARCD
        # has such twins) that both stores break by row.
        found = self._query(f"""
            SELECT row, sum(score)::real AS score FROM (
                SELECT po.row, sum(q.idf * po.count / (%(k1)s * ((1 - %(b)s) + %(b)s * po.length / %(mean)s)
                       + po.count)) AS score
                FROM unnest(%(terms)s::text[], %(idfs)s::float8[]) AS q(term, idf)
                JOIN verbatim_postings po ON po.term = q.term
                WHERE {_served_rows('po')} AND {where}
                GROUP BY po.row{titled}
            ) scored GROUP BY row HAVING sum(score) > 0 ORDER BY score DESC, row LIMIT %(k)s""",  # noqa: S608
            values)
        return [(int(row), float(score)) for row, score in found]

    def vectors_intact(self) -> bool:
        """Rows are written in one transaction with their vectors: an update may always build on them."""
        return True

    def close(self) -> None:
        self._release()


class SentenceVectors:
    """A version's sentence vectors of one space, read by row from Postgres when asked for."""

    def __init__(self, index: PostgresIndex, space: Space) -> None:
        self._index = index
        self._space = space

    def __getitem__(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        return _vectors_by_row(self._index, "verbatim_sentences", _column(self._space), rows,
                               self._index._width(self._space))


def _vectors_by_row(index: PostgresIndex, table: str, column: str, rows: np.ndarray | Sequence[int],
                    width: int) -> np.ndarray:
    wanted = [int(r) for r in np.asarray(rows, dtype=np.int64)]
    out = np.zeros((len(wanted), width), dtype=np.float32)
    if not wanted:
        return out
    found = dict(index._query(f"SELECT row, {column} FROM {table} WHERE row = ANY(%s)", (wanted,)))  # noqa: S608
    for i, row in enumerate(wanted):
        if row not in found:
            raise IndexCorruptError(f"The database has no {table} row {row}. Rebuild with `verbatim index build`.")
        value = found[row]
        out[i] = value.to_numpy() if hasattr(value, "to_numpy") else np.asarray(value, dtype=np.float32)
    return out


def _column(space: Space) -> str:
    return "dense" if space == "dense" else "multilingual"


def _row_filter(rows: RowFilter, column: str = "row") -> tuple[str, dict[str, Any]]:
    if rows is None:
        return "TRUE", {}
    if isinstance(rows, tuple):
        return f"{column} >= %(first_row)s AND {column} < %(end_row)s", {"first_row": int(rows[0]),
                                                                         "end_row": int(rows[1])}
    return f"{column} = ANY(%(rows)s)", {"rows": [int(r) for r in np.asarray(rows, dtype=np.int64)]}


def _idf(passages: int, frequency: int) -> float:
    n = max(passages, 1)
    return float(np.log(1 + (n - frequency + 0.5) / (frequency + 0.5)))


def _check_format(connection: psycopg.Connection) -> None:
    if not _has_tables(connection):
        return  # nothing written yet: the caller finds no current version
    row = connection.execute("SELECT value FROM verbatim_store WHERE key = 'format'").fetchone()
    stored = row[0] if row else None
    if stored != INDEX_FORMAT:
        raise IndexFormatError(stored, INDEX_FORMAT)


# --- Writing --------------------------------------------------------------------------------------------


@contextmanager
def write_lock(url: str) -> Iterator[None]:
    """Only one build or addition at a time, across every process using the database."""
    with connect(url) as connection:
        taken = connection.execute("SELECT pg_try_advisory_lock(%s)", (WRITE_LOCK_KEY,)).fetchone()
        if not taken or not taken[0]:
            raise ReindexInProgressError()
        try:
            yield
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK_KEY,))


@dataclass(frozen=True)
class WrittenVersion:
    manifest: Manifest  # with the version's counts
    dropped: dict[str, str]  # the documents the version no longer serves as they were: id → content hash


def write_version(url: str, manifest: Manifest, articles: Sequence[Article], indexed: IndexedArticles | None,
                  gone: set[str], *, previous: PostgresIndex | None) -> WrittenVersion:
    """Make the next version: `previous`'s documents less `gone`, plus `articles` (split and embedded as
    `indexed`). `manifest` describes the models; its counts are worked out here. Everything is
    written and switched to in one transaction; the caller holds `write_lock`."""
    if indexed is None:
        indexed = _nothing_indexed(manifest)
    # Other models: other tables (old processes notice and say to restart, see `latest_version`).
    fresh_tables = previous is None or not _same_models(previous.manifest, manifest)
    with connect(url) as connection:
        served = _current(connection)
        # Numbers go on from the old tables' versions too, so every process sees a new one.
        previous_version = served[0] if served else 0
        if previous is not None and not fresh_tables and previous._version != previous_version:
            raise ReindexInProgressError()  # another writer got in (the lock was lost): this one stops
        statistics = VersionStatistics(0, 0.0, 0, 0.0) if fresh_tables or previous is None else previous.statistics
        # New tables drop every document of the old ones (read now: they go in the transaction).
        dropped_with_tables = previous.content_hashes() if fresh_tables and previous is not None else {}
        if fresh_tables:
            gone = set()
        version = previous_version + 1
        with connection.transaction():
            if fresh_tables:
                # In the same transaction as the rows: a build that fails leaves the old tables serving.
                # Readers wait meanwhile (up to their lock timeout); this happens only when models change.
                _create_schema(connection, manifest)
            else:
                locked = connection.execute("SELECT version FROM verbatim_current FOR UPDATE").fetchone()
                if locked is None or int(locked[0]) != previous_version:
                    raise ReindexInProgressError()
                _forget_replaced(connection)
            counts = connection.execute(
                "SELECT COALESCE((SELECT max(row) + 1 FROM verbatim_passages), 0), "
                "COALESCE((SELECT max(row) + 1 FROM verbatim_sentences), 0)").fetchone()
            first_passage, first_sentence = (int(counts[0]), int(counts[1])) if counts else (0, 0)
            left = _remove(connection, gone, version) if gone else Removed()
            added = _insert(connection, articles, indexed, version, first_passage, first_sentence)
            written_statistics = VersionStatistics(
                statistics.passages - left.passages + added.passages,
                statistics.total_length - left.total_length + added.total_length,
                statistics.titles - left.titles + added.titles,
                statistics.total_title_length - left.total_title_length + added.total_title_length)
            before = previous.manifest if previous is not None and not fresh_tables else None
            written = replace(
                manifest,
                documents=(before.documents if before else 0) - len(left.hashes) + len(articles),
                passages=written_statistics.passages,
                sentences=(before.sentences if before else 0) - left.sentences + len(indexed.sentences),
                corpus_fingerprint=refingerprint(before.corpus_fingerprint if before else fingerprint_of({}),
                                                 removed=left.hashes,
                                                 added={a.doc_id: a.content_hash for a in articles}),
                vector_index=f"pgvector HNSW (m={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION})",
                segments=1,
            )
            # Built here, before the switch, when missing (the first version, or new tables): a version is
            # never served without its HNSW index. Later rows join the index as they are inserted.
            _create_vector_indexes(connection, manifest)
            connection.execute(
                "INSERT INTO verbatim_versions (id, manifest, passages, total_length, titles, total_title_length) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (version, json.dumps(asdict(written)), written_statistics.passages, written_statistics.total_length,
                 written_statistics.titles, written_statistics.total_title_length))
            connection.execute("INSERT INTO verbatim_current (singleton, version) VALUES (TRUE, %s) "
                               "ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version", (version,))
            # When readers start leaving the versions before: `_forget_replaced` counts from here.
            connection.execute("UPDATE verbatim_versions SET replaced_at = clock_timestamp() "
                               "WHERE replaced_at IS NULL AND id < %s", (version,))
        if first_passage == 0:
            # New tables arrive all at once: set their visibility map and statistics now (autovacuum would,
            # minutes later), so BM25 reads postings from the index alone and plans know the sizes.
            connection.execute("VACUUM (ANALYZE) verbatim_postings, verbatim_passages, verbatim_removed")
    return WrittenVersion(written, left.hashes or dropped_with_tables)


def _nothing_indexed(manifest: Manifest) -> IndexedArticles:
    from index.store.build import IndexedArticles

    empty = np.zeros((0, manifest.dimension), dtype=np.float32)
    multilingual = (np.zeros((0, manifest.multilingual_dimension or 0), dtype=np.float32)
                    if manifest.multilingual_model else None)
    return IndexedArticles([], [], empty, multilingual, empty, multilingual)


def _same_models(previous: Manifest, manifest: Manifest) -> bool:
    def models(m: Manifest) -> tuple:
        return m.model, m.dimension, m.embedding_backend, m.multilingual_model, m.multilingual_dimension

    return models(previous) == models(manifest)


def _create_schema(connection: psycopg.Connection, manifest: Manifest) -> None:
    """Empty tables sized for the manifest's models (an index of other models is dropped first)."""
    from pgvector.psycopg import register_vector

    multilingual = f"vector({manifest.multilingual_dimension})" if manifest.multilingual_model else "vector"
    for table in _TABLES:
        connection.execute(f"DROP TABLE IF EXISTS {table}")
    connection.execute(_SCHEMA.format(dense=manifest.dimension, multilingual_type=multilingual))
    connection.execute("INSERT INTO verbatim_store VALUES ('format', %s), ('tables', %s)",
                       (json.dumps(INDEX_FORMAT), json.dumps(uuid.uuid4().hex)))
    register_vector(connection)


def _create_vector_indexes(connection: psycopg.Connection, manifest: Manifest) -> None:
    """HNSW over passage vectors, when missing: built after the first version's rows are in (far faster
    than growing it row by row)."""
    # At least 1GB, in this transaction only; a server or database set higher keeps its own: the build
    # is far faster while the whole graph fits in it (docs/speed.md, Postgres store).
    connection.execute("SELECT set_config('maintenance_work_mem', '1GB', true) "
                       "WHERE pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes('1GB')")
    for column in ["dense"] + (["multilingual"] if manifest.multilingual_model else []):
        connection.execute(
            f"CREATE INDEX IF NOT EXISTS verbatim_passages_{column}_hnsw ON verbatim_passages "  # noqa: S608
            f"USING hnsw ({column} vector_ip_ops) WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})")


def _forget_replaced(connection: psycopg.Connection) -> None:
    """Delete the rows only versions replaced over KEEP_REPLACED_SECONDS ago served: every process has
    moved past them (they check every INDEX_FOLLOW_SECONDS)."""
    row = connection.execute(
        "SELECT max(id) FROM verbatim_versions WHERE replaced_at < clock_timestamp() - make_interval(secs => %s)",
        (KEEP_REPLACED_SECONDS,)).fetchone()
    if row is None or row[0] is None:
        return
    # Versions up to `last` are left behind; a row dropped by the version after it served only them.
    last = int(row[0])
    old = connection.execute(
        "DELETE FROM verbatim_documents WHERE removed_in <= %s "
        "RETURNING doc_id, added_in, first_row, passage_count, first_sentence_row, sentence_count",
        (last + 1,)).fetchall()
    connection.execute("DELETE FROM verbatim_versions WHERE id <= %s", (last,))
    if not old:
        return
    connection.execute("DELETE FROM verbatim_title_postings tp USING unnest(%s::text[], %s::bigint[]) AS d(doc_id, "
                       "added_in) WHERE tp.doc_id = d.doc_id AND tp.added_in = d.added_in",
                       ([r[0] for r in old], [r[1] for r in old]))
    passage_rows = [row for r in old for row in range(r[2], r[2] + r[3])]
    sentence_rows = [row for r in old for row in range(r[4], r[4] + r[5])]
    for table in ("verbatim_postings", "verbatim_passages", "verbatim_removed"):
        connection.execute(f"DELETE FROM {table} WHERE row = ANY(%s)", (passage_rows,))  # noqa: S608
    connection.execute("DELETE FROM verbatim_sentences WHERE row = ANY(%s)", (sentence_rows,))


@dataclass(frozen=True)
class Removed:
    """What a version drops: the documents (id → content hash), their passages and sentences, titles."""

    hashes: dict[str, str] = field(default_factory=dict)
    passages: int = 0
    total_length: float = 0.0
    titles: int = 0
    total_title_length: float = 0.0
    sentences: int = 0


def _remove(connection: psycopg.Connection, gone: set[str], version: int) -> Removed:
    """Mark the served documents in `gone` dropped by `version`, and list their passages as dropped:
    their own rows are not touched (an UPDATE would copy each passage's vectors into HNSW again)."""
    docs = connection.execute(
        "UPDATE verbatim_documents SET removed_in = %s WHERE doc_id = ANY(%s) AND removed_in IS NULL "
        "RETURNING doc_id, content_hash, first_row, passage_count, title_length, sentence_count",
        (version, sorted(gone))).fetchall()
    rows = [row for r in docs for row in range(r[2], r[2] + r[3])]
    connection.execute("INSERT INTO verbatim_removed (row, removed_in) SELECT unnest(%s::bigint[]), %s",
                       (rows, version))
    length = connection.execute("SELECT COALESCE(sum(length), 0) FROM verbatim_passages WHERE row = ANY(%s)",
                                (rows,)).fetchone()
    titled = [r for r in docs if r[3] > 0]
    return Removed(hashes={r[0]: r[1] for r in docs}, passages=len(rows),
                   total_length=float(length[0] if length else 0), titles=len(titled),
                   total_title_length=float(sum(r[4] for r in titled)), sentences=sum(r[5] for r in docs))


def _insert(connection: psycopg.Connection, articles: Sequence[Article], indexed: IndexedArticles, version: int,
            first_passage: int, first_sentence: int) -> VersionStatistics:
    """Copy the new documents, passages, sentences and postings in; returns what they add to BM25's
    statistics."""
    passage_counts: Counter[str] = Counter(p.doc_id for p in indexed.passages)
    sentence_counts: Counter[str] = Counter(s.doc_id for s in indexed.sentences)
    first_rows: dict[str, int] = {}
    for row, passage in enumerate(indexed.passages, start=first_passage):
        first_rows.setdefault(passage.doc_id, row)
    first_sentence_rows: dict[str, int] = {}
    for row, sentence in enumerate(indexed.sentences, start=first_sentence):
        first_sentence_rows.setdefault(sentence.doc_id, row)
    title_terms = {a.doc_id: analyse(a.title) or [""] for a in articles}

    with connection.cursor() as cursor:
        with cursor.copy("COPY verbatim_documents (doc_id, added_in, title, source, url, published, author, lang, "
                         "origin, content_hash, text, opening, first_row, passage_count, first_sentence_row, "
                         "sentence_count, title_length) FROM STDIN") as copy:
            for a in articles:
                copy.write_row((a.doc_id, version, a.title, a.source, a.url, a.published, a.author, a.lang,
                                a.origin, a.content_hash, a.text, opening_lines(a.text),
                                first_rows.get(a.doc_id, -1), passage_counts.get(a.doc_id, 0),
                                first_sentence_rows.get(a.doc_id, -1), sentence_counts.get(a.doc_id, 0),
                                len(title_terms[a.doc_id])))
        with cursor.copy("COPY verbatim_title_postings (term, doc_id, added_in, count) FROM STDIN") as copy:
            for a in articles:
                for term, count in Counter(title_terms[a.doc_id]).items():
                    copy.write_row((term, a.doc_id, version, float(count)))
        lengths = 0.0
        with cursor.copy("COPY verbatim_passages (row, passage_id, doc_id, added_in, position, start, \"end\", text, "
                         "sentences, first_sentence_row, length, dense, multilingual) "
                         "FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "text", "text", "int8", "int4", "int4", "int4", "text", "int4[]", "int8",
                            "int4", "vector", "vector"])
            # Postings wait for the passages' COPY to end: kept as numbers (not ~170-byte tuples), so a
            # million passages' tens of millions of postings fit in the writer's memory.
            vocabulary: dict[str, int] = {}
            posting_terms, posting_rows, posting_counts = array("i"), array("q"), array("f")
            passage_lengths = array("i")
            for i, passage in enumerate(indexed.passages):
                row = first_passage + i
                terms = analyse(passage.text) or [""]  # as the files store: a passage with no words exists
                lengths += len(terms)
                passage_lengths.append(len(terms))
                for term, count in Counter(terms).items():
                    posting_terms.append(vocabulary.setdefault(term, len(vocabulary)))
                    posting_rows.append(row)
                    posting_counts.append(count)
                copy.write_row((row, passage.passage_id, passage.doc_id, version, passage.position, passage.start,
                                passage.end, passage.text, [x for s in passage.sentences for x in (s.start, s.end)],
                                first_sentence_rows[passage.doc_id] + passage.first_sentence, len(terms),
                                indexed.dense[i],
                                indexed.multilingual[i] if indexed.multilingual is not None else None))
        # Each posting carries its passage's length and version: BM25 then reads postings alone, never
        # the passages' wide rows (their vectors).
        with cursor.copy("COPY verbatim_postings (term, row, count, length, added_in) FROM STDIN") as copy:
            words = list(vocabulary)
            for term_id, row, times in zip(posting_terms, posting_rows, posting_counts, strict=True):
                copy.write_row((words[term_id], row, times, passage_lengths[row - first_passage], version))
        with cursor.copy("COPY verbatim_sentences (row, doc_id, start, \"end\", tokens, dense, multilingual) "
                         "FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "text", "int4", "int4", "int4", "vector", "vector"])
            for i, sentence in enumerate(indexed.sentences):
                copy.write_row((first_sentence + i, sentence.doc_id, sentence.start, sentence.end, sentence.tokens,
                                indexed.dense_sentences[i],
                                indexed.multilingual_sentences[i] if indexed.multilingual_sentences is not None
                                else None))
    titled = [a for a in articles if passage_counts.get(a.doc_id, 0) > 0]
    return VersionStatistics(len(indexed.passages), lengths, len(titled),
                             float(sum(len(title_terms[a.doc_id]) for a in titled)))
