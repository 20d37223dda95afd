"""The store contract (index/store/interface.py), run against both stores: index files and Postgres.

Each test builds a small real index (the seed article and the invented Vellmoor reports, the real
models) in the store it is given, then checks what search and answering read from it. The last tests
compare the two stores with each other: the same passages must score the same.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index.engine import Engine, LiveEngine
from index.errors import ReindexInProgressError
from index.settings import Settings
from index.sources.corpus import Article, load_corpus
from index.store.build import add_articles, build_index
from index.store.lexical import analyse
from index.store.stores import open_index, write_lock
from tests.conftest import SEED_ARTICLE, make_settings
from tests.index.time_support import VELLMOOR

STORES = ["files", "postgres"]


def contract_corpus(folder: Path) -> Path:
    corpus = folder / "corpus"
    corpus.mkdir()
    shutil.copy(SEED_ARTICLE, corpus)
    for path in sorted(VELLMOOR.glob("*.md")):
        shutil.copy(path, corpus)
    return corpus


def store_settings(kind: str, folder: Path, corpus: Path, database_url: str) -> Settings:
    if kind == "postgres":
        return make_settings(folder, corpus, database_url=database_url)
    return make_settings(folder, corpus)


@pytest.fixture(params=STORES)
def store(request, tmp_path, encoders) -> Settings:
    """Settings whose index, built from the contract corpus, lives in one store or the other."""
    url = request.getfixturevalue("database_url") if request.param == "postgres" else ""
    settings = store_settings(request.param, tmp_path, contract_corpus(tmp_path), url)
    build_index(settings, encoders=encoders)
    return settings


def test_documents_passages_and_sentences_are_read_back(store):
    articles = {a.doc_id: a for a in load_corpus([store.corpus_dir]).articles}
    index = open_index(store)
    try:
        assert set(index.documents) == set(articles) == set(index.content_hashes())
        assert index.manifest.documents == len(articles)
        assert index.manifest.passages == sum(info.passage_count for info in index.documents.values())
        for doc_id, article in articles.items():
            info = index.lookup(doc_id)
            assert info is not None and info.title == article.title and info.published == article.published
            assert index.content_hashes()[doc_id] == article.content_hash
            assert index.article_text(doc_id) == article.text
            first, last = index.doc_rows(doc_id)
            passages = index.document_passages(doc_id)
            assert [p.row for p in passages] == list(range(first, last))
            assert all(article.text[p.start:p.end] == p.text for p in passages)
            sentences = index.document_sentences(doc_id)
            assert len(sentences) == info.sentence_count
            # A passage's sentence rows point at its own sentences, in order.
            for passage in passages:
                spans = [(s.start, s.end) for s in passage.sentences]
                rows = [r - info.first_sentence_row for r in passage.sentence_rows]
                assert [(sentences[r].start, sentences[r].end) for r in rows] == spans
        assert index.lookup("no-such-article") is None
        assert index.passages([10**9]) == {}
    finally:
        index.close()


def test_nearest_ranks_by_the_stored_vectors(store, encoders):
    index = open_index(store)
    try:
        rows = np.arange(index.passage_count)
        served = np.asarray(sorted(r for info in index.documents.values()
                                   for r in range(info.first_row, info.first_row + info.passage_count)))
        vectors = index.passage_vectors("dense", served)
        assert vectors is not None and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        query = encoders.dense.encode_queries(["How many people died in the Vellmoor floods?"])[0]
        similarities = vectors @ query
        best = np.argsort(-similarities, kind="stable")[:5]
        found = index.nearest("dense", query, 5)
        assert [row for row, _ in found] == served[best].tolist()
        assert [score for _, score in found] == pytest.approx(similarities[best].tolist(), abs=1e-4)
        # Narrowed to one article, or to rows listed: only those rows come back.
        first, last = index.doc_rows("syria-vows-accountability")
        assert {row for row, _ in index.nearest("dense", query, 50, (first, last))} == set(range(first, last))
        listed = rows[first:first + 2]
        assert {row for row, _ in index.nearest("dense", query, 50, listed)} == set(listed.tolist())
        assert index.has_space("multilingual")
        assert index.nearest("multilingual", np.zeros(0), 0) == []
    finally:
        index.close()


def test_sentence_vectors_are_the_sentences_embedded(store, encoders):
    index = open_index(store)
    try:
        info = index.lookup("courier-floods-first-toll")
        assert info is not None
        text = index.article_text(info.doc_id)
        sentences = index.document_sentences(info.doc_id)
        rows = np.arange(info.first_sentence_row, info.first_sentence_row + info.sentence_count)
        stored = index.sentence_vectors("dense")
        assert stored is not None
        fresh = encoders.dense.encode_passages([text[s.start:s.end] for s in sentences])
        assert np.allclose(stored[rows], fresh, atol=2e-3)
    finally:
        index.close()


def test_lexical_scores_bm25_over_the_served_passages(store):
    index = open_index(store)
    try:
        terms = analyse("Vellmoor floods death toll")
        found = index.lexical(terms, 10)
        assert found and all(score > 0 for _, score in found)
        assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
        records = index.passages([row for row, _ in found])
        # Every passage found uses a word asked for, and the invented town's reports come first.
        assert all(set(analyse(records[row].text)) & set(terms) for row, _ in found)
        assert records[found[0][0]].doc_id != "syria-vows-accountability"
        assert all(records[row].doc_id != "syria-vows-accountability"
                   for row, _ in index.lexical(analyse("Vellmoor Harrowbeck"), 10))
        assert index.document_frequency(analyse("Vellmoor")[0]) == len(index.lexical(analyse("Vellmoor"), 100))
        assert index.document_frequency("zzzunseen") == 0 and index.idf(0) > index.idf(3)
        # A title's words lift every passage of its article.
        plain = dict(index.lexical(analyse("lantern festival"), 100))
        titled = dict(index.lexical(analyse("lantern festival"), 100, title_weight=1.0))
        first, last = index.doc_rows("post-lantern-festival")
        assert all(titled[row] > plain.get(row, 0.0) for row in range(first, last))
        assert set(dict(index.lexical(terms, 100, (first, last)))) <= set(range(first, last))
    finally:
        index.close()


def test_a_day_asked_for_is_searched_within_its_rows_in_either_store(store, encoders):
    # A narrow date range reaches BM25 (with titles) and dense search as a list of rows (rows_in_time).
    index = open_index(store)
    try:
        first, last = index.doc_rows("post-floods-toll-rises")
        listed = np.arange(first, last, dtype=np.int64)
        terms = analyse("Vellmoor floods death toll")
        everywhere = dict(index.lexical(terms, 100, title_weight=0.5))
        found = index.lexical(terms, 100, listed, title_weight=0.5)
        assert found and {row for row, _ in found} <= set(listed.tolist())
        assert [score for _, score in found] == pytest.approx([everywhere[row] for row, _ in found], abs=1e-5)
    finally:
        index.close()
    engine = Engine.load(store, encoders=encoders)
    answer = engine.ask("What did emergency officials say yesterday?", as_of=dt.date(2026, 3, 5))
    assert answer.note is None and {c.doc_id for c in answer.citations} == {"post-floods-toll-rises"}, answer.text


def test_a_reader_keeps_its_version_while_articles_are_added_changed_and_removed(store, encoders, tmp_path):
    before = open_index(store)
    try:
        old_version = before.version
        added = Article("vellmoor-bridge", "Vellmoor bridge reopens", "The Harrowbeck bridge in Vellmoor reopened "
                        "on Friday after the floods, the county council said.", source="The Dunmarsh Courier",
                        published="2026-05-02")
        report = add_articles(store, [added], encoders=encoders)
        assert report.added == ["vellmoor-bridge"]
        after = open_index(store)
        try:
            assert after.version == before.latest_version() == after.latest_version() != old_version
            assert after.lookup("vellmoor-bridge") is not None
            assert before.lookup("vellmoor-bridge") is None  # the old version is as it was
            rows = before.doc_rows("courier-floods-first-toll")
            assert before.passages(list(range(*rows)))  # and still readable in full
        finally:
            after.close()
        # A changed article replaces its old text; an article gone from the corpus is removed.
        (store.corpus_dir / "post-lantern-festival.md").unlink()
        changed = store.corpus_dir / "courier-flood-inquiry.md"
        changed.write_text(changed.read_text(encoding="utf-8").replace("seven years", "eleven years"), encoding="utf-8")
        report = build_index(store, encoders=encoders, incremental=True)
        assert report.changed == ["courier-flood-inquiry"]
        # An update indexes the corpus folder: the bridge report was added to the index alone, so it goes too.
        assert report.removed == ["post-lantern-festival", "vellmoor-bridge"]
        latest = open_index(store)
        try:
            assert latest.lookup("post-lantern-festival") is None
            assert "eleven years" in latest.article_text("courier-flood-inquiry")
            assert not latest.lexical(analyse("lantern"), 10)
            found = latest.lexical(analyse("inspected seven years eleven"), 10)
            texts = [latest.passages([row])[row].text for row, _ in found]
            assert any("eleven years" in t for t in texts) and not any("seven years" in t for t in texts)
            assert latest.manifest.documents == len(latest.documents) == 5
        finally:
            latest.close()
        assert before.lookup("post-lantern-festival") is not None
    finally:
        before.close()


def test_one_writer_at_a_time(store):
    with write_lock(store):
        with pytest.raises(ReindexInProgressError):
            with write_lock(store):
                pass
    with write_lock(store):  # released
        pass


def test_a_process_serves_what_another_process_wrote(store, encoders):
    """`verbatim index update` in another process; this one's LiveEngine switches to its version when it checks."""
    live = LiveEngine(store, Engine.load(store, encoders=encoders))
    assert not live.follow()  # nothing new yet
    page = store.corpus_dir / "vellmoor-mill.md"
    page.write_text("---\ntitle: Vellmoor mill reopens\nsource: The Dunmarsh Courier\npublished: 2026-06-01\n---\n"
                    "The old mill in Vellmoor reopened as a flood museum, its owner Tamsin Orlecki said.\n",
                    encoding="utf-8")
    env = {**os.environ, "CORPUS_DIR": str(store.corpus_dir), "DATA_DIR": str(store.data_dir),
           "MODEL_CACHE_DIR": str(store.model_cache_dir), "DATABASE_URL": ""}
    if store.database_url is not None:
        env["DATABASE_URL"] = store.database_url.get_secret_value()
    done = subprocess.run([sys.executable, "-m", "bot.cli", "index", "update"], env=env, capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert live.current.source("vellmoor-mill") is None
    assert live.follow()
    assert live.current.source("vellmoor-mill") is not None
    answer = live.current.ask("Who owns the old mill in Vellmoor?")
    assert answer.answered and "Tamsin Orlecki" in answer.text


def assert_scored_alike(files: Settings, postgres: Settings, encoders) -> None:
    a, b = open_index(files), open_index(postgres)
    try:
        def by_id(index, ranking):
            records = index.passages([row for row, _ in ranking])
            return {records[row].passage_id: round(score, 4) for row, score in ranking}

        assert a.manifest.documents == b.manifest.documents and a.manifest.passages == b.manifest.passages
        assert a.manifest.corpus_fingerprint == b.manifest.corpus_fingerprint
        for question in ("How many people died in the Vellmoor floods?", "Who pledged accountability?",
                         "levee inspection Harrowbeck", "كم عدد القتلى"):
            terms = analyse(question)
            assert by_id(a, a.lexical(terms, 50, title_weight=0.5)) == by_id(b, b.lexical(terms, 50, title_weight=0.5))
            for space, encoder in (("dense", encoders.dense), ("multilingual", encoders.multilingual)):
                vector = encoder.encode_queries([question])[0]
                assert by_id(a, a.nearest(space, vector, 8)) == by_id(b, b.nearest(space, vector, 8))
            for term in terms:
                assert a.document_frequency(term) == b.document_frequency(term)
    finally:
        a.close()
        b.close()
    engines = Engine.load(files, encoders=encoders), Engine.load(postgres, encoders=encoders)
    for question in ("How many civilians were killed?", "What did Mayor Elsbeth Quarrie tell the inquiry?",
                     "كم عدد المدنيين الذين قتلوا؟", "Who won the lantern festival prize?"):
        one, other = (engine.ask(question) for engine in engines)
        assert (one.answered, one.text) == (other.answered, other.text)


def test_both_stores_score_every_passage_alike(tmp_path, encoders, database_url):
    """After a build, and after the same additions, changes and removals (BM25's statistics move with them)."""
    corpus = contract_corpus(tmp_path)
    files = store_settings("files", tmp_path / "files", corpus, "")
    postgres = store_settings("postgres", tmp_path / "pg", corpus, database_url)
    for settings in (files, postgres):
        build_index(settings, encoders=encoders)
    assert_scored_alike(files, postgres, encoders)

    added = Article("vellmoor-levee-report", "Vellmoor levee report published", "The report on the Vellmoor "
                    "floods found the Harrowbeck levee had cracked in two places before the floods.",
                    source="The Dunmarsh Courier", published="2026-06-12")
    (corpus / "post-lantern-festival.md").unlink()
    changed = corpus / "courier-flood-inquiry.md"
    changed.write_text(changed.read_text(encoding="utf-8").replace("seven years", "eleven years"), encoding="utf-8")
    for settings in (files, postgres):
        build_index(settings, encoders=encoders, incremental=True)
        add_articles(settings, [added], encoders=encoders)
    assert_scored_alike(files, postgres, encoders)
