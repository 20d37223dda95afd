"""Merging segments: fewer, larger segments, without what tombstones hide, and nothing embedded again."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from index.errors import IndexCorruptError
from index.sources.corpus import Article
from index.sources.passages import Passage, Span
from index.store.files import Manifest, SegmentRef, StoredIndex, build_lock, commit_version
from index.store.segments import (
    LEXICON_DIR,
    SEGMENTS_DIR,
    Postings,
    Segment,
    SegmentContent,
    SentenceRecord,
    write_segment,
)
from index.store.vectors import VectorIndex, VectorIndexPolicy, describe_vector_index


def merge_plan(sizes: Sequence[int], most: int) -> range | None:
    """Which neighbouring segments to merge, or None while there are at most `most`.

    The pair of neighbours with the fewest passages together (the newest pair on a tie): like a binary
    counter, segments grow by doubling, so a passage is copied about log2(additions) times, and the big
    segment of a full build is rewritten only once the rest has grown about as large.
    """
    if len(sizes) <= most:
        return None
    pair = min(range(len(sizes) - 1), key=lambda i: (sizes[i] + sizes[i + 1], -i))
    return range(pair, pair + 2)


def merge_segments(root: Path, refs: Sequence[SegmentRef], manifest: Manifest,
                   policy: VectorIndexPolicy | None = None) -> tuple[str, VectorIndex]:
    """Write one segment holding what `refs` serve, in order. Texts, vectors and BM25 postings are
    copied: nothing is embedded or analysed again. Returns its name and its dense index."""
    parts = [Segment(root / SEGMENTS_DIR / ref.name, dimension=manifest.dimension,
                     multilingual_dimension=manifest.multilingual_dimension, searchable=False) for ref in refs]
    try:
        content = merged_content([(part, ref.hidden) for part, ref in zip(parts, refs, strict=True)],
                                 multilingual=manifest.multilingual_model is not None)
        return write_segment(root, content, policy)
    finally:
        for part in parts:
            part.close()


def merged_content(parts: Sequence[tuple[Segment, frozenset[str]]], *, multilingual: bool) -> SegmentContent:
    articles: list[Article] = []
    passages: list[Passage] = []
    sentences: list[SentenceRecord] = []
    names = ("dense", "dense.sentences", *(("multilingual", "multilingual.sentences") if multilingual else ()))
    vectors: dict[str, list[np.ndarray]] = {name: [] for name in names}
    vocabulary: dict[str, int] = {}
    term_ids: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    row_base = 0
    for segment, hidden in parts:
        documents = {d.doc_id: d for d in segment.documents.values() if d.doc_id not in hidden}
        live_passages = np.zeros(segment.passage_count, dtype=bool)
        live_sentences = np.zeros(segment.sentence_count, dtype=bool)
        for info in documents.values():
            live_passages[info.first_row:info.first_row + info.passage_count] = True
            live_sentences[info.first_sentence_row:info.first_sentence_row + info.sentence_count] = True
        articles.extend(segment.articles(list(documents)))
        for r in sorted(segment.passages(np.flatnonzero(live_passages).tolist())):
            passages.append(Passage(r[1], r[2], r[3], r[4], r[5], r[6], tuple(Span(s, e) for s, e in json.loads(r[7])),
                                    r[8] - documents[r[2]].first_sentence_row))
        every_sentence = segment.sentences(0, segment.sentence_count)
        sentences.extend(s for s, live in zip(every_sentence, live_sentences, strict=True) if live)
        for name in names:
            stored = segment.stored_vectors(name)
            if stored is None:
                raise IndexCorruptError(f"{segment.folder}/{name}.npy can no longer be read. "
                                        "Rebuild with `verbatim index build`.")
            vectors[name].append(np.asarray(stored[live_sentences if name.endswith(".sentences") else live_passages]))
        # BM25 postings are renumbered, not recounted: the merged segment's terms are its parts' terms.
        postings = Postings.load(segment.folder / LEXICON_DIR)
        posting_rows = np.asarray(postings.rows)
        keep = live_passages[posting_rows]
        new_row = np.cumsum(live_passages) - 1 + row_base
        to_merged = np.asarray([vocabulary.setdefault(t, len(vocabulary)) for t in postings.terms], dtype=np.int64)
        term_ids.append(to_merged[postings.term_rows()[keep]])
        rows.append(new_row[posting_rows[keep]])
        counts.append(np.asarray(postings.counts)[keep])
        lengths.append(np.asarray(postings.lengths)[live_passages])
        row_base += int(live_passages.sum())

    def stacked(name: str) -> np.ndarray | None:
        return np.concatenate(vectors[name]) if name in vectors else None

    return SegmentContent(
        articles=articles, passages=passages, sentences=sentences, dense=np.concatenate(vectors["dense"]),
        multilingual=stacked("multilingual"), dense_sentences=np.concatenate(vectors["dense.sentences"]),
        multilingual_sentences=stacked("multilingual.sentences"),
        postings=Postings.from_triples(list(vocabulary), np.concatenate(term_ids), np.concatenate(rows),
                                       np.concatenate(counts), np.concatenate(lengths)),
    )


def compact_index(root: Path, policy: VectorIndexPolicy | None = None) -> Path:
    """Merge every segment of the current version into one, dropping what tombstones hide
    (`verbatim index merge`). Returns the new version's folder."""
    with build_lock(root):
        previous = StoredIndex.open_current(root, searchable=False)
        try:
            name, dense = merge_segments(root, previous.refs, previous.manifest, policy)
            manifest = replace(previous.manifest, vector_index=describe_vector_index(dense),
                               built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
            return commit_version(root, manifest, [SegmentRef(name)])
        finally:
            previous.close()
