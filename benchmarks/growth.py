"""Growing an index: the time and bytes it takes to add 1 and 20 articles to indexes of 1k, 10k and 50k.

The target (issue 11): adding costs about what indexing the new articles alone costs, at most 3 s
plus their own embedding time, at every size. Each addition runs in this process with the models
loaded (as `verbatim run` and the feeds do), on a hard-linked copy of a cached base index (segments
are immutable, so a hard-linked copy is a faithful one), through `add_articles`: the path
`verbatim add`, `/ingest` and feed polls take.

Base articles are SciFact-derived: 3-8 sentences drawn at random from a pool of real SciFact
sentences, titled by the abstract their first sentence came from. The pool's sentences are embedded
once, for real, and remembered (an encoder with a memo), which is what makes a 50k-article base
buildable in minutes on 2 cores; the added articles are whole SciFact abstracts outside the pool,
embedded for real, and the time spent embedding them is measured apart.

Columns: `embed s` the models' time on the new sentences; `rest s` everything else (splitting,
BM25 postings, FAISS, SQLite, fsync, the new version; a merge when one is due); `written` bytes this
process wrote (`/proc/self/io` wchar) and `new files` the files the addition created and their size;
`reload s` opening the new version for answering (Engine.load, what LiveEngine does after an add).

    python -m benchmarks.growth --sizes 1k,10k,50k --adds 1,20 --rounds 3 --sequence 30
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ROOT, SCIFACT, log, machine, scifact_articles, table  # noqa: E402

WORK = Path(os.environ.get("GROWTH_DIR", "/work/bench-growth"))
POOL_ABSTRACTS = 800  # the base articles' sentences come from the first 800 abstracts
SIZES = {"1k": 1_000, "10k": 10_000, "50k": 50_000}


class MemoEncoder:
    """An encoder that embeds each distinct text once (for building the big base indexes), remembering
    the vectors in `GROWTH_DIR/memo-<model>.npz` so every base reuses them."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self.memo: dict[str, np.ndarray] = {}
        self.file = WORK / f"memo-{encoder.name.replace('/', '_')}.npz"
        if self.file.is_file():
            stored = np.load(self.file, allow_pickle=False)
            self.memo = dict(zip(stored["texts"].tolist(), stored["vectors"], strict=True))

    def save(self) -> None:
        texts = list(self.memo)
        np.savez(self.file, texts=np.array(texts), vectors=np.stack([self.memo[t] for t in texts]))

    def __getattr__(self, name: str):
        return getattr(self.encoder, name)

    def encode_passages(self, texts, progress=None) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.memo))
        if missing:
            for text, vector in zip(missing, self.encoder.encode_passages(missing, progress=progress), strict=True):
                self.memo[text] = vector
        return np.stack([self.memo[t] for t in texts]) if texts else np.zeros((0, self.encoder.dimension), np.float32)


class TimedEncoder:
    """An encoder that adds up the time it spends embedding."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self.seconds = 0.0

    def __getattr__(self, name: str):
        return getattr(self.encoder, name)

    def encode_passages(self, texts, progress=None) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.encoder.encode_passages(texts, progress=progress)
        finally:
            self.seconds += time.perf_counter() - started


def settings_for(data: Path, corpus: Path):
    from index.settings import Settings

    return Settings(_env_file=None, corpus_dir=corpus, data_dir=data, model_cache_dir=ROOT / "var" / "models")


def base_articles(count: int, seed: int = 11):
    from index.sources.corpus import Article
    from index.sources.passages import sentence_spans

    pool: list[tuple[str, str]] = []  # (sentence, title of its abstract)
    for article in scifact_articles(POOL_ABSTRACTS):
        for span in sentence_spans(article.text, "en"):
            sentence = " ".join(article.text[span.start:span.end].split())
            if 20 <= len(sentence) <= 400:
                pool.append((sentence, article.title))
    rng = np.random.default_rng(seed)
    articles = []
    for number in range(count):
        picked = [pool[i] for i in rng.integers(0, len(pool), size=int(rng.integers(3, 9)))]
        articles.append(Article(doc_id=f"base-{number:06d}", title=picked[0][1], text=" ".join(s for s, _ in picked),
                                source="SciFact mix", published="2025-01-01", lang="en"))
    return articles


def new_articles(count: int, offset: int):
    """Whole SciFact abstracts from beyond the pool, as new articles."""
    from index.sources.corpus import Article

    chosen = scifact_articles(POOL_ABSTRACTS + 1_000 + offset + count)[POOL_ABSTRACTS + 1_000 + offset:]
    return [Article(doc_id=f"new-{offset + i:05d}", title=a.title, text=a.text, source="SciFact",
                    published="2025-06-01", lang="en") for i, a in enumerate(chosen)]


def build_base(name: str, count: int, memo) -> Path:
    """The cached base index of `count` articles (built once, under GROWTH_DIR)."""
    from index.store.build import build_index

    base = WORK / f"base-{name}"
    if (base / "ready").is_file():
        return base
    shutil.rmtree(base, ignore_errors=True)
    corpus = base / "corpus"
    corpus.mkdir(parents=True)
    with (corpus / "articles.jsonl").open("w", encoding="utf-8") as handle:
        for article in base_articles(count):
            handle.write(json.dumps({"id": article.doc_id, "title": article.title, "text": article.text,
                                     "source": article.source, "published": article.published, "lang": "en"}) + "\n")
    log(f"building the {name} base ({count:,} articles)")
    started = time.perf_counter()
    last = [0.0]

    def progress(event) -> None:
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            log(f"  {event.stage} {event.done:,}/{event.total:,}")

    report = build_index(settings_for(base / "data", corpus), encoders=memo, progress=progress)
    for encoder in (memo.dense, memo.multilingual):
        if encoder is not None:
            encoder.save()
    log(f"  built in {time.perf_counter() - started:.0f} s: {report.documents:,} articles, "
        f"{report.passages:,} passages")
    (base / "ready").write_text(json.dumps({"seconds": time.perf_counter() - started, "passages": report.passages}))
    return base


def io_counters() -> dict[str, int]:
    values = {}
    for line in Path("/proc/self/io").read_text().splitlines():
        key, value = line.split(":")
        values[key] = int(value)
    return values


def files_under(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def fresh_copy(base: Path, target: Path) -> Path:
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Hard links: segments and versions are never changed in place, so the copy costs nothing.
    shutil.copytree(base / "data", target / "data", copy_function=os.link)
    return target / "data"


def one_addition(base: Path, data: Path, articles, encoders) -> dict:
    from index.engine import Engine
    from index.store.build import Encoders, add_articles

    settings = settings_for(data, base / "corpus")
    timed = Encoders(dense=TimedEncoder(encoders.dense),  # type: ignore[arg-type]
                     multilingual=TimedEncoder(encoders.multilingual) if encoders.multilingual else None)
    before_files = files_under(data)
    before_io = io_counters()
    started = time.perf_counter()
    report = add_articles(settings, articles, encoders=timed)
    seconds = time.perf_counter() - started
    after_io = io_counters()
    after_files = files_under(data)
    embed = timed.dense.seconds + (timed.multilingual.seconds if timed.multilingual else 0.0)
    created = {p: size for p, size in after_files.items() if p not in before_files}
    loaded = time.perf_counter()
    engine = Engine.load(settings, encoders=encoders)
    reload = time.perf_counter() - loaded
    found = engine.search(articles[0].title, k=5)
    engine.stored.close()
    return {"seconds": seconds, "embed": embed, "rest": seconds - embed,
            "wchar": after_io["wchar"] - before_io["wchar"],
            "write_bytes": after_io["write_bytes"] - before_io["write_bytes"], "new_files": len(created),
            "new_bytes": sum(created.values()), "reload": reload, "segments": report.segments,
            "merged": report.merged_segments, "found": any(h.doc_id == articles[0].doc_id for h in found)}


def scifact_check(count: int, parts: int, memo) -> tuple[float, float, int]:
    """nDCG@10 on SciFact claims over the first `count` abstracts, built once and built as `parts`
    segments (a build of the first part, then one addition per further part)."""
    from index.engine import Engine
    from index.evaluation import document_ranking, ndcg_at
    from index.store.build import add_articles, build_index

    articles = scifact_articles(count)
    ids = {a.doc_id for a in articles}
    questions = []
    with (SCIFACT / "queries.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            relevant = set(record.get("evidence") or []) & ids
            if relevant:
                questions.append((record["question"], relevant))
    folder = WORK / f"scifact-{count}"
    shutil.rmtree(folder, ignore_errors=True)
    chunks = [articles[i::parts] for i in range(parts)]
    for number, chunk in enumerate(chunks):
        corpus = folder / f"corpus-{number}"
        corpus.mkdir(parents=True)
        with (corpus / "scifact.jsonl").open("w", encoding="utf-8") as handle:
            for a in chunk:
                handle.write(json.dumps({"id": a.doc_id, "title": a.title, "text": a.text, "lang": "en"}) + "\n")
    every = [folder / f"corpus-{number}" for number in range(parts)]
    single = settings_for(folder / "single", folder)
    build_index(single, every, encoders=memo)
    grown = settings_for(folder / "grown", folder)
    build_index(grown, [every[0]], encoders=memo)
    for chunk in chunks[1:]:
        add_articles(grown, chunk, encoders=memo)
    scores = []
    for settings in (single, grown):
        engine = Engine.load(settings, encoders=memo)
        segments = len(engine.stored.segments)
        values = [ndcg_at(document_ranking(h.doc_id for h in engine.search(q, k=10)), relevant)
                  for q, relevant in questions]
        scores.append(sum(values) / len(values))
        log(f"SciFact {count} abstracts, {segments} segment(s): nDCG@10 {scores[-1]:.4f} over {len(values)} claims")
    for encoder in (memo.dense, memo.multilingual):
        if encoder is not None:
            encoder.save()
    return scores[0], scores[1], len(questions)


def one_update(base: Path, target: Path, articles, encoders) -> dict:
    """`verbatim index update` after new articles were saved to the corpus: the whole corpus is read
    (that is how an update finds what changed), only the new articles are indexed."""
    from index.store.build import Encoders, build_index

    data = fresh_copy(base, target)
    corpus = target / "corpus"
    corpus.mkdir()
    os.link(base / "corpus" / "articles.jsonl", corpus / "articles.jsonl")
    with (corpus / "new.jsonl").open("w", encoding="utf-8") as handle:
        for a in articles:
            handle.write(json.dumps({"id": a.doc_id, "title": a.title, "text": a.text, "source": a.source,
                                     "published": a.published, "lang": "en"}) + "\n")
    timed = Encoders(dense=TimedEncoder(encoders.dense),  # type: ignore[arg-type]
                     multilingual=TimedEncoder(encoders.multilingual) if encoders.multilingual else None)
    started = time.perf_counter()
    report = build_index(settings_for(data, corpus), encoders=timed, incremental=True)
    seconds = time.perf_counter() - started
    embed = timed.dense.seconds + (timed.multilingual.seconds if timed.multilingual else 0.0)
    if report.embedded_documents != len(articles):
        raise RuntimeError(f"the update embedded {report.embedded_documents} documents, not {len(articles)}")
    return {"seconds": seconds, "embed": embed, "rest": seconds - embed}


def mb(value: float) -> str:
    return f"{value / 2**20:.2f} MB" if value >= 2**20 else f"{value / 2**10:.0f} KB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1k,10k,50k")
    parser.add_argument("--adds", default="1,20")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sequence", type=int, default=30, help="single additions in a row (merges happen)")
    parser.add_argument("--build-only", action="store_true", help="build the cached base indexes, then stop")
    parser.add_argument("--scifact", type=int, default=0,
                        help="also compare nDCG@10 on this many SciFact abstracts built once and as 8 segments")
    args = parser.parse_args(argv)

    from index.store.build import Encoders

    print(f"Machine: {machine()}")
    WORK.mkdir(parents=True, exist_ok=True)
    encoders = Encoders.load(settings_for(WORK / "models-probe", WORK))
    memo = Encoders(dense=MemoEncoder(encoders.dense),  # type: ignore[arg-type]
                    multilingual=MemoEncoder(encoders.multilingual) if encoders.multilingual else None)
    if args.scifact:
        once, segmented, questions = scifact_check(args.scifact, 8, memo)
        print(f"\nSciFact, {args.scifact} abstracts, {questions} claims: nDCG@10 built once {once:.4f}, "
              f"built as 8 segments {segmented:.4f} (difference {segmented - once:+.4f})")
    sizes = [name for name in args.sizes.split(",") if name]
    bases = {name: build_base(name, SIZES[name], memo) for name in sizes}
    if args.build_only:
        return
    rows, results = [], {}
    offset = 0
    for name in sizes:
        base = bases[name]
        for adds in (int(a) for a in args.adds.split(",")):
            runs = []
            for round_number in range(args.rounds):
                data = fresh_copy(base, WORK / "runs" / f"{name}-{adds}-{round_number}")
                runs.append(one_addition(base, data, new_articles(adds, offset), encoders))
                offset += adds
                log(f"{name} +{adds}: {runs[-1]}")
            m = {key: statistics.median(r[key] for r in runs) for key in ("seconds", "embed", "rest", "wchar",
                                                                            "new_bytes", "new_files", "reload")}
            results[f"{name}+{adds}"] = runs
            rows.append([name, adds, m["seconds"], m["embed"], m["rest"], mb(m["wchar"]),
                         f"{m['new_files']:.0f} / {mb(m['new_bytes'])}", m["reload"],
                         "yes" if m["rest"] <= 3.0 else "no", "yes" if all(r["found"] for r in runs) else "no"])
        updates = []
        for round_number in range(args.rounds):
            updates.append(one_update(base, WORK / "runs" / f"{name}-update-{round_number}",
                                      new_articles(1, offset), encoders))
            offset += 1
            log(f"{name} update +1: {updates[-1]}")
        results[f"{name} update"] = updates
        rest = statistics.median(u["rest"] for u in updates)
        rows.append([name, "1 by `index update`", statistics.median(u["seconds"] for u in updates),
                     statistics.median(u["embed"] for u in updates), rest, "", "", "",
                     "yes" if rest <= 3.0 else "no", ""])
        if args.sequence:
            data = fresh_copy(base, WORK / "runs" / f"{name}-sequence")
            runs = []
            for _ in range(args.sequence):
                runs.append(one_addition(base, data, new_articles(1, offset), encoders))
                offset += 1
            results[f"{name} sequence"] = runs
            rests = [r["rest"] for r in runs]
            log(f"{name} sequence of {args.sequence}: rest median {statistics.median(rests):.2f} s, "
                f"max {max(rests):.2f} s, merges {sum(1 for r in runs if r['merged'])}, "
                f"segments at the end {runs[-1]['segments']}")
            rows.append([name, f"1 ×{args.sequence} in a row", statistics.median(r["seconds"] for r in runs),
                         statistics.median(r["embed"] for r in runs),
                         f"{statistics.median(rests):.3f} (max {max(rests):.2f})",
                         mb(statistics.median(r["wchar"] for r in runs)),
                         f"{statistics.median(r['new_files'] for r in runs):.0f} / "
                         f"{mb(statistics.median(r['new_bytes'] for r in runs))}",
                         statistics.median(r["reload"] for r in runs), "yes" if max(rests) <= 3.0 else "no",
                         "yes" if all(r["found"] for r in runs) else "no"])
    if not rows:
        return
    (WORK / "results.json").write_text(json.dumps(results, indent=1))
    print("\nAdding articles to an index (median of rounds; models loaded; times in seconds)\n")
    print(table(["base", "added", "total s", "embed s", "rest s", "written", "new files", "reload s",
                 "rest ≤ 3 s", "found"], rows))


if __name__ == "__main__":
    main()
