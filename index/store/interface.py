"""What the engine reads from one index version, whichever store holds it.

Two stores implement `IndexVersion`: the files of one machine (`index/store/files.py`: FAISS, BM25
postings and SQLite in immutable segments, the default) and Postgres with pgvector
(`index/store/postgres.py`, chosen by DATABASE_URL) for many processes sharing one index. Search and
answers go through this interface only, and the same contract tests run against both
(tests/index/test_store_contract.py).

Passages and sentences are addressed by integer rows. A document's passages have consecutive rows,
and so do its sentences; `passage_count` bounds the passage rows, so arrays indexed by row fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

if TYPE_CHECKING:  # the stores import this module's names
    from index.store.files import Manifest
    from index.store.segments import DocumentInfo, PassageRecord, SentenceRecord

Space = Literal["dense", "multilingual"]  # the English model's vectors, or the multilingual model's
Ranking = list[tuple[int, float]]  # (passage row, score), best first
# Which passages a search may return: all (None), a range [first, last) (one document's), or the rows listed.
RowFilter = tuple[int, int] | np.ndarray | None


class RowVectors(Protocol):
    """Vectors read by row (a store's sentence vectors): `vectors[rows]` is one row per row asked."""

    def __getitem__(self, rows: np.ndarray | Sequence[int]) -> np.ndarray: ...


class IndexVersion(Protocol):
    """One version of the index, as search and answering read it; it never changes once opened.

    Both stores subclass it, so what is the same for both (a document's rows, its passages) is written
    once, here."""

    manifest: Manifest
    passage_count: int

    @property
    def version(self) -> str:
        """Names this version: a new one is written by every build or addition."""

    def latest_version(self) -> str | None:
        """The version the store serves now, which a newer build may have made (None: no index left)."""

    @property
    def location(self) -> str:
        """Where the index lives, for people (a folder, or a database without its password)."""

    @property
    def documents(self) -> dict[str, DocumentInfo]: ...

    def lookup(self, doc_id: str) -> DocumentInfo | None: ...

    def content_hashes(self) -> dict[str, str]: ...

    def passages(self, rows: Sequence[int]) -> dict[int, PassageRecord]:
        """The passages at these rows (rows the version does not serve are left out)."""

    def document_passages(self, doc_id: str) -> list[PassageRecord]:
        first, last = self.doc_rows(doc_id)
        found = self.passages(list(range(first, last)))
        return [found[row] for row in range(first, last)]

    def document_sentences(self, doc_id: str) -> list[SentenceRecord]: ...

    def article_text(self, doc_id: str) -> str: ...

    def doc_rows(self, doc_id: str) -> tuple[int, int]:
        """The [first, last) passage rows of a served document (KeyError if it is not served)."""
        info = self.lookup(doc_id)
        if info is None:
            raise KeyError(doc_id)
        return info.first_row, info.first_row + info.passage_count

    def has_space(self, space: Space) -> bool: ...

    def nearest(self, space: Space, vector: np.ndarray, k: int, rows: RowFilter = None) -> Ranking:
        """The `k` passages whose vectors are nearest `vector` (inner product of unit vectors)."""

    def passage_vectors(self, space: Space, rows: np.ndarray) -> np.ndarray | None:
        """The stored vectors of these passages, or None when the index does not keep them."""

    def sentence_vectors(self, space: Space) -> RowVectors | None: ...

    def document_frequency(self, term: str) -> int:
        """How many served passages use an analysed term (`index/store/lexical.py` analyse)."""

    def idf(self, frequency: int) -> float: ...

    def lexical(self, terms: Sequence[str], k: int, rows: RowFilter = None, title_weight: float = 0.0) -> Ranking:
        """BM25 of passages for analysed `terms`, plus `title_weight` × their article title's BM25."""

    def close(self) -> None: ...
