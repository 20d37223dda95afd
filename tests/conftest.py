"""Shared fixtures: one real index of the seed article, built once per test session."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from index.engine import Engine
from index.settings import Settings
from index.store.build import Encoders, build_index
from tests.postgres_support import TestPostgres

DATA = Path(__file__).parent / "data"
SEED_ARTICLE = DATA / "syria-vows-accountability.md"
SEED_QUESTIONS = DATA / "seed-dev-queries.jsonl"
# One cache of exported models for every test, however many data folders they make: exporting the
# embedder to ONNX takes seconds, and the tests are about the index, not the export.
MODEL_CACHE = Path(__file__).parents[1] / "var" / "models"


def make_settings(tmp: Path, corpus: Path, **overrides) -> Settings:
    overrides.setdefault("model_cache_dir", MODEL_CACHE)
    return Settings(_env_file=None, corpus_dir=corpus, data_dir=tmp / "var", **overrides)


@pytest.fixture(scope="session")
def encoders() -> Encoders:
    return Encoders.load(Settings(_env_file=None, model_cache_dir=MODEL_CACHE))


@pytest.fixture(scope="session")
def seed_corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("seed-corpus")
    shutil.copy(SEED_ARTICLE, folder)
    return folder


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory, seed_corpus, encoders) -> Settings:
    settings = make_settings(tmp_path_factory.mktemp("seed-index"), seed_corpus)
    build_index(settings, encoders=encoders)
    return settings


@pytest.fixture(scope="session")
def seed_engine(seed_settings, encoders) -> Engine:
    return Engine.load(seed_settings, encoders=encoders)


def seed_questions() -> list[dict]:
    return [json.loads(line) for line in SEED_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TestPostgres]:
    """A real Postgres 18 with pgvector for the whole session (started only if a test asks for it)."""
    server = TestPostgres.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def database_url(postgres_server: TestPostgres) -> Iterator[str]:
    """The URL of a new, empty database with pgvector, dropped after the test."""
    with postgres_server.database() as url:
        yield url
