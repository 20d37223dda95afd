"""Query latency, recall, start-up time and memory at 10k, 100k and 1M passages, flat against approximate.

    .venv/bin/python -m benchmarks.scale [--sizes 10k,100k,1M] [--kinds flat,hnsw,ivf] [--queries 100]

For each size it writes (once; kept under var/bench/) a real index version: synthetic passages made
of SciFact sentences (see benchmarks/common.py), their MiniLM and multilingual vectors, SQLite,
BM25, and one dense FAISS file per index kind. Then, for each kind, a fresh process loads the
engine (the default embedder and the multilingual model included) and asks SciFact claims:

- ready: seconds from that process's start to a loaded engine (imports, models, index);
- retrieval: `Engine.search` (question embedding, dense + BM25, fusion, passage rows);
- answer: `Engine.ask` (retrieval plus answer composition, which re-embeds candidate sentences);
- peak RSS of the process after all its questions;
- recall@10: share of the exact (flat) top 10 that the kind's dense search returns, per question.
Five warm-up questions are not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import (  # noqa: E402
    PASSAGES_PER_ARTICLE,
    ROOT,
    WORK,
    label,
    log,
    machine,
    parse_size,
    peak_rss_mb,
    percentile,
    scifact_queries,
    table,
)

WARM_UP = 5
HEADERS = ["passages", "dense index", "index build s", "recall@10", "ready s", "ready CPU s", "retrieval p50 ms",
           "retrieval p95 ms", "answer p50 ms", "answer p95 ms", "answer CPU p50 ms", "answer CPU p95 ms",
           "peak RSS MB", "load"]


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads): what the work costs, however busy the machine."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def settings_for(index_dir: Path):
    from index.settings import Settings

    # Models are exported into the project's data folder once and shared by every size.
    return Settings(_env_file=None, data_dir=ROOT / "var", index_dir=index_dir)


# --- preparing an index of a given size -------------------------------------------------------


def prepare(size: int, kinds: list[str]) -> tuple[Path, dict[str, float]]:
    """The index folder for `size` passages, with dense.<kind>.faiss for each kind (and build seconds)."""
    from index.store.vectors import VectorIndexPolicy, build_vector_index, save_vector_index

    index_dir = WORK / f"scale-{label(size)}" / "index"
    done = index_dir.parent / "built.json"
    built = json.loads(done.read_text()) if done.is_file() else {}
    version = index_dir / "versions" / built["version"] if built else None
    if version is None or not version.is_dir():
        version = _write_synthetic(size, index_dir)
        built = {"version": version.name, "seconds": {}}
    missing = [k for k in kinds if not (version / f"dense.{k}.faiss").is_file()]
    if missing:
        import numpy as np

        vectors = np.load(version / "dense.npy", mmap_mode="r")
        for kind in missing:
            kept = WORK / f"kinds-{label(size)}-{kind}.faiss"  # made by benchmarks.index_kinds
            if kept.is_file() and kind != "flat":
                log(f"{label(size)}: reusing {kept.name} from benchmarks.index_kinds (same vectors)")
                os.link(kept, version / f"dense.{kind}.faiss")
                continue
            log(f"{label(size)}: building the {kind} index")
            started = time.perf_counter()
            index = build_vector_index(np.asarray(vectors), VectorIndexPolicy(kind=kind))
            built["seconds"][kind] = round(time.perf_counter() - started, 1)
            save_vector_index(index, version / f"dense.{kind}.faiss")
            del index
    done.write_text(json.dumps(built))
    return index_dir, built["seconds"]


def _write_synthetic(size: int, index_dir: Path) -> Path:
    import datetime as dt

    import numpy as np

    from benchmarks.common import sentence_bank, synthetic_passages
    from index.sources.corpus import Article
    from index.sources.passages import Passage, Span
    from index.store import files as store
    from index.store.build import Encoders
    from index.store.files import IndexContent, Manifest, SentenceRecord, fingerprint, write_version
    from index.store.lexical import analyse
    from index.store.vectors import VectorIndexPolicy, build_vector_index

    settings = settings_for(index_dir)
    encoders = Encoders.load(settings)
    bank = sentence_bank(encoders)
    log(f"{label(size)}: making {size:,} synthetic passages")
    members, dense, multilingual = synthetic_passages(bank, size)
    sentences = bank["texts"]
    articles, passages, sentence_records, sentence_members = [], [], [], []
    for first in range(0, size, PASSAGES_PER_ARTICLE):
        doc_id = f"doc-{first // PASSAGES_PER_ARTICLE:07d}"
        parts, cursor = [], 0
        first_sentence_of_doc = len(sentence_records)
        for position, row in enumerate(range(first, min(first + PASSAGES_PER_ARTICLE, size))):
            spans, texts = [], []
            start = cursor
            for member in members[row]:
                if member < 0:
                    continue
                sentence = sentences[member]
                spans.append(Span(cursor, cursor + len(sentence)))
                sentence_records.append(SentenceRecord(doc_id, cursor, cursor + len(sentence), len(sentence.split())))
                sentence_members.append(member)
                texts.append(sentence)
                cursor += len(sentence) + 1
            text = " ".join(texts)
            cursor = start + len(text) + 2  # paragraphs are separated by a blank line
            parts.append(text)
            first_sentence = len(sentence_records) - len(spans) - first_sentence_of_doc
            passages.append(Passage(f"{doc_id}#{position}", doc_id, position, start, start + len(text), text,
                                    tuple(spans), first_sentence))
        body = "\n\n".join(parts)
        articles.append(Article(doc_id=doc_id, title=f"Synthetic article {first // PASSAGES_PER_ARTICLE}",
                                text=body, source="synthetic", lang="en"))
    log(f"{label(size)}: analysing passages for BM25")
    terms = [analyse(p.text) for p in passages]
    manifest = Manifest(
        model=settings.embedding_model, dimension=dense.shape[1], multilingual_model=encoders.multilingual.name,
        multilingual_dimension=multilingual.shape[1], passage_max_tokens=settings.passage_max_tokens,
        passage_overlap_sentences=0, corpus_fingerprint=fingerprint(articles),
        built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), documents=len(articles),
        passages=len(passages), build_seconds=0.0, verbatim_version="bench", sentences=len(sentence_records),
    )
    # Sentence vectors are the bank's own: synthetic passages are made of bank sentences.
    rows = np.asarray(sentence_members, dtype=np.int64)
    dense_sentences = np.asarray(bank["dense"], dtype=np.float32)[rows]
    multilingual_sentences = np.asarray(bank["multilingual"], dtype=np.float32)[rows]
    # The multilingual index is built as a real build would (the default policy for its size); the
    # dense one starts flat (instant) and every dense kind is built afterwards as its own file.
    calls = []

    def build(vectors, policy=None):
        calls.append(len(calls))
        return build_vector_index(vectors, VectorIndexPolicy(kind="flat") if len(calls) == 1 else None)

    original = store.build_vector_index
    store.build_vector_index = build
    try:
        log(f"{label(size)}: writing the index version (SQLite, BM25, multilingual FAISS)")
        folder = write_version(index_dir, IndexContent(
            manifest, articles, passages, sentence_records, dense, multilingual, dense_sentences,
            multilingual_sentences, terms))
    finally:
        store.build_vector_index = original
    shutil.copyfile(folder / "dense.faiss", folder / "dense.flat.faiss")
    return folder


# --- one serving process ----------------------------------------------------------------------


def probe(index_dir: Path, started: float, count: int) -> None:
    """Run in a fresh process: load the engine, ask questions, print one JSON line of figures."""
    from index.engine import Engine

    engine = Engine.load(settings_for(index_dir))
    ready = time.time() - started
    ready_cpu = cpu_seconds()
    ready_rss = peak_rss_mb()
    questions = scifact_queries()
    questions = (questions * (1 + (count + WARM_UP) // len(questions)))[: count + WARM_UP]
    retrieval, answer, retrieval_cpu, answer_cpu = [], [], [], []
    for number, question in enumerate(questions):
        c0, t0 = cpu_seconds(), time.perf_counter()
        engine.search(question)
        c1, t1 = cpu_seconds(), time.perf_counter()
        engine.ask(question)
        c2, t2 = cpu_seconds(), time.perf_counter()
        if number >= WARM_UP:
            retrieval.append((t1 - t0) * 1000)
            answer.append((t2 - t1) * 1000)
            retrieval_cpu.append((c1 - c0) * 1000)
            answer_cpu.append((c2 - c1) * 1000)
    print(json.dumps({
        "ready": ready, "ready_rss": ready_rss, "peak_rss": peak_rss_mb(),
        "retrieval_p50": percentile(retrieval, 0.5), "retrieval_p95": percentile(retrieval, 0.95),
        "answer_p50": percentile(answer, 0.5), "answer_p95": percentile(answer, 0.95),
        "ready_cpu": ready_cpu, "retrieval_cpu_p95": percentile(retrieval_cpu, 0.95),
        "answer_cpu_p50": percentile(answer_cpu, 0.5), "answer_cpu_p95": percentile(answer_cpu, 0.95),
        "load": os.getloadavg()[0],
        "backend": engine.encoders.dense.backend,
    }))


def run_probe(index_dir: Path, kind: str, count: int) -> dict:
    run_link(index_dir, kind)
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--probe", str(index_dir), "--started", repr(started),
         "--queries", str(count)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"probe failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def recall(index_dir: Path, kinds: list[str]) -> dict[str, float]:
    """Recall@10 of each kind's dense search against the flat index, over the SciFact claims."""
    import faiss
    import numpy as np

    from benchmarks.common import WORK as work
    from index.store.vectors import load_vector_index

    banks = sorted(work.glob("sentences-*.npz"))
    queries = np.ascontiguousarray(np.load(banks[0])["queries"], dtype=np.float32)
    version = next(p for p in (index_dir / "versions").iterdir() if p.is_dir() and not p.name.startswith("."))
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    _, truth = load_vector_index(version / "dense.flat.faiss").search(queries, 10)
    found = {}
    for kind in kinds:
        _, ids = load_vector_index(version / f"dense.{kind}.faiss").search(queries, 10)
        found[kind] = float(np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, ids, strict=True)]))
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1M")
    parser.add_argument("--kinds", default="flat,hnsw,ivf")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--started", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        probe(args.probe, args.started, args.queries)
        return

    from index.store.vectors import VectorIndexPolicy

    print(f"Machine: {machine()}")
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if "flat" not in kinds:
        kinds.insert(0, "flat")
    rows = []
    for size in [parse_size(s) for s in args.sizes.split(",")]:
        index_dir, seconds = prepare(size, kinds)
        found = recall(index_dir, kinds)
        default = VectorIndexPolicy().choose(size)
        for kind in kinds:
            log(f"{label(size)} {kind}: asking {args.queries} questions in a fresh process")
            figures = run_probe(index_dir, kind, args.queries)
            rows.append([
                label(size), kind + (" (default)" if kind == default else ""), seconds.get(kind, "-"),
                found[kind], figures["ready"], figures["ready_cpu"], figures["retrieval_p50"],
                figures["retrieval_p95"], figures["answer_p50"], figures["answer_p95"], figures["answer_cpu_p50"],
                figures["answer_cpu_p95"], round(figures["peak_rss"]), figures["load"],
            ])
            print(table(HEADERS, rows[-1:]), file=sys.stderr, flush=True)
        # Leave the default kind in place, as a real build would have.
        run_link(index_dir, default)
    print(f"\nQuery latency by corpus size ({args.queries} SciFact claims a row after {WARM_UP} warm-up; "
          f"embedder: {figures['backend']}; FAISS single-threaded; multilingual index as built by default). "
          "CPU columns: CPU time of the serving process (all its threads), which a busy machine does not inflate; "
          "load: the 1-minute load average when the row finished")
    print(table(HEADERS, rows))

def run_link(index_dir: Path, kind: str) -> None:
    version = next(p for p in (index_dir / "versions").iterdir() if p.is_dir() and not p.name.startswith("."))
    (version / "dense.faiss").unlink()
    os.link(version / f"dense.{kind}.faiss", version / "dense.faiss")


if __name__ == "__main__":
    main()
