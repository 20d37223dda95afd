"""Incremental, crash-safe and online re-indexing."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from index.embedders import SentenceTransformerEncoder
from index.engine import Engine, LiveEngine
from index.errors import ReindexInProgressError
from index.sources.corpus import Article, save_article
from index.store.build import Encoders, build_index
from index.store.files import VERSIONS_DIR, StoredIndex, build_lock, current_version
from tests.conftest import MODEL_CACHE, make_settings

TOWNS = ["Aleppo", "Homs", "Hama", "Idlib", "Daraa", "Raqqa", "Deir ez-Zor", "Tartus", "Jableh", "Baniyas"]


def town_article(number: int, detail: str = "") -> Article:
    town = TOWNS[number % len(TOWNS)]
    text = (
        f"Officials in {town} said {number * 7 + 3} families had returned to the district this month. "
        f"Schools in {town} reopened on a Sunday after repairs to {number + 2} classrooms. {detail}\n\n"
        f"Aid groups in {town} asked for more water trucks, saying demand had doubled since winter."
    )
    return Article(doc_id=f"town-{number:03d}", title=f"Returns to {town} ({number})", text=text.strip(),
                   source="Test Wire", url=f"https://example.org/towns/{number}", published="2025-05-01")


def corpus_with(tmp_path: Path, count: int) -> Path:
    corpus = tmp_path / "corpus"
    for number in range(count):
        save_article(corpus, town_article(number))
    return corpus


def test_update_embeds_only_new_and_changed_documents(tmp_path, encoders):
    corpus = corpus_with(tmp_path, 6)
    settings = make_settings(tmp_path, corpus)
    first = build_index(settings, encoders=encoders)
    assert first.embedded_documents == 6

    save_article(corpus, town_article(1, detail="A new clinic opened with 12 beds."))  # changed
    (corpus / "town-002.md").unlink()  # removed
    save_article(corpus, town_article(42))  # added
    update = build_index(settings, encoders=encoders, incremental=True)

    assert (update.added, update.changed, update.removed) == (["town-042"], ["town-001"], ["town-002"])
    assert update.embedded_documents == 2 and update.documents == 6
    passages_of_changed = Engine.load(settings, encoders=encoders).source("town-001").passage_count
    passages_of_added = Engine.load(settings, encoders=encoders).source("town-042").passage_count
    assert update.embedded_passages == passages_of_changed + passages_of_added

    engine = Engine.load(settings, encoders=encoders)
    assert "12 beds" in engine.ask("How many beds does the new clinic have?").text
    assert engine.source("town-002") is None
    # Reused vectors are the same as freshly computed ones: a full build agrees with the update.
    fresh = make_settings(tmp_path / "fresh", corpus)
    build_index(fresh, encoders=encoders)
    for query in ["families returned to Homs", "water trucks in Idlib"]:
        assert [h.passage_id for h in Engine.load(fresh, encoders=encoders).search(query)] == [
            h.passage_id for h in engine.search(query)
        ]
    nothing = build_index(settings, encoders=encoders, incremental=True)
    assert nothing.embedded_documents == 0 and (nothing.added, nothing.changed, nothing.removed) == ([], [], [])


def test_a_second_build_at_the_same_time_is_told_one_is_running(tmp_path, encoders):
    settings = make_settings(tmp_path, corpus_with(tmp_path, 1))
    with build_lock(settings.index_dir):
        with pytest.raises(ReindexInProgressError, match="already running"):
            build_index(settings, encoders=encoders)


def test_a_reader_keeps_answering_while_an_update_runs(tmp_path, encoders):
    corpus = corpus_with(tmp_path, 3)
    settings = make_settings(tmp_path, corpus)
    build_index(settings, encoders=encoders)
    live = LiveEngine(settings, Engine.load(settings, encoders=encoders))
    old = live.current
    save_article(corpus, town_article(7, detail="The new mayor is Salma Idris."))

    writing = threading.Event()
    release = threading.Event()

    def progress(event):
        if event.stage == "writing":
            writing.set()
            assert release.wait(60)

    worker = threading.Thread(target=lambda: live.reindex(progress=progress))
    worker.start()
    assert writing.wait(120)
    # Mid-update: the served engine is still the old one and answers; a second re-index is refused.
    assert live.current is old and live.reindexing
    assert "families" in old.ask("How many families returned to Homs?").text
    with pytest.raises(ReindexInProgressError):
        live.reindex()
    release.set()
    worker.join(120)
    assert live.current is not old
    assert "Salma Idris" in live.current.ask("Who is the new mayor?").text
    assert old.ask("How many families returned to Homs?").answered  # the old version is still readable


BUILD_SCRIPT = """
import sys
from index.store.build import Encoders, build_index
from index.embedders import SentenceTransformerEncoder
from index.settings import Settings
settings = Settings(_env_file=None, corpus_dir=sys.argv[1], data_dir=sys.argv[2])
def progress(event):
    print(event.stage, flush=True)
build_index(settings, progress=progress, incremental=sys.argv[3] == "update")
print("finished", flush=True)
"""


def tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(path.name.encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("stage", ["reading", "splitting", "embedding", "embedding (multilingual)", "writing"])
def test_killing_a_build_leaves_the_previous_index_working(tmp_path, encoders, stage):
    corpus = corpus_with(tmp_path, 40)
    settings = make_settings(tmp_path, corpus)
    build_index(settings, encoders=encoders)
    served = current_version(settings.index_dir)
    save_article(corpus, town_article(99, detail="The bridge to the port was rebuilt."))
    corpus_before = tree_hash(corpus)

    process = subprocess.Popen(
        [sys.executable, "-c", BUILD_SCRIPT, str(corpus), str(settings.data_dir), "build"],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "MODEL_CACHE_DIR": str(MODEL_CACHE)},
    )
    stages_seen = []
    try:
        for line in process.stdout:
            stages_seen.append(line.strip())
            if line.strip() == stage:
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait(60)
    assert stages_seen[-1] == stage, f"the build never reached {stage!r}: {stages_seen}"  # else nothing was killed

    assert tree_hash(corpus) == corpus_before, "the corpus is never touched by a build"
    now = current_version(settings.index_dir)
    if stage != "writing":  # killed while writing, it may or may not have switched: either loads
        assert now == served, "the build was killed before it switched, so the served version is unchanged"
    engine = Engine.load(settings, encoders=encoders)
    assert engine.ask("How many families returned to Homs?").answered
    # The next build cleans up what the killed one left half-written.
    build_index(settings, encoders=encoders, incremental=True)
    leftovers = [p.name for p in (settings.index_dir / VERSIONS_DIR).iterdir() if p.name.startswith(".tmp-")]
    leftovers += [p.name for p in settings.index_dir.iterdir() if p.name.startswith(".CURRENT.")]
    assert leftovers == []
    assert "bridge to the port" in Engine.load(settings, encoders=encoders).ask("What was rebuilt?").text


def test_old_versions_are_cleaned_up(tmp_path, encoders):
    settings = make_settings(tmp_path, corpus_with(tmp_path, 1))
    for _ in range(4):
        build_index(settings, encoders=encoders)
    versions = [p for p in (settings.index_dir / VERSIONS_DIR).iterdir() if not p.name.startswith(".")]
    assert len(versions) == 2  # the current one and the one before, for readers still holding it


def test_a_reader_keeps_its_version_through_later_builds(tmp_path, encoders):
    corpus = corpus_with(tmp_path, 2)
    settings = make_settings(tmp_path, corpus)
    build_index(settings, encoders=encoders)
    reader = Engine.load(settings, encoders=encoders)
    held = reader.stored.folder
    for number in (10, 11, 12):
        save_article(corpus, town_article(number))
        build_index(settings, encoders=encoders, incremental=True)
    assert held.is_dir() and current_version(settings.index_dir) != held
    assert "families" in reader.ask("How many families returned to Homs?").text
    first_segment = reader.stored.segments[0]
    assert first_segment.stored_vectors("dense").shape == (first_segment.passage_count, 384)  # read lazily
    assert reader.article_text("town-000").startswith("Officials in Aleppo")
    reader.stored.close()
    build_index(settings, encoders=encoders, incremental=True)
    assert not held.exists()


def test_vectors_of_another_embedding_backend_are_not_reused(tmp_path, encoders):
    corpus = corpus_with(tmp_path, 3)
    settings = make_settings(tmp_path, corpus)
    int8 = Encoders(dense=SentenceTransformerEncoder(settings.embedding_model, backend="onnx-int8",
                                                     cache_dir=MODEL_CACHE),
                    multilingual=encoders.multilingual)
    assert int8.dense.backend == "onnx-int8" and encoders.dense.backend == "onnx"
    build_index(settings.model_copy(update={"embedding_backend": "onnx-int8"}), encoders=int8)
    assert StoredIndex.open_current(settings.index_dir).manifest.embedding_backend == "onnx-int8"

    update = build_index(settings, encoders=encoders, incremental=True)
    assert update.embedded_passages == update.passages and update.embedded_documents == 3
    assert StoredIndex.open_current(settings.index_dir).manifest.embedding_backend == "onnx"
    again = build_index(settings, encoders=encoders, incremental=True)
    assert again.embedded_passages == 0  # same backend: reused


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_an_update_over_damaged_stored_vectors_embeds_again(tmp_path, encoders, damage):
    corpus = corpus_with(tmp_path, 3)
    settings = make_settings(tmp_path, corpus)
    build_index(settings, encoders=encoders)
    vectors = StoredIndex.open_current(settings.index_dir, searchable=False).segments[0].folder / "dense.sentences.npy"
    if damage == "truncated":
        vectors.write_bytes(vectors.read_bytes()[:1000])
    else:
        vectors.unlink()
    update = build_index(settings, encoders=encoders, incremental=True)
    assert update.embedded_passages == update.passages
    assert "families" in Engine.load(settings, encoders=encoders).ask("How many families returned to Homs?").text


def test_an_update_stores_the_same_sentences_and_vectors_as_a_full_build(tmp_path, encoders):
    # An update adds a segment and hides old copies: every document must read back exactly as from a
    # build from scratch (its passages, sentences and their vectors), whatever segment holds it.
    corpus = corpus_with(tmp_path, 5)
    settings = make_settings(tmp_path, corpus)
    build_index(settings, encoders=encoders)
    save_article(corpus, town_article(1, detail="A clinic opened. It has 12 beds. Doctors came from Homs."))
    (corpus / "town-003.md").unlink()
    save_article(corpus, town_article(0, detail="Power returned."))  # the first document changes too
    save_article(corpus, town_article(9))
    build_index(settings, encoders=encoders, incremental=True)
    fresh = make_settings(tmp_path / "fresh", corpus)
    build_index(fresh, encoders=encoders)

    updated, full = StoredIndex.open_current(settings.index_dir), StoredIndex.open_current(fresh.index_dir)
    assert len(updated.segments) == 2 and len(full.segments) == 1
    assert (updated.manifest.sentences, updated.manifest.passages, updated.manifest.documents) == (
        full.manifest.sentences, full.manifest.passages, full.manifest.documents)
    assert updated.manifest.corpus_fingerprint == full.manifest.corpus_fingerprint
    assert set(updated.documents) == set(full.documents)
    for doc_id in full.documents:
        mine, theirs = updated.document_passages(doc_id), full.document_passages(doc_id)
        assert [(p.passage_id, p.start, p.end, p.text, p.sentences) for p in mine] == [
            (p.passage_id, p.start, p.end, p.text, p.sentences) for p in theirs]
        assert updated.document_sentences(doc_id) == full.document_sentences(doc_id)
        for space in ("dense", "multilingual"):
            assert np.allclose(getattr(updated, space).reconstruct_batch([p.row for p in mine]),
                               getattr(full, space).reconstruct_batch([p.row for p in theirs]), atol=1e-5)
            mine_rows = [r for p in mine for r in p.sentence_rows]
            theirs_rows = [r for p in theirs for r in p.sentence_rows]
            assert np.allclose(getattr(updated, f"{space}_sentences")[mine_rows],
                               getattr(full, f"{space}_sentences")[theirs_rows], atol=1e-5)
