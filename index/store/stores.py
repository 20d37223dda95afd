"""Which store holds the index: files in the index folder (one machine, the default), or Postgres
with pgvector when DATABASE_URL is set (many processes sharing one index). Everything that opens,
locks or follows the index goes through here, so the rest of the engine never asks which."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from index.errors import IndexCorruptError, IndexFormatError, IndexMissingError
from index.settings import Settings
from index.store.files import StoredIndex, build_lock
from index.store.interface import IndexVersion
from index.store.vectors import VectorIndexPolicy


def database_url(settings: Settings) -> str | None:
    return settings.database_url.get_secret_value() if settings.database_url is not None else None


def open_index(settings: Settings, *, searchable: bool = True) -> IndexVersion:
    """The version served now. `searchable=False` (files only) skips loading the search indexes."""
    url = database_url(settings)
    if url is not None:
        from index.store.postgres import PostgresIndex

        return PostgresIndex(url, ef_search=settings.postgres_ef_search)
    return StoredIndex.open_current(settings.index_dir, searchable=searchable,
                                   policy=VectorIndexPolicy.from_settings(settings) if searchable else None)


def open_previous(settings: Settings) -> IndexVersion | None:
    """The version a build or addition grows from; None when there is none or it cannot be read."""
    try:
        return open_index(settings, searchable=False)
    except (IndexMissingError, IndexCorruptError, IndexFormatError):
        return None


def location(settings: Settings) -> str:
    url = database_url(settings)
    if url is not None:
        from index.store.postgres import redacted

        return redacted(url)
    return str(settings.index_dir)


@contextmanager
def write_lock(settings: Settings) -> Iterator[None]:
    """One build or addition at a time, across processes (ReindexInProgressError when one runs)."""
    url = database_url(settings)
    if url is not None:
        from index.store.postgres import write_lock as database_lock

        with database_lock(url):
            yield
    else:
        with build_lock(settings.index_dir):
            yield
