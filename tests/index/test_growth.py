"""Growing an index in proportion to what is new: segments, tombstones, merges (index/store/segments.py).

The articles are invented: towns, outlets and events that do not exist.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index.engine import Engine
from index.retrieval.question import parse_question
from index.sources.corpus import Article, save_article
from index.store.build import add_articles, build_index
from index.store.files import CURRENT_FILE, MAX_SEGMENTS, VERSIONS_DIR, StoredIndex, current_version
from index.store.merge import compact_index, merge_plan
from index.store.segments import SEGMENTS_DIR, Segment
from tests.conftest import MODEL_CACHE, make_settings

TOWNS = ["Velmora", "Ostrikan", "Pellacor", "Brunaval", "Tesswick", "Quarnby", "Ludrecht", "Saffanor",
         "Orvelle", "Kantrip", "Mirrowdale", "Estravan", "Holbeck Minor", "Varrowgate", "Drummond Vale"]
TRADES = ["ferry", "tram", "granary", "lighthouse", "observatory", "mill", "foundry", "orchard", "library",
          "harbour crane", "bell tower", "glassworks", "salt pans", "weather station", "cable car"]


def invented_article(number: int, detail: str = "") -> Article:
    """An invented local news story; each number gives other words and figures, so rankings have no ties."""
    town, trade = TOWNS[number % len(TOWNS)], TRADES[(number * 7) % len(TRADES)]
    text = (f"The {trade} of {town} reopened on day {number + 3} after {number * 11 + 5} volunteers "
            f"repaired it over {number % 9 + 2} weeks. The council of {town} said the {trade} had been closed "
            f"since a storm numbered {1000 + number * 37}. {detail}\n\n"
            f"Residents of {town} marked the reopening of the {trade} with a supper for {number * 3 + 40} guests.")
    return Article(doc_id=f"story-{number:04d}", title=f"{town} {trade} reopens ({number})", text=text.strip(),
                   source="The Invented Courier", url=f"https://courier.invalid/{number}", published="2026-03-01")


def corpus_of(folder: Path, numbers) -> Path:
    for number in numbers:
        save_article(folder, invented_article(number))
    return folder


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under `folder`: (inode, size, modification time)."""
    out = {}
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            out[str(path.relative_to(folder))] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return out


def scores_by_passage(engine: Engine, query: str) -> dict[str, dict[str, float]]:
    """What each retriever scores every passage for `query`, by passage id (row numbers differ between
    layouts, and so does the order of equal scores)."""
    stored = engine.stored
    terms = parse_question(query).retrieval_terms
    bm25 = stored.lexicon.scores(terms, stored.passage_count)
    title = stored.titles.scores(terms, int(stored.title_of_row.max(initial=-1)) + 1)[stored.title_of_row]
    out: dict[str, dict[str, float]] = {"bm25": {}, "title": {}, "dense": {}, "multilingual": {}}
    rows = [int(r) for r in np.flatnonzero(bm25)] + [int(r) for r in np.flatnonzero(title)]
    for space, index, encoder in (("dense", stored.dense, engine.encoders.dense),
                                  ("multilingual", stored.multilingual, engine.encoders.multilingual)):
        found = index.search(encoder.encode_queries([query])[0], stored.manifest.passages)
        assert len(found) == stored.manifest.passages  # every served passage, none hidden
        rows += [row for row, _ in found]
        out[space] = dict(found)
    records = stored.passages(sorted(set(rows)))
    out["bm25"] = {records[r].passage_id: float(bm25[r]) for r in np.flatnonzero(bm25)}
    out["title"] = {records[r].passage_id: float(title[r]) for r in np.flatnonzero(title)}
    for space in ("dense", "multilingual"):
        out[space] = {records[r].passage_id: score for r, score in out[space].items()}
    return out


def assert_same_scores(engine: Engine, reference: Engine, query: str) -> None:
    mine, theirs = scores_by_passage(engine, query), scores_by_passage(reference, query)
    for retriever in ("bm25", "title", "dense", "multilingual"):
        assert mine[retriever].keys() == theirs[retriever].keys(), (query, retriever)
        assert mine[retriever] == pytest.approx(theirs[retriever], abs=1e-5), (query, retriever)


QUERIES = ["Which ferry reopened in Velmora?", "volunteers repaired the lighthouse", "storm numbered 1074",
           "supper for guests in Quarnby", "How long was the granary closed?", "glassworks council"]


# --- Adding writes only what is new -----------------------------------------------------------------


def test_adding_one_article_writes_the_same_little_whatever_the_size_of_the_index(tmp_path, encoders):
    written = {}
    for size in (30, 300):
        settings = make_settings(tmp_path / f"base-{size}", corpus_of(tmp_path / f"corpus-{size}", range(size)))
        build_index(settings, encoders=encoders)
        before = snapshot(settings.index_dir)
        report = add_articles(settings, [invented_article(5000, "A new ferry timetable starts in May.")],
                              encoders=encoders)
        after = snapshot(settings.index_dir)
        assert report.added == ["story-5000"] and report.embedded_documents == 1 and report.documents == size + 1
        created = {path: after[path][1] for path in after.keys() - before.keys()}
        touched = {path for path in after.keys() & before.keys() if after[path] != before[path]}
        assert touched == {CURRENT_FILE}, "no file of the existing index is rewritten, only CURRENT replaced"
        # One new segment (its SQLite, FAISS indexes, vectors, postings) and one new version.
        assert {Path(p).parts[0] for p in created} == {SEGMENTS_DIR, VERSIONS_DIR}
        assert len({Path(p).parts[1] for p in created if p.startswith(SEGMENTS_DIR)}) == 1
        written[size] = (len(created), sum(created.values()), sum(size for _, size, _ in before.values()))
    (files_30, bytes_30, base_30), (files_300, bytes_300, base_300) = written[30], written[300]
    assert base_300 > 5 * base_30, "the bigger index is much bigger"
    assert files_300 == files_30, "the same files are written whatever the size of the index"
    assert bytes_300 <= bytes_30 * 1.1 + 2048, f"bytes written grew with the index: {bytes_30} → {bytes_300}"
    assert bytes_300 < base_300 / 20


def test_adding_reads_neither_the_corpus_nor_the_index_s_other_documents(tmp_path, encoders, monkeypatch):
    settings = make_settings(tmp_path, corpus_of(tmp_path / "corpus", range(20)))
    build_index(settings, encoders=encoders)

    def forbidden(*_args, **_kwargs):
        raise AssertionError("an addition read more than what it adds")

    monkeypatch.setattr("index.store.build.load_corpus", forbidden)
    monkeypatch.setattr(Segment, "documents", property(forbidden))
    report = add_articles(settings, [invented_article(700), invented_article(3, detail="A second ferry came.")],
                          encoders=encoders)
    assert (report.added, report.changed, report.documents) == (["story-0700"], ["story-0003"], 21)
    monkeypatch.undo()
    stored = StoredIndex.open_current(settings.index_dir, searchable=False)
    assert stored.manifest.documents == len(stored.documents) == 21
    assert stored.manifest.passages == sum(d.passage_count for d in stored.documents.values())
    stored.close()


def test_answers_see_an_added_article_and_still_see_the_rest(tmp_path, encoders):
    settings = make_settings(tmp_path, corpus_of(tmp_path / "corpus", range(12)))
    build_index(settings, encoders=encoders)
    news = Article(doc_id="brennick-bridge", title="Brennick opens a rope bridge",
                   text="The village of Brennick opened a rope bridge 212 metres long over the Sallow gorge. "
                        "The bridge took 19 months to build and cost 4.1 million crowns.",
                   source="The Invented Courier", published="2026-03-05")
    report = add_articles(settings, [news], encoders=encoders)
    assert report.segments == 2
    engine = Engine.load(settings, encoders=encoders)
    answer = engine.ask("How long is the rope bridge in Brennick?")
    assert answer.answered and "212 metres" in answer.text
    assert engine.source("brennick-bridge").title == "Brennick opens a rope bridge"
    assert "volunteers" in engine.ask("How many volunteers repaired the ferry in Velmora?").text
    assert len(engine.sources()) == 13
    # Adding the same text again changes nothing; a new text for the same id replaces the old one.
    again = add_articles(settings, [news], encoders=encoders)
    assert again.embedded_documents == 0 and again.documents == 13
    changed = Article(**{**news.__dict__, "text": news.text.replace("212", "230")})
    assert add_articles(settings, [changed], encoders=encoders).changed == ["brennick-bridge"]
    engine = Engine.load(settings, encoders=encoders)
    assert "230 metres" in engine.ask("How long is the rope bridge in Brennick?").text
    assert not any("212" in h.text for h in engine.search("rope bridge Brennick metres", k=10))


def test_removing_or_changing_an_article_hides_the_old_text(tmp_path, encoders):
    corpus = corpus_of(tmp_path / "corpus", range(10))
    settings = make_settings(tmp_path, corpus)
    build_index(settings, encoders=encoders)
    (corpus / "story-0004.md").unlink()  # the Tesswick story
    save_article(corpus, invented_article(2, detail="The cable car now also carries bicycles."))
    report = build_index(settings, encoders=encoders, incremental=True)
    assert (report.removed, report.changed, report.embedded_documents) == (["story-0004"], ["story-0002"], 1)

    engine = Engine.load(settings, encoders=encoders)
    stored = engine.stored
    assert engine.source("story-0004") is None and len(engine.sources()) == 9
    assert all(h.doc_id != "story-0004" for h in engine.search("Tesswick", k=10))
    assert all(h.doc_id != "story-0004" for h in engine.search("What reopened in Tesswick?", k=20))
    # Hidden passages count for nothing in BM25 statistics: the word is as unknown as one never seen.
    assert not engine.searcher.known("tesswick") and engine.searcher.idf("tesswick") == engine.searcher.unseen_idf
    assert stored.passage_count > stored.manifest.passages  # the old rows are still on disk, hidden
    hits = engine.search("bicycles on the cable car", k=10)
    assert hits[0].doc_id == "story-0002" and "bicycles" in hits[0].text
    # Only the new copy's passages are found, never the hidden old ones.
    first, last = stored.doc_rows("story-0002")
    assert all(first <= h.passage.row < last for h in engine.search("cable car Pellacor", k=20)
               if h.doc_id == "story-0002")


# --- The same ranking, however many segments ------------------------------------------------------


def test_segments_and_merges_rank_exactly_as_one_build(tmp_path, encoders):
    corpus = corpus_of(tmp_path / "corpus", range(8))
    settings = make_settings(tmp_path / "grown", corpus)
    build_index(settings, encoders=encoders)
    merges = 0
    for number in range(8, 8 + MAX_SEGMENTS + 3):  # one at a time: past MAX_SEGMENTS, neighbours merge
        article = invented_article(number)
        save_article(corpus, article)
        merges += add_articles(settings, [article], encoders=encoders).merged_segments
    (corpus / "story-0003.md").unlink()
    save_article(corpus, invented_article(9, detail="Its roof was painted red."))
    build_index(settings, encoders=encoders, incremental=True)
    grown = Engine.load(settings, encoders=encoders)
    assert merges > 0 and 2 < len(grown.stored.segments) <= MAX_SEGMENTS

    single = make_settings(tmp_path / "single", corpus)
    build_index(single, encoders=encoders)
    one = Engine.load(single, encoders=encoders)
    assert len(one.stored.segments) == 1
    for query in QUERIES + ["red roof"]:
        assert_same_scores(grown, one, query)
    assert scores_by_passage(grown, "Velmora ferry")["title"], "titles take part in the comparison"
    assert grown.ask("Which roof was painted red?").text == one.ask("Which roof was painted red?").text

    compact_index(settings.index_dir)
    compacted = Engine.load(settings, encoders=encoders)
    assert len(compacted.stored.segments) == 1
    assert compacted.stored.passage_count == compacted.stored.manifest.passages  # hidden rows dropped
    for query in QUERIES:
        assert_same_scores(compacted, one, query)


def test_merge_plan_merges_the_smallest_neighbours_only_past_the_limit():
    assert merge_plan([500, 3, 2, 1], 8) is None
    assert merge_plan([500, 40, 20, 10, 5, 3, 2, 1, 1], 8) == range(7, 9)
    assert merge_plan([500, 4, 1, 1, 9, 9, 9, 9, 9], 8) == range(2, 4)
    # A big first segment is merged only once the others are as big as it.
    sizes = [1000]
    for _ in range(300):
        sizes.append(1)
        while (run := merge_plan(sizes, 8)) is not None:
            sizes[run.start:run.stop] = [sum(sizes[run.start:run.stop])]
        assert sizes[0] == 1000 and len(sizes) <= 8
    assert sum(sizes) == 1300


# --- Crashes ------------------------------------------------------------------------------------


ADD_AND_DIE = """
import os, signal, sys
from index.settings import Settings
from index.sources.corpus import Article
from index.store import files
from index.store.build import add_articles
settings = Settings(_env_file=None, corpus_dir=sys.argv[1], data_dir=sys.argv[2], model_cache_dir=sys.argv[3])
# Killed at the worst moment: the new segment and version are in place, CURRENT not yet switched.
files._set_current = lambda root, name: os.kill(os.getpid(), signal.SIGKILL)
add_articles(settings, [Article(doc_id="late-news", title="Orvelle tram returns",
                                text="The tram of Orvelle returned to service with 6 new carriages.")])
"""


def test_a_process_killed_while_adding_leaves_the_old_version_serving(tmp_path, encoders):
    corpus = corpus_of(tmp_path / "corpus", range(6))
    settings = make_settings(tmp_path, corpus)
    build_index(settings, encoders=encoders)
    served = current_version(settings.index_dir)
    segments_before = sorted(p.name for p in (settings.index_dir / SEGMENTS_DIR).iterdir())

    killed = subprocess.run([sys.executable, "-c", ADD_AND_DIE, str(corpus), str(settings.data_dir), str(MODEL_CACHE)],
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert len(list((settings.index_dir / SEGMENTS_DIR).iterdir())) == len(segments_before) + 1  # written, unnamed

    assert current_version(settings.index_dir) == served
    engine = Engine.load(settings, encoders=encoders)
    assert engine.source("late-news") is None
    assert "volunteers" in engine.ask("How many volunteers repaired the ferry in Velmora?").text
    # The next addition removes what the killed one left, and adds its own.
    add_articles(settings, [invented_article(77)], encoders=encoders)
    stored = StoredIndex.open_current(settings.index_dir, searchable=False)
    on_disk = sorted(p.name for p in (settings.index_dir / SEGMENTS_DIR).iterdir())
    assert on_disk == sorted(ref.name for ref in stored.refs), "only segments a version names remain"
    assert "late-news" not in stored.documents and "story-0077" in stored.documents
    stored.close()


def test_a_failed_addition_changes_nothing(tmp_path, encoders, monkeypatch):
    settings = make_settings(tmp_path, corpus_of(tmp_path / "corpus", range(4)))
    build_index(settings, encoders=encoders)
    before = snapshot(settings.index_dir)

    def disk_full(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("index.store.files._set_current", disk_full)
    with pytest.raises(OSError, match="No space left"):
        add_articles(settings, [invented_article(50)], encoders=encoders)
    monkeypatch.undo()
    assert Engine.load(settings, encoders=encoders).source("story-0050") is None
    add_articles(settings, [invented_article(51)], encoders=encoders)
    after = snapshot(settings.index_dir)
    assert all(after[p] == before[p] for p in before if p in after and p != CURRENT_FILE)


def test_verbatim_index_merge_compacts_to_one_segment(tmp_path, encoders):
    from tests.index.test_cli import run as run_cli

    corpus = corpus_of(tmp_path / "corpus", range(5))
    settings = make_settings(tmp_path, corpus)
    build_index(settings, encoders=encoders)
    add_articles(settings, [invented_article(40)], encoders=encoders)
    add_articles(settings, [invented_article(2, detail="Its fares were halved.")], encoders=encoders)
    status = json.loads(run_cli(["index", "status", "--json"], settings).stdout)
    assert status["index"]["segments"] == 3 and status["index"]["documents"] == 6

    merged = run_cli(["index", "merge"], settings)
    assert merged.returncode == 0, merged.stderr
    assert "Merged 3 segment(s) into one" in merged.stdout
    stored = StoredIndex.open_current(settings.index_dir, searchable=False)
    assert len(stored.segments) == 1 and len(stored.documents) == 6
    assert stored.passage_count == stored.manifest.passages  # the replaced copy of story-0002 is gone
    stored.close()
    assert "fares were halved" in Engine.load(settings, encoders=encoders).ask("What happened to the fares?").text
