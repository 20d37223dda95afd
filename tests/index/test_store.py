"""The on-disk index without models: versions written from made-up vectors, then opened, switched and removed."""

from __future__ import annotations

import gc
import json
import os
import sqlite3
from pathlib import Path

import faiss
import numpy as np
import pytest

from index.errors import IndexCorruptError, IndexFormatError, IndexMismatchError
from index.sources.corpus import Article
from index.sources.passages import Passage, Span
from index.store import files as store
from index.store.files import (
    CURRENT_FILE,
    INDEX_FORMAT,
    VERSIONS_DIR,
    IndexContent,
    Manifest,
    SentenceRecord,
    StoredIndex,
    build_lock,
    current_version,
    fingerprint,
    write_version,
)
from index.store.segments import SEGMENTS_DIR, Postings, SegmentContent
from index.store.vectors import VectorIndexPolicy, unwrap


def synthetic_content(documents: int = 4, per_document: int = 3, dimension: int = 8,
                      multilingual_dimension: int | None = 6, seed: int = 0,
                      model: str = "all-MiniLM-L6-v2") -> IndexContent:
    """A small but complete version: articles, passages and random unit vectors."""
    articles, passages, sentence_records = [], [], []
    for d in range(documents):
        sentences = [f"Sentence {p} of document {d} says something." for p in range(per_document)]
        text = " ".join(sentences)
        articles.append(Article(doc_id=f"doc-{d}", title=f"Document {d}", text=text, source="Test"))
        start = 0
        for p, sentence in enumerate(sentences):
            end = start + len(sentence)
            passages.append(Passage(f"doc-{d}#{p}", f"doc-{d}", p, start, end, sentence, (Span(start, end),), p))
            sentence_records.append(SentenceRecord(f"doc-{d}", start, end, len(sentence.split())))
            start = end + 1
    rng = np.random.default_rng(seed)

    def unit(width: int) -> np.ndarray:
        vectors = rng.normal(size=(len(passages), width)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    manifest = Manifest(
        model=model, dimension=dimension, multilingual_model="usem3" if multilingual_dimension else None,
        multilingual_dimension=multilingual_dimension, passage_max_tokens=128, passage_overlap_sentences=1,
        corpus_fingerprint=fingerprint(articles), built_at="2025-05-01T00:00:00+00:00", documents=len(articles),
        passages=len(passages), build_seconds=0.1, verbatim_version="test", embedding_backend="onnx",
        sentences=len(sentence_records),
    )
    # One sentence a passage: a passage's vector is its sentence's.
    dense = unit(dimension)
    multilingual = unit(multilingual_dimension) if multilingual_dimension else None
    return IndexContent(manifest=manifest, segment=SegmentContent(
        articles=articles, passages=passages, sentences=sentence_records, dense=dense, multilingual=multilingual,
        dense_sentences=dense, multilingual_sentences=multilingual,
        postings=Postings.from_terms([p.text.lower().split() for p in passages])))


def set_manifest(folder: Path, key: str, value: object) -> None:
    with sqlite3.connect(folder / "store.sqlite") as db:
        db.execute("INSERT OR REPLACE INTO manifest VALUES (?, ?)", (key, json.dumps(value)))


def drop_manifest_key(folder: Path, key: str) -> None:
    with sqlite3.connect(folder / "store.sqlite") as db:
        db.execute("DELETE FROM manifest WHERE key = ?", (key,))


def version_names(root: Path) -> list[str]:
    return sorted(p.name for p in (root / VERSIONS_DIR).iterdir())


def segment_names(root: Path) -> list[str]:
    return sorted(p.name for p in (root / SEGMENTS_DIR).iterdir())


def current_segment(root: Path) -> Path:
    """The folder of the current version's only segment (write_version writes one)."""
    (ref,) = store.read_segment_refs(current_version(root))
    return root / SEGMENTS_DIR / ref.name


# --- Switching versions durably -----------------------------------------------------------------


def test_the_renamed_version_is_durable_before_current_names_it(tmp_path, monkeypatch):
    root = tmp_path / "index"
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def recording_fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def recording_replace(source, target) -> None:
        events.append(("replace", str(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    final = write_version(root, synthetic_content())

    renamed = events.index(("replace", str(final)))
    switched = events.index(("replace", str(root / CURRENT_FILE)))
    assert renamed < switched
    synced_between = [path for kind, path in events[renamed:switched] if kind == "fsync"]
    assert str(root / VERSIONS_DIR) in synced_between, "the rename must be fsynced before CURRENT switches"
    # The first build also creates the versions folder: its entry in the root is synced first too.
    assert ("fsync", str(root)) in events[:switched]
    # Every file of the version was synced before the rename.
    synced_before = {path for kind, path in events[:renamed] if kind == "fsync"}
    assert any(path.endswith("store.sqlite") for path in synced_before)
    assert any(path.endswith("dense.faiss") for path in synced_before)


# --- Leftovers of killed builds -------------------------------------------------------------------


def test_leftovers_of_a_killed_build_are_removed_when_the_next_build_starts(tmp_path):
    root = tmp_path / "index"
    served = write_version(root, synthetic_content())
    versions = root / VERSIONS_DIR
    staging = versions / ".tmp-20250101T000000000000-abcdef"  # killed while writing
    (staging / "bm25").mkdir(parents=True)
    (staging / "dense.npy").write_bytes(b"half")
    (versions / ".tmp-junk").write_text("not even a folder")
    (root / f".{CURRENT_FILE}.abc123").write_text("20990101T000000000000-abcdef\n")  # killed before switching
    # Killed after renaming its version into place but before switching CURRENT: never served.
    unswitched = versions / "29991231T235959999999-abcdef"
    unswitched.mkdir()
    (unswitched / "store.sqlite").write_bytes(b"")
    served_segments = segment_names(root)
    (root / SEGMENTS_DIR / ".tmp-20250101T000000000000-abcdef" / "lexicon").mkdir(parents=True)  # half-written
    (root / SEGMENTS_DIR / "29991231T235959999999-fedcba").mkdir()  # written, but no version names it

    with build_lock(root):
        assert version_names(root) == [served.name]
        assert segment_names(root) == served_segments
        assert [p.name for p in root.iterdir() if p.name.startswith(f".{CURRENT_FILE}.")] == []
    # Nothing of it stands in the way of the next version, and the served one still opens.
    assert StoredIndex.open_current(root).manifest.passages == 12
    newer = write_version(root, synthetic_content(seed=1))
    assert current_version(root) == newer and version_names(root) == sorted([served.name, newer.name])


# --- What CURRENT may name --------------------------------------------------------------------------


@pytest.mark.parametrize("pointer", [b"../../elsewhere/version", b"ABSOLUTE", b"", b"\xff\xfe\x00garbage",
                                     b".hidden", b"20250101T000000000000-abcdef/../../../elsewhere/version"],
                         ids=["parent", "absolute", "empty", "garbage", "dot-file", "traversal"])
def test_current_must_name_a_version_folder(tmp_path, pointer):
    root = tmp_path / "index"
    write_version(root, synthetic_content())
    # A complete index outside the versions folder, which a crafted CURRENT could otherwise point at.
    elsewhere = write_version(tmp_path / "elsewhere-root", synthetic_content(seed=3))
    (tmp_path / "elsewhere").mkdir()
    os.symlink(elsewhere, tmp_path / "elsewhere" / "version")
    if pointer == b"ABSOLUTE":
        pointer = str(tmp_path / "elsewhere" / "version").encode()
    (root / CURRENT_FILE).write_bytes(pointer)
    with pytest.raises(IndexCorruptError, match="verbatim index build"):
        StoredIndex.open_current(root)
    with pytest.raises(IndexCorruptError, match="does not name an index version"):
        current_version(root)
    before = version_names(root)
    with build_lock(root):  # a build does not remove anything while it cannot tell which version is good
        pass
    assert version_names(root) == before


# --- Readers keep their version -----------------------------------------------------------------


def test_a_version_held_by_a_reader_outlives_later_builds(tmp_path):
    root = tmp_path / "index"
    first = write_version(root, synthetic_content(seed=0))
    reader = StoredIndex.open_current(root)
    for seed in (1, 2, 3):
        write_version(root, synthetic_content(seed=seed))
    assert first.is_dir()
    assert reader.passages([0, 11])[11].text == "Sentence 2 of document 3 says something."
    vectors = reader.segments[0].stored_vectors("dense")  # read lazily, long after opening
    assert vectors is not None and vectors.shape == (12, 8)
    assert reader.dense.search(vectors[0], 1) == [(0, pytest.approx(1.0))]
    assert len(segment_names(root)) == 3  # the reader's, the current version's and the one before's
    reader.close()
    latest = write_version(root, synthetic_content(seed=4))
    assert not first.exists()
    assert len(version_names(root)) == 2 and current_version(root) == latest
    assert len(segment_names(root)) == 2, "a segment no version names any more is removed"


def test_a_reader_dropped_without_closing_lets_its_version_go(tmp_path):
    root = tmp_path / "index"
    first = write_version(root, synthetic_content(seed=0))
    reader = StoredIndex.open_current(root)
    write_version(root, synthetic_content(seed=1))
    write_version(root, synthetic_content(seed=2))
    assert first.is_dir()
    del reader
    gc.collect()
    write_version(root, synthetic_content(seed=3))
    assert not first.exists()


def test_a_reader_that_read_current_just_before_a_switch_opens_the_new_version(tmp_path, monkeypatch):
    root = tmp_path / "index"
    removed = write_version(root, synthetic_content(seed=0))
    for seed in (1, 2):
        latest = write_version(root, synthetic_content(seed=seed))
    assert not removed.exists()
    names = iter([removed.name])
    real = store.current_name
    # The first read of CURRENT returns what it held before the builds: a version gone since.
    monkeypatch.setattr(store, "current_name", lambda r: next(names, None) or real(r))
    assert StoredIndex.open_current(root).folder == latest


# --- Search depth is a query-time setting -------------------------------------------------------------


def test_nprobe_and_ef_search_apply_when_an_index_is_opened(tmp_path):
    content = synthetic_content(documents=100, per_document=4)  # 400 vectors: 10 IVF lists
    ivf_root = tmp_path / "ivf"
    write_version(ivf_root, content, VectorIndexPolicy(kind="ivf", ivf_nprobe=2))
    for nprobe in (3, 7):
        opened = StoredIndex.open_current(ivf_root, policy=VectorIndexPolicy(ivf_nprobe=nprobe))
        assert faiss.extract_index_ivf(unwrap(opened.dense.parts[0])).nprobe == nprobe
        assert faiss.extract_index_ivf(unwrap(opened.multilingual.parts[0])).nprobe == nprobe
        opened.close()
    widest = StoredIndex.open_current(ivf_root, policy=VectorIndexPolicy(ivf_nprobe=1000))
    assert faiss.extract_index_ivf(unwrap(widest.dense.parts[0])).nprobe == 10  # never more than there are lists
    as_built = StoredIndex.open_current(ivf_root)
    assert faiss.extract_index_ivf(unwrap(as_built.dense.parts[0])).nprobe == 2

    hnsw_root = tmp_path / "hnsw"
    write_version(hnsw_root, content, VectorIndexPolicy(kind="hnsw", hnsw_ef_search=50))
    for ef_search in (17, 300):
        opened = StoredIndex.open_current(hnsw_root, policy=VectorIndexPolicy(hnsw_ef_search=ef_search))
        assert unwrap(opened.dense.parts[0]).hnsw.efSearch == ef_search
        opened.close()


# --- The manifest: format, fields and types --------------------------------------------------------


@pytest.mark.parametrize("stored_format, word", [(INDEX_FORMAT - 1, "an older"), (INDEX_FORMAT + 1, "a newer")])
def test_an_index_of_another_format_is_refused_with_what_to_do(tmp_path, stored_format, word):
    root = tmp_path / "index"
    folder = write_version(root, synthetic_content())
    set_manifest(folder, "format", stored_format)
    with pytest.raises(IndexFormatError) as raised:
        StoredIndex.open_current(root)
    assert str(raised.value) == (
        f"This index was built by {word} version of Verbatim (format {stored_format}, this version reads "
        f"{INDEX_FORMAT}). Rebuild it with `verbatim index build`."
    )
    assert isinstance(raised.value, IndexMismatchError)
    with pytest.raises(IndexFormatError):
        StoredIndex.open_current(root, searchable=False)


def test_an_index_without_a_format_is_from_an_older_version(tmp_path):
    root = tmp_path / "index"
    drop_manifest_key(write_version(root, synthetic_content()), "format")
    with pytest.raises(IndexFormatError, match="an older version of Verbatim .format none recorded"):
        StoredIndex.open_current(root)


def test_fields_from_a_newer_version_give_the_format_message_not_a_crash(tmp_path):
    root = tmp_path / "index"
    set_manifest(write_version(root, synthetic_content()), "chunker", "semantic-v2")
    with pytest.raises(IndexFormatError, match="a newer version of Verbatim .* fields chunker.*verbatim index build"):
        StoredIndex.open_current(root)


@pytest.mark.parametrize("key, value", [("dimension", "8"), ("passages", True), ("model", None),
                                        ("multilingual_dimension", 6.5), ("build_seconds", "fast"),
                                        ("format", "1")])
def test_a_manifest_value_of_the_wrong_type_is_reported(tmp_path, key, value):
    root = tmp_path / "index"
    set_manifest(write_version(root, synthetic_content()), key, value)
    with pytest.raises(IndexCorruptError, match=f"{key}.*verbatim index build"):
        StoredIndex.open_current(root)


def test_a_manifest_missing_a_required_field_is_reported(tmp_path):
    root = tmp_path / "index"
    drop_manifest_key(write_version(root, synthetic_content()), "dimension")
    with pytest.raises(IndexCorruptError, match="no 'dimension'.*verbatim index build"):
        StoredIndex.open_current(root)


def test_a_manifest_from_before_the_backend_was_recorded_still_opens(tmp_path):
    root = tmp_path / "index"
    drop_manifest_key(write_version(root, synthetic_content()), "embedding_backend")
    assert StoredIndex.open_current(root).manifest.embedding_backend == "unknown"


# --- Files that do not match the manifest ----------------------------------------------------------


def test_a_missing_multilingual_index_is_reported_not_ignored(tmp_path):
    root = tmp_path / "index"
    write_version(root, synthetic_content())
    (current_segment(root) / "multilingual.faiss").unlink()
    with pytest.raises(IndexCorruptError, match="multilingual.faiss.*verbatim index build"):
        StoredIndex.open_current(root)


def test_vectors_that_do_not_match_the_manifest_are_reported(tmp_path):
    root = tmp_path / "index"
    write_version(root, synthetic_content())
    with sqlite3.connect(current_segment(root) / "store.sqlite") as db:
        db.execute("UPDATE segment SET value = 13 WHERE key = 'passages'")
    with pytest.raises(IndexCorruptError, match="dense.faiss holds 12 vectors"):
        StoredIndex.open_current(root)


@pytest.mark.parametrize("damage", ["missing", "truncated", "wrong shape", "not numpy"])
def test_raw_vectors_that_cannot_be_trusted_are_not_reused(tmp_path, damage):
    root = tmp_path / "index"
    write_version(root, synthetic_content())
    path = current_segment(root) / "dense.npy"
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "wrong shape":
        np.save(path, np.zeros((5, 8), dtype=np.float32))
    else:
        path.write_bytes(b"garbage" * 50)
    stored = StoredIndex.open_current(root, searchable=False)
    assert stored.segments[0].stored_vectors("dense") is None
    assert stored.segments[0].stored_vectors("multilingual").shape == (12, 6)
